"""Inventory and machine files: round trips, lookups, loading errors; and the probe on
this machine (read-only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rescue.devices.inventory import Inventory, probe_inventory, repo_devices
from rescue.errors import UsageError
from rescue.hardware.machine import Machine

MACHINES = Path(__file__).parent.parent / "data" / "machines"
ALL = sorted(p.stem for p in MACHINES.glob("*.json"))


def test_there_are_recorded_machines_for_each_kind() -> None:
    kinds = {Machine.load(MACHINES / f"{n}.json").hardware.firmware for n in ALL}
    assert kinds == {"uefi", "bios"}
    buses = {
        d.transport for n in ALL for d in Machine.load(MACHINES / f"{n}.json").inventory.disks
    }
    assert {"nvme", "sata", "scsi", "usb", "virtio"} <= buses


@pytest.mark.parametrize("name", ALL)
def test_machine_file_round_trips(name: str, tmp_path: Path) -> None:
    m = Machine.load(MACHINES / f"{name}.json")
    out = tmp_path / "again.json"
    m.dump(out)
    again = Machine.load(out)
    assert again.inventory.source == str(out)  # where it was read from
    again.inventory.source = m.inventory.source
    assert again.to_dict() == m.to_dict()
    assert json.loads(out.read_text())["format"] == "rescue-machine"


def test_inventory_load_accepts_a_machine_file_and_a_bare_inventory(tmp_path: Path) -> None:
    inv = Inventory.load(MACHINES / "laptop-nvme-usb.json")
    assert [d.name for d in inv.disks] == ["nvme0n1", "sda", "sdb"]
    bare = tmp_path / "inv.json"
    inv.dump(bare)
    assert Inventory.load(bare).to_dict()["disks"] == inv.to_dict()["disks"]
    assert Inventory.load(bare).source == str(bare)


def test_locate_by_name_path_devnum_and_by_id() -> None:
    inv = Inventory.load(MACHINES / "laptop-nvme-usb.json")
    disk, part = inv.locate("/dev/nvme0n1p2")  # type: ignore[misc]
    assert disk.name == "nvme0n1" and part is not None and part.fstype == "ext4"
    assert inv.disk("259:0").name == "nvme0n1"  # type: ignore[union-attr]
    assert inv.disk("/dev/disk/by-id/usb-SanDisk_Ultra_4C530001230816118453-0:0").name == "sda"  # type: ignore[union-attr]
    assert inv.disk("sdq") is None


def test_partition_fields_are_recorded() -> None:
    inv = Inventory.load(MACHINES / "laptop-nvme-usb.json")
    esp = inv.disk("nvme0n1").partitions[0]  # type: ignore[union-attr]
    assert (esp.fstype, esp.label, esp.number) == ("vfat", "SYSTEM", 1)
    assert esp.parttype == "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
    assert esp.uuid and esp.partuuid


@pytest.mark.parametrize("content", ["", "[1, 2]", "{not json"])
def test_bad_machine_files_raise_usage_errors(tmp_path: Path, content: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(UsageError):
        Machine.load(bad)
    with pytest.raises(UsageError):
        Inventory.load(bad)


def test_missing_machine_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="Cannot read"):
        Machine.load(tmp_path / "nope.json")


def test_newer_machine_format_is_refused() -> None:
    data = json.loads((MACHINES / "vm-virtio.json").read_text())
    data["version"] = 99
    with pytest.raises(UsageError, match="newer rescue"):
        Machine.from_dict(data)


def test_probe_this_machine_reads_only_and_finds_disks() -> None:
    inv = probe_inventory()
    assert inv.disks, "a machine without block devices cannot run the test suite"
    assert all(d.kind != "loop" for d in inv.disks)
    for d in inv.disks:
        assert d.dev.count(":") == 1 and d.path.startswith("/dev/")
        assert d.eligible == (not d.ineligible_reasons)
    again = Inventory.from_dict(json.loads(json.dumps(inv.to_dict())))
    assert again == inv


def test_root_filesystem_disk_is_never_eligible() -> None:
    root_disks = repo_devices(["/"])
    inv = probe_inventory()
    for dev in root_disks:
        disk = inv.disk(dev)
        if disk is not None:
            assert not disk.eligible


def test_repo_devices_of_a_path_on_no_block_device_is_empty(tmp_path: Path) -> None:
    assert repo_devices(["/proc", str(tmp_path / "does-not-exist")]) == []
