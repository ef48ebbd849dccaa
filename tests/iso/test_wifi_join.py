"""The live system joins a Wi-Fi network (issue 14: "Add a location can join a Wi-Fi
network"), on simulated radios.

QEMU boots the live ISO (UEFI, TCG) with ``console=ttyS0,115200n8 rescue_console=shell``:
a root shell on the serial port. The script below (read from a small virtio disk with the
serial SCRIPT, so nothing long is typed on the serial line) loads ``mac80211_hwsim
radios=2``: two simulated radios that hear each other. The second runs an access point
"rescue-test" (WPA2-PSK, channel 1) with wpa_supplicant in AP mode; on the first,
``rescue wifi`` scans (the SSID must be listed), joins with a wrong passphrase (the
sentence "The passphrase was not accepted"), then with the right one: the state reaches
COMPLETED and, as no DHCP server runs on the simulated network, the join says in a
sentence that no address was obtained (exit code 0: the link is up). Meanwhile the
passphrase must not be visible in any process's command line, nor in a file under /run.

The script prints ``@@RC name code`` after each step and its output between ``@@BEGIN
name`` / ``@@END``; the host asserts on them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from isoqemu import Machine, codes, custom_iso, script_disk, sections

pytestmark = [pytest.mark.qemu, pytest.mark.root]

MiB = 1024 * 1024
APPEND = "console=ttyS0,115200n8 rescue_console=shell"
BOOT_BUDGET = 600  # seconds to the root shell under TCG
RUN_BUDGET = 600  # seconds for the script
PASSPHRASE = "correct horse battery"

SCRIPT = r"""
set -u
listing() { name=$1; shift; echo "@@BEGIN $name"; "$@" 2>&1; rc=$?; echo "@@END";
            echo "@@RC $name $rc"; }
listing modprobe modprobe mac80211_hwsim radios=2
udevadm settle
sleep 2
set -- $(for d in /sys/class/net/*; do [ -e "$d/phy80211" ] && basename "$d"; done | sort)
STA=${1:-none}; AP=${2:-none}
echo "@@RADIOS sta=$STA ap=$AP"
cat >/tmp/ap.conf <<EOF
ctrl_interface=/run/wpa-ap
network={
    ssid="rescue-test"
    mode=2
    frequency=2412
    key_mgmt=WPA-PSK
    proto=RSN
    pairwise=CCMP
    group=CCMP
    psk="@PASSPHRASE@"
}
EOF
ip link set "$AP" up
listing ap wpa_supplicant -B -i "$AP" -D nl80211 -c /tmp/ap.conf -P /run/wpa-ap.pid
sleep 3
printf '%s\n' '@PASSPHRASE@' >/tmp/pass
printf '%s\n' 'not the passphrase' >/tmp/wrong
chmod 600 /tmp/pass /tmp/wrong
for try in 1 2 3 4; do  # the access point may need a moment to be heard
  rescue wifi scan -i "$STA" >/tmp/scan.out 2>&1; rc=$?
  grep -q '^rescue-test ' /tmp/scan.out && break
  sleep 3
done
echo "@@BEGIN scan"; cat /tmp/scan.out; echo "@@END"; echo "@@RC scan $rc"
listing wrong rescue wifi join rescue-test --passphrase-file /tmp/wrong -i "$STA"
( while sleep 1; do ps -eo args >>/tmp/ps.log; done ) & WATCH=$!
listing join rescue wifi join rescue-test --passphrase-file /tmp/pass -i "$STA"
kill $WATCH
listing status rescue wifi status -i "$STA"
listing wpa-state wpa_cli -p /run/wpa_supplicant -i "$STA" status
echo "@@PS $(grep -c '@PASSPHRASE@' /tmp/ps.log) of $(grep -c . /tmp/ps.log)"
echo "@@RUN $(grep -rlF --exclude-dir=live '@PASSPHRASE@' /run 2>/dev/null | wc -l)"
echo "@@DONE"
""".replace("@PASSPHRASE@", PASSPHRASE)



def test_wifi_scan_and_join_on_simulated_radios(iso_path: Path, tmp_path: Path) -> None:
    iso = custom_iso(iso_path, tmp_path / "wifi.iso", APPEND, "Rescue (Wi-Fi test)")
    script = script_disk(tmp_path / "script.img", SCRIPT)
    vm = Machine(iso=iso, workdir=tmp_path / "vm", firmware="uefi",
                 disks=[script])
    try:
        vm.start()
        vm.wait_for(r"this is a root shell", BOOT_BUDGET)
        vm.send("\n")
        vm.send("tr -d '\\0' </dev/disk/by-id/virtio-SCRIPT >/tmp/wifi.sh && "
                "bash /tmp/wifi.sh 2>&1 | sed 's/^/ /'; echo '@@'EXIT\n")
        vm.wait_for(r"\n @@DONE|\n@@EXIT", RUN_BUDGET)
        log = vm.text()
    finally:
        vm.stop()
    # the script's output is indented by one space: the typed command line never matches
    out = "\n".join(line[1:] for line in log.splitlines()
                    if line.startswith(" ")).replace("\r", "")
    print(out[-8000:])
    rcs, said = codes(out), sections(out)
    assert rcs.get("modprobe") == 0, said.get("modprobe")
    assert "sta=none" not in out and "ap=none" not in out, out
    assert rcs.get("ap") == 0, said.get("ap")

    # the scan lists the network, with its security
    scan = said["scan"]
    assert rcs.get("scan") == 0, scan
    row = next((line for line in scan.splitlines() if line.startswith("rescue-test ")), "")
    assert row and "WPA2" in row, scan

    # a wrong passphrase is a sentence (exit code 30), not a hang or a traceback
    assert rcs.get("wrong") == 30, said["wrong"]
    assert "The passphrase was not accepted by the Wi-Fi network rescue-test" in said["wrong"]
    assert "Traceback" not in out

    # the right one joins: COMPLETED, and no DHCP server is a sentence, not a failure
    join = said["join"]
    assert rcs.get("join") == 0, join
    assert "Connected to the Wi-Fi network rescue-test" in join, join
    assert "no network address was obtained" in join, join
    assert "wpa_state=COMPLETED" in said["wpa-state"], said["wpa-state"]
    assert "connected to rescue-test" in said["status"], said["status"]

    # the passphrase was never on a command line (ps, sampled every second during the
    # join) nor in a file under /run
    ps = re.search(r"@@PS (\d+) of (\d+)", out)
    assert ps and ps.group(1) == "0" and int(ps.group(2)) > 0, out
    assert "@@RUN 0" in out, out
    assert "@@DONE" in out, out
