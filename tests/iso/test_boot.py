"""Boot the ISO in QEMU (TCG) on BIOS and on UEFI with a serial console: the boot menu
shows, the console launcher starts, and the wizard's first screen appears on serial.

The ISO's default entry is copied with ``console=ttyS0,115200n8`` added (the same
mechanism users use to add entries: rescue make-usb --iso-only --append), so the
shipped menus themselves are what boots. The shipped "Rescue (serial console)" entry is
also chosen from the menu itself, with the keyboard, on both firmwares.

Times (power-on to menu, console launcher, wizard) and systemd-analyze's account of the
boot go to iso/out/boot-times.json for docs/PERFORMANCE.md ("Boot time").
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from isoqemu import Machine

pytestmark = pytest.mark.qemu

BOOT_BUDGET = 420  # seconds from power-on to the console launcher under TCG
WIZARD_BUDGET = 240  # further seconds until the wizard's first screen (Python + Textual)
MENU_TEXT = r"Rescue to a shell"
LAUNCHER = r"rescue \d+\.\d+\.\d+\S* on ttyS0"


def record(iso_out: Path, key: str, values: dict[str, object]) -> None:
    path = iso_out / "boot-times.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = {k: round(v) if isinstance(v, float) else v for k, v in values.items()}
    path.write_text(json.dumps(data, indent=1) + "\n")


def systemd_account(vm: Machine) -> dict[str, object]:
    """systemd-analyze in the live system: kernel+initrd and userspace seconds, and the
    ten units that took longest (the long poles docs/PERFORMANCE.md lists). Background
    units (console-setup, rescue-modules) run at the lowest priority beside the wizard:
    the boot is "finished" only when they are, so this waits for that first."""
    vm.shell("systemctl is-system-running --wait", 300)
    total = vm.shell("systemd-analyze time --no-pager")
    found = re.search(r"Startup finished in (.*?) \(kernel\) \+ (.*?) \(userspace\)", total)
    assert found, f"systemd-analyze printed no startup time:\n{total}"
    blame = vm.shell("systemd-analyze blame --no-pager | head -n 10")
    return {"systemd_kernel": found.group(1), "systemd_userspace": found.group(2),
            "blame": [" ".join(line.split()) for line in blame.splitlines() if line.strip()]}


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_boots_to_the_wizard_on_serial(serial_iso: Path, iso_out: Path, tmp_path: Path,
                                       firmware: str) -> None:
    times: dict[str, object] = {}
    vm = Machine(iso=serial_iso, workdir=tmp_path / firmware, firmware=firmware)
    try:
        vm.start()
        # The boot menu is drawn on the serial port too and boots by itself.
        times["menu"] = vm.wait_for(MENU_TEXT, 180)
        times["console"] = vm.wait_for(LAUNCHER, BOOT_BUDGET)
        text = vm.text()
        assert "Rescue (serial)" in text, "the custom default entry was not shown"
        assert "login:" not in text, "a login prompt appeared on the serial console"
        times["wizard"] = vm.wait_for(r"Choose your language", times["console"] + WIZARD_BUDGET)
        assert "stopped unexpectedly" not in vm.text()
        vm.quit_wizard_to_shell()
        # the initrd's programs are still held after the switch, which deleted them
        # (live-bottom/rescue-hold-programs: a sleep that has them open)
        held = re.search(r"rescue: holding (\d+) initrd files",
                         vm.shell("dmesg | grep 'rescue: holding'"))
        assert held and int(held.group(1)) > 100, "the initrd's programs were not held"
        still = vm.shell("for p in $(pidof sleep); do echo held-by-$p "
                         "$(ls -l /proc/$p/fd | grep -c '(deleted)'); done")
        counts = [int(n) for n in re.findall(r"held-by-\d+ (\d+)", still)]
        assert counts and max(counts) > 100, f"no process holds the initrd's files:\n{still}"
        times.update(systemd_account(vm))
        failed = vm.shell("systemctl --failed --no-legend --plain --no-pager")
        assert "failed" not in failed, f"units failed during the boot:\n{failed}"
        # the wired interface got its address from QEMU's DHCP (udev started
        # rescue-dhcp@IF.service when the interface appeared)
        address = vm.shell("for i in $(seq 60); do ip -4 -o addr show scope global | "
                           "grep -q inet && break; sleep 1; done; ip -4 -o addr show "
                           "scope global; systemctl list-units --no-pager --no-legend "
                           "'rescue-dhcp@*'",
                           120)
        assert "10.0.2.15" in address, f"no DHCP address on the wired interface:\n{address}"
    finally:
        vm.stop()
    record(iso_out, firmware if vm.cpu == "max" else f"{firmware} -cpu {vm.cpu}", times)


# Keys that move the menu selection down: GRUB and isolinux's menu.c32 both take Ctrl+N.
DOWN = "\x0e"


@pytest.mark.parametrize("firmware", ["uefi", "bios"])
def test_serial_console_entry_runs_the_wizard_on_ttys0(iso_path: Path, tmp_path: Path,
                                                       firmware: str) -> None:
    """The shipped ISO, untouched: the technician picks "Rescue (serial console)" (third
    entry) on the serial port; the kernel's console and the wizard come to ttyS0."""
    vm = Machine(iso=iso_path, workdir=tmp_path / firmware, firmware=firmware)
    try:
        vm.start()
        vm.wait_for(r"Rescue \(serial console\)", 180)
        vm.send(DOWN)  # stops the countdown
        vm.send(DOWN)
        vm.send("\r")
        vm.wait_for(LAUNCHER, BOOT_BUDGET)
        vm.wait_for(r"Choose your language", vm.elapsed() + WIZARD_BUDGET)
        vm.quit_wizard_to_shell()
        cmdline = vm.shell("cat /proc/cmdline")
        assert "console=ttyS0,115200n8" in cmdline and "console=tty0" in cmdline, cmdline
        consoles = vm.shell("cat /sys/class/tty/console/active")
        assert "ttyS0" in consoles, consoles
        units = vm.shell("systemctl is-active serial-getty@ttyS0.service getty@tty1.service")
        assert units.split()[:2] == ["active", "active"], units
    finally:
        vm.stop()
