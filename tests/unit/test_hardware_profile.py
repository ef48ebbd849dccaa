"""Hardware profile: CPU parsing and feature levels, old-manifest compatibility, and the
profile of this machine (read from sysfs/procfs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rescue.devices.blockdev import disk_bus
from rescue.hardware.profile import (
    HardwareProfile,
    collect_profile,
    firmware_type,
    normalize_arch,
    parse_cpuinfo,
    x86_64_level,
)

V1 = "fpu cx8 cmov mmx fxsr sse sse2 syscall lm"
V2 = V1 + " pni ssse3 cx16 sse4_1 sse4_2 popcnt lahf_lm"
V3 = V2 + " avx avx2 bmi1 bmi2 f16c fma abm movbe xsave"
V4 = V3 + " avx512f avx512bw avx512cd avx512dq avx512vl"


@pytest.mark.parametrize(("flags", "level"), [(V1, 1), (V2, 2), (V3, 3), (V4, 4), ("fpu sse", 0)])
def test_x86_64_levels(flags: str, level: int) -> None:
    assert x86_64_level(flags.split()) == level


def test_level_needs_every_flag_of_the_level() -> None:
    assert x86_64_level((V3 + " avx512f").replace(" movbe", "").split()) == 2


def test_parse_cpuinfo_x86() -> None:
    text = (
        "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R)  Core(TM) i5\n"
        f"flags\t\t: {V3}\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\n"
    )
    cpu = parse_cpuinfo(text, "x86_64")
    assert (cpu.vendor, cpu.model, cpu.architecture, cpu.x86_64_level, cpu.cores) == (
        "GenuineIntel", "Intel(R) Core(TM) i5", "x86_64", 3, 2)


def test_parse_cpuinfo_arm64() -> None:
    text = "processor\t: 0\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n"
    cpu = parse_cpuinfo(text, "aarch64")
    assert (cpu.vendor, cpu.architecture, cpu.x86_64_level) == ("ARM", "aarch64", 0)


@pytest.mark.parametrize(("raw", "norm"), [("amd64", "x86_64"), ("arm64", "aarch64"),
                                           ("x86_64", "x86_64"), ("i386", "i686")])
def test_normalize_arch(raw: str, norm: str) -> None:
    assert normalize_arch(raw) == norm


@pytest.mark.parametrize(
    ("path", "name", "bus"),
    [
        ("/sys/devices/pci0000:00/0000:00:17.0/ata3/host2/target2:0:0/2:0:0:0/block/sda", "sda",
         "sata"),
        ("/sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb",
         "sdb", "usb"),
        ("/sys/devices/pci0000:00/0000:00:1d.0/0000:04:00.0/nvme/nvme0/nvme0n1", "nvme0n1", "nvme"),
        ("/sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda", "vda", "virtio"),
        ("/sys/devices/pci0000:00/0000:00:05.0/virtio3/host0/target0:0:0/0:0:0:0/block/sda", "sda",
         "scsi"),
        ("/sys/devices/pci0000:00/0000:00:1e.6/mmc_host/mmc0/mmc0:0001/block/mmcblk0", "mmcblk0",
         "mmc"),
        ("/sys/devices/virtual/block/loop0", "loop0", "loop"),
    ],
)
def test_disk_bus_from_sysfs_path(path: str, name: str, bus: str) -> None:
    assert disk_bus(path, name) == bus


def test_placeholder_profile_of_the_core_issue_still_loads() -> None:
    p = HardwareProfile.from_dict({"architecture": "x86_64", "firmware": "uefi", "extra": {}})
    assert p.architecture == "x86_64" and p.cpu.architecture == "x86_64"
    assert p.boot_disk is None and p.storage == [] and p.firmware == "uefi"


def test_storage_modules_prefer_the_boot_disk_chain() -> None:
    p = HardwareProfile.load(
        Path(__file__).parent.parent / "data" / "machines" / "desktop-sata-raid.json")
    assert p.storage_modules() == ["sd_mod", "ahci"]
    p.boot_disk = None
    assert p.storage_modules() == ["ahci", "megaraid_sas"]


def test_collect_profile_on_this_machine() -> None:
    p = collect_profile()
    assert p.architecture == normalize_arch(p.cpu.architecture) != ""
    assert p.firmware == firmware_type() in ("uefi", "bios")
    if p.architecture == "x86_64":
        assert p.cpu.x86_64_level >= 1
    assert p.cpu.cores >= 1 and p.memory_bytes > 0
    for dev in p.storage + p.network + p.display + p.audio:
        assert dev.kind in ("storage", "network", "display", "audio")
    again = HardwareProfile.from_dict(json.loads(json.dumps(p.to_dict())))
    assert again == p


def test_boot_disk_of_this_machine_has_a_driver_chain() -> None:
    disks = [d.name for d in Path("/sys/block").iterdir()
             if not d.name.startswith(("loop", "zram", "ram", "dm-", "md", "sr"))]
    if not disks:
        pytest.skip("no physical disk on this machine")
    p = collect_profile(boot_disk=f"/dev/{disks[0]}")
    assert p.boot_disk is not None and p.boot_disk.name == disks[0]
    assert p.boot_disk.bus and p.boot_disk.drivers and p.storage_modules()


def test_profile_with_nulls_and_junk_still_loads() -> None:
    p = HardwareProfile.from_dict({
        "architecture": "x86_64", "firmware": "bios", "storage": None, "network": [None],
        "boot_disk": "sda", "extra": None, "cpu": None, "system": None,
    })
    assert p.storage == [] and p.network == [] and p.boot_disk is None
    assert p.cpu.architecture == "x86_64"
