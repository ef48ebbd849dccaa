"""The two boot menus of the live ISO (iso/isolinux/isolinux.cfg for BIOS, iso/grub/grub.cfg
for UEFI) offer the same entries with the same kernel parameters; among them "Rescue
(serial console)" for servers reached over IPMI serial-over-LAN (issue 14). The boot of
each entry is tested on a built ISO (tests/iso/)."""

from __future__ import annotations

import re
from pathlib import Path

ISO = Path(__file__).resolve().parents[2] / "iso"
SERIAL = "console=tty0 console=ttyS0,115200n8"


def _isolinux() -> dict[str, str]:
    text = (ISO / "isolinux/isolinux.cfg").read_text()
    out = {}
    for block in re.split(r"\n(?=label )", text):
        label = re.search(r"menu label (.+)", block)
        append = re.search(r"append (.+)", block)
        if label and append:
            out[label.group(1).replace("^", "")] = append.group(1).strip()
    return out


def _grub() -> dict[str, str]:
    text = (ISO / "grub/grub.cfg").read_text()
    return {m.group(1): m.group(2).strip() for m in re.finditer(
        r'menuentry "([^"]+)"[^{]*\{\s*linux /live/vmlinuz ([^\n]+)', text)}


def test_both_menus_hold_the_same_linux_entries() -> None:
    bios, uefi = _isolinux(), _grub()
    assert set(bios) == set(uefi), (bios, uefi)
    for name in bios:
        # isolinux adds vga=normal to the safe-graphics entry; otherwise the same
        assert bios[name].replace(" vga=normal", "") == uefi[name], name


def test_a_serial_console_entry_runs_the_wizard_on_ttys0() -> None:
    for menu in (_isolinux(), _grub()):
        assert menu["Rescue (serial console)"] == f"@APPEND@ {SERIAL}"
    getty = (ISO.parent / "image-build/config/includes.chroot/etc/systemd/system/"
             "serial-getty@.service.d/zz-rescue-wizard.conf").read_text()
    assert "rescue-console" in getty  # the wizard, not a login prompt
