"""The disks technicians meet, seen by the live system as the restore targets they are:
an NVMe disk, a USB-attached disk, an SD card (the mmc block driver eMMC uses: mmcblkN),
a 4Kn disk (4096-byte logical sectors) and a virtio disk, each listed by `rescue devices`
with its bus, its exact size and its sector size, and eligible as a target.

The live ISO boots (UEFI, TCG) with a root shell on serial (`rescue_console=shell`);
`rescue devices --json` is read there and summarised one line per disk.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from isoqemu import Disk, Machine, custom_iso

pytestmark = pytest.mark.qemu

MiB = 1024 * 1024
APPEND = "console=ttyS0,115200n8 rescue_console=shell"
# bus, serial, size, logical sector, expected transport
KINDS = [
    ("virtio", "KIND-VIRTIO", 1536 * MiB, 512, "virtio"),
    ("nvme", "KIND-NVME", 1280 * MiB, 512, "nvme"),
    ("virtio", "KIND-4KN", 1024 * MiB, 4096, "virtio"),
    ("usb", "KIND-USB", 768 * MiB, 512, "usb"),
    ("sd", "", 512 * MiB, 512, "mmc"),  # QEMU wants an SD card's size to be a power of 2
]
SUMMARY = (
    "/opt/rescue/venv/bin/rescue devices --json >/tmp/devices.json && "
    "/opt/rescue/venv/bin/python3 -c \"import json; "
    "[print('DISK', d['name'], d['transport'], d['size'], d['logical_sector_size'], "
    "d['eligible'], d['serial'] or '-', sep='|') "
    "for d in json.load(open('/tmp/devices.json'))['disks']]\""
)


def test_live_system_lists_each_kind_of_disk_with_its_size(iso_path: Path,
                                                           tmp_path: Path) -> None:
    iso = custom_iso(iso_path, tmp_path / "shell.iso", APPEND, "Rescue (disk kinds)")
    disks = []
    for i, (bus, serial, size, sector, _t) in enumerate(KINDS):
        f = tmp_path / f"disk{i}.img"
        with f.open("wb") as fh:
            fh.truncate(size)
        disks.append(Disk(f, serial, bus=bus, sector=sector))
    vm = Machine(iso=iso, workdir=tmp_path / "vm", firmware="uefi", disks=disks)
    try:
        vm.start()
        vm.wait_for(r"root@rescue|This is a root shell|# $", 420)
        vm.shell("udevadm settle", 120)
        out = vm.shell(SUMMARY, 180)
    finally:
        vm.stop()
    # DISK|name|transport|size|logical sector|eligible|serial
    rows = {f[1]: f for f in (line[line.index("DISK|"):].split("|")
                              for line in out.splitlines() if "DISK|" in line)}
    for bus, _serial, size, sector, transport in KINDS:
        match = [r for r in rows.values()
                 if r[2] == transport and int(r[3]) == size and int(r[4]) == sector]
        assert match, (f"no {transport} disk of {size} bytes with {sector}-byte sectors in "
                       f"`rescue devices`: {sorted(rows.values())}\n{out}")
        assert match[0][5] == "True", f"{bus} disk {match[0][1]} is not eligible: {match[0]}"
    assert any(r[1].startswith("mmcblk") for r in rows.values()), rows
    assert any(r[1].startswith("nvme") for r in rows.values()), rows
