"""The live system sees the storage technicians meet, and a restore of RAID1 members
gives a working array (issue 14, "Storage the live system must see").

QEMU boots the live ISO (UEFI, TCG) with ``console=ttyS0,115200n8 rescue_console=shell``:
a root shell on the serial port. Eight sparse virtio disks, named by their serials:

    RAID-A, RAID-B   GPT, one "Linux RAID" partition each: an md RAID1 (metadata 1.2)
                     with ext4 and a file, made by mdadm in the live system (the Debian
                     installer's layout)
    IMSM-A, IMSM-B   Intel RST firmware RAID (IMSM metadata: a container and a RAID1
                     volume in it), made with IMSM_NO_PLATFORM=1 (QEMU has no RST option
                     ROM) and IMSM_DEVNAME_AS_SERIAL=1 (virtio disks give mdadm no serial)
    CRYPT            LUKS2 (cryptsetup luksFormat with a key file)
    LVM              a physical volume, volume group "vgtest", logical volume "data"
    REPO             ext4: the image repository
    NEW-A, NEW-B     blank: the RAID member disks are restored onto them
    SCRIPT           the shell script below as raw bytes (read with ``tr -d '\\0'``), so
                     nothing long is typed on the serial line

The script runs the real tools of the live system (mdadm, cryptsetup, lvm, rescue), then
``rescue devices`` while the array runs and again after it is stopped (the members must
stay protected when the array is not assembled), backs up both member disks into one
image, restores it onto the blank disks, assembles the restored members as /dev/md9,
checks the filesystem and the file. A second boot with only the restored disks (and the
IMSM disks) attached checks that the live system assembles the array by itself at
power-on and lists it as one disk with its members protected. The scripts print
``@@RC name code`` for each step and the listings between ``@@BEGIN name`` / ``@@END
name`` markers, which the host asserts on.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from isoqemu import Disk, Machine, codes, custom_iso, script_disk, sections

pytestmark = [pytest.mark.qemu, pytest.mark.root]

MiB = 1024 * 1024
APPEND = "console=ttyS0,115200n8 rescue_console=shell"
BOOT_BUDGET = 600  # seconds to the root shell under TCG
RUN_BUDGET = 600  # seconds for the script

SCRIPT = r"""
set -u
dev() { readlink -f "/dev/disk/by-id/virtio-$1"; }
step() { name=$1; shift; "$@" >/tmp/step.out 2>&1; rc=$?; tail -n 15 /tmp/step.out;
         echo "@@RC $name $rc"; return 0; }
listing() { echo "@@BEGIN $1"; shift; "$@" 2>&1; echo "@@RC listing-rc $?"; echo "@@END"; }
udevadm settle
A=$(dev RAID-A); B=$(dev RAID-B); C=$(dev CRYPT); L=$(dev LVM); R=$(dev REPO)
NA=$(dev NEW-A); NB=$(dev NEW-B); IA=$(dev IMSM-A); IB=$(dev IMSM-B)
echo "@@DISKS A=$A B=$B C=$C L=$L R=$R NA=$NA NB=$NB IA=$IA IB=$IB"
for d in "$A" "$B"; do
  printf 'label: gpt\n,,R\n' | sfdisk -q "$d" >/dev/null
done
udevadm settle
step mdadm-create mdadm --create /dev/md0 --run --level=1 --raid-devices=2 \
  --metadata=1.2 --assume-clean "${A}1" "${B}1"
step mkfs-md mkfs.ext4 -q -F -L raidroot /dev/md0
mkdir -p /mnt/md && mount /dev/md0 /mnt/md && echo "mirror survives" >/mnt/md/hello.txt
umount /mnt/md
export IMSM_NO_PLATFORM=1 IMSM_DEVNAME_AS_SERIAL=1
step imsm-container mdadm --create /dev/md/imsm0 --run --metadata=imsm --raid-devices=2 \
  "$IA" "$IB"
step imsm-volume mdadm --create /dev/md/vol0 --run --level=1 --raid-devices=2 \
  --assume-clean /dev/md/imsm0
udevadm settle
echo "@@IMSM $(readlink -f /dev/md/vol0) $(readlink -f /dev/md/imsm0)"
cat /proc/mdstat
head -c 64 /dev/urandom >/tmp/luks.key
step luks cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 \
  --pbkdf-force-iterations 1000 --key-file /tmp/luks.key "$C"
step pvcreate pvcreate -q -y "$L"
step vgcreate vgcreate -q vgtest "$L"
step lvcreate lvcreate -q -y -n data -L 16M vgtest
step mkfs-lv mkfs.ext4 -q -F /dev/vgtest/data
udevadm settle
listing devices-assembled rescue devices
listing devices-json rescue devices --json
# mdadm's udev rules would assemble the members again as soon as md0 stops (incremental
# assembly): "AUTO -all" keeps them apart, as when an array cannot be assembled
echo "AUTO -all" >>/etc/mdadm/mdadm.conf
step mdadm-stop mdadm --stop /dev/md0
udevadm settle
mdadm --stop --scan >/dev/null 2>&1
udevadm settle
cat /proc/mdstat
listing devices-stopped rescue devices
step mkfs-repo mkfs.ext4 -q -F -L REPO "$R"
mkdir -p /mnt/repo && mount "$R" /mnt/repo
step backup rescue backup --disk "$A" --disk "$B" --repo /mnt/repo/images --name raid1
echo "@@BEGIN refuse-member"
rescue restore --repo /mnt/repo/images --disk "$A" --disk "$B" --dry-run --yes 2>&1
echo "@@RC refuse-member $?"
echo "@@END"
step restore rescue restore --repo /mnt/repo/images --disk "$NA" --disk "$NB" --yes \
  --force --no-grow --skip-fixup bios-boot-code --skip-fixup uefi-fallback-loader \
  --skip-fixup uefi-nvram-entry --skip-fixup initramfs-drivers --skip-fixup fstab-check
partx -u "$NA" 2>/dev/null; partx -u "$NB" 2>/dev/null; udevadm settle
cat /proc/mdstat
# udev's incremental assembly may have claimed the restored members: release them
mdadm --stop --scan >/dev/null 2>&1
step assemble mdadm --assemble /dev/md9 "${NA}1" "${NB}1"
cat /proc/mdstat
step fsck fsck.ext4 -fn /dev/md9
mkdir -p /mnt/md9 && mount -o ro /dev/md9 /mnt/md9
echo "@@FILE $(cat /mnt/md9/hello.txt 2>&1)"
echo "@@MEMBERS $(mdadm --detail /dev/md9 | grep -c 'active sync')"
umount /mnt/md9
echo "@@DONE"
"""


# The second boot: only the restored member disks (and the IMSM disks) attached, as on a
# machine whose array was there before the stick booted. Nothing is assembled by hand.
POWER_ON = r"""
set -u
listing() { echo "@@BEGIN $1"; shift; "$@" 2>&1; echo "@@RC listing-rc $?"; echo "@@END"; }
udevadm settle
NA=$(readlink -f /dev/disk/by-id/virtio-NEW-A); NB=$(readlink -f /dev/disk/by-id/virtio-NEW-B)
echo "@@DISKS NA=$NA NB=$NB"
md=""
for i in $(seq 60); do
  for s in /sys/block/md*/slaves; do
    [ -e "$s/${NA##*/}1" ] && [ -e "$s/${NB##*/}1" ] && md=/dev/$(basename "$(dirname "$s")")
  done
  [ -n "$md" ] && break
  sleep 1
done
echo "@@ARRAY $md"
cat /proc/mdstat
echo "@@MEMBERS $(mdadm --detail "$md" 2>/dev/null | grep -c 'active sync')"
listing devices-power-on rescue devices
mkdir -p /mnt/md && mount -o ro "$md" /mnt/md && echo "@@FILE $(cat /mnt/md/hello.txt 2>&1)"
echo "@@DONE"
"""


def run_script(iso: Path, disks: list[Disk], workdir: Path) -> str:
    """Boot *iso* with *disks* (one of them the script disk) to the serial root shell, run
    the script, and return its output (the lines it printed, without the echo of the
    typed command)."""
    vm = Machine(iso=iso, workdir=workdir, firmware="uefi", disks=disks)
    try:
        vm.start()
        vm.wait_for(r"this is a root shell", BOOT_BUDGET)
        vm.send("\n")
        cmd = ("tr -d '\\0' </dev/disk/by-id/virtio-SCRIPT >/tmp/storage.sh && "
               "bash /tmp/storage.sh 2>&1 | sed 's/^/ /'; echo '@@'EXIT\n")
        vm.send(cmd)
        vm.wait_for(r"\n @@DONE|\n@@EXIT", RUN_BUDGET)
        log = vm.text()
    finally:
        vm.stop()
    # the script's output is indented by one space: the typed command line never matches
    return "\n".join(line[1:] for line in log.splitlines() if line.startswith(" @@")
                     or line.startswith(" ")).replace("\r", "")


def block(listing: str, node: str) -> str:
    """The lines of ``rescue devices`` text output about the disk *node*: its heading
    and the indented lines under it."""
    out: list[str] = []
    for line in listing.splitlines():
        if line.startswith("/dev/"):
            if out:
                break
            if line.split()[0] == node:
                out.append(line)
        elif out:
            out.append(line)
    return "\n".join(out)


def sparse(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        f.truncate(size)
    return path


def test_storage_inventory_and_raid1_restore(iso_path: Path, tmp_path: Path) -> None:
    iso = custom_iso(iso_path, tmp_path / "storage.iso", APPEND, "Rescue (storage test)")
    script = script_disk(tmp_path / "script.img", SCRIPT)
    disks = [Disk(sparse(tmp_path / f"{serial.lower()}.img", size), serial)
             for serial, size in (("RAID-A", 256 * MiB), ("RAID-B", 256 * MiB),
                                  ("CRYPT", 64 * MiB), ("LVM", 64 * MiB),
                                  ("REPO", 512 * MiB), ("NEW-A", 256 * MiB),
                                  ("NEW-B", 256 * MiB), ("IMSM-A", 128 * MiB),
                                  ("IMSM-B", 128 * MiB))]
    disks.append(script)
    out = run_script(iso, disks, tmp_path / "vm")
    rcs = codes(out)
    print(out[-12000:])
    for step in ("mdadm-create", "mkfs-md", "imsm-container", "imsm-volume", "luks",
                 "pvcreate", "vgcreate", "lvcreate", "mkfs-lv", "mdadm-stop", "mkfs-repo"):
        assert rcs.get(step) == 0, f"setup step {step} failed in the live system:\n{out}"
    disk_of = dict(item.split("=", 1) for item in
                   re.search(r"@@DISKS (.*)", out).group(1).split())  # type: ignore[union-attr]
    lists = sections(out)

    # 1. While the array runs: one md disk row with its level and members; the members
    #    protected and named as such; LUKS and LVM named.
    running = lists["devices-assembled"]
    a, b = (Path(disk_of[k]).name for k in ("A", "B"))
    md = block(running, "/dev/md0")
    assert md, running
    assert "RAID1" in md and "2 members" in md and f"{a}1" in md and f"{b}1" in md, md
    for member in (disk_of["A"], disk_of["B"]):
        text = block(running, member)
        assert "not a restore target" in text and "member of md0" in text, text
    assert "encrypted: LUKS" in block(running, disk_of["C"]), running
    assert "LVM volume group vgtest" in block(running, disk_of["L"]), running
    assert "LVM logical volume vgtest" in running, running  # the dm-0 row
    assert "eligible as a restore target" in block(running, disk_of["NA"]), running
    assert '"raid_level": "raid1"' in lists["devices-json"], lists["devices-json"][:3000]
    # Intel RST: the volume is one disk row, the container is not listed, its member
    # disks are protected and say which array they belong to
    volume, container = re.search(r"@@IMSM (\S+) (\S+)", out).groups()  # type: ignore[union-attr]
    vol = block(running, volume)
    assert "RAID1" in vol and "IMSM" in vol, running
    assert not block(running, container), f"the IMSM container {container} is listed:\n{running}"
    for member in (disk_of["IA"], disk_of["IB"]):
        text = block(running, member)
        assert "not a restore target" in text and "member of" in text, text

    # 2. Stopped: no md row, the members still refused, naming the array.
    stopped = lists["devices-stopped"]
    assert not block(stopped, "/dev/md0"), stopped
    for member in (disk_of["A"], disk_of["B"]):
        text = block(stopped, member)
        assert "not a restore target" in text and "RAID member" in text, text
        assert "mdadm --zero-superblock" in text and re.search(r"of the array '\S+:0'", text), text
    # ... and a restore onto them is refused before anything is written (exit code 21)
    assert rcs.get("refuse-member") == 21, lists["refuse-member"]
    assert "RAID member" in lists["refuse-member"], lists["refuse-member"]

    # 3. The member disks restored onto blank disks assemble into a working array.
    for step in ("backup", "restore", "assemble", "fsck"):
        assert rcs.get(step) == 0, f"{step} failed in the live system:\n{out}"
    assert "@@FILE mirror survives" in out, out
    assert "@@MEMBERS 2" in out, out
    assert "@@DONE" in out, out

    # 4. Power-on with the restored members (and the IMSM disks) attached: the live
    #    system assembles the array by itself, shows it as one disk with its members
    #    protected, and its filesystem reads back.
    by_serial = {disk.serial: disk for disk in disks}
    second = [by_serial[name] for name in ("NEW-A", "NEW-B", "IMSM-A", "IMSM-B")]
    second.append(script_disk(tmp_path / "power-on.img", POWER_ON))
    out = run_script(iso, second, tmp_path / "vm2")
    print(out[-6000:])
    array = re.search(r"@@ARRAY (\S*)", out)
    assert array and array.group(1), f"the restored members were not assembled at boot:\n{out}"
    assert "@@MEMBERS 2" in out, out
    assert "@@FILE mirror survives" in out, out
    listing = sections(out)["devices-power-on"]
    md = block(listing, array.group(1))
    assert "RAID1" in md and "2 members" in md, listing
    restored = dict(re.findall(r"\b(NA|NB)=(\S+)", out))
    for member in (restored["NA"], restored["NB"]):
        text = block(listing, member)
        assert "not a restore target" in text and "member of" in text, text
    # Intel RST without its platform (QEMU has no RST option ROM) is not assembled; its
    # members are still protected, as members of an array not assembled now
    imsm = [line for line in listing.splitlines() if "IMSM" in line and "RAID member" in line]
    assert len(imsm) >= 2 and all("not assembled" in line for line in imsm), listing


if __name__ == "__main__":  # pragma: no cover - for trying the script by hand
    print(shlex.quote(SCRIPT))
