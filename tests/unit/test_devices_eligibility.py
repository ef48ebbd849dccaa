"""Eligibility on recorded machines: boot medium, repository disk, mounted, read-only,
optical, zram, no medium."""

from __future__ import annotations

from pathlib import Path

import pytest

from rescue.devices.eligibility import ROLE_BOOT_MEDIUM, ROLE_REPOSITORY, assess
from rescue.devices.inventory import Inventory

MACHINES = Path(__file__).parent.parent / "data" / "machines"


def load(name: str) -> Inventory:
    inv = Inventory.load(MACHINES / f"{name}.json")
    # Forget what the recording said; decide afresh.
    for d in inv.disks:
        d.eligible, d.ineligible_reasons, d.roles = True, [], []
    return inv


def eligible(inv: Inventory) -> list[str]:
    return [d.name for d in inv.disks if d.eligible]


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        ("laptop-nvme-usb", ["nvme0n1", "sdb"]),
        ("desktop-sata-raid", ["sda", "sdb", "sdc"]),
        ("vm-virtio", ["vda", "vdb"]),
        ("uefi-arm64-server", ["nvme0n1", "nvme1n1"]),
        ("bios-legacy-pc", ["sda"]),
        ("uefi-desktop-sata", ["sda"]),
        ("recorded-sandbox-vm", []),
    ],
)
def test_eligible_disks_of_each_recorded_machine(machine: str, expected: list[str]) -> None:
    assert eligible(assess(load(machine))) == expected


def test_assess_is_pure() -> None:
    inv = load("laptop-nvme-usb")
    out = assess(inv, repo_devices=["sdb"])
    assert all(d.eligible and not d.ineligible_reasons for d in inv.disks)
    assert not out.disk("sdb").eligible  # type: ignore[union-attr]


def test_boot_medium_is_protected_with_a_reason() -> None:
    inv = assess(load("laptop-nvme-usb"))
    stick = inv.disk("sda")
    assert stick is not None and not stick.eligible
    assert ROLE_BOOT_MEDIUM in stick.roles
    assert any("rescue system" in r for r in stick.ineligible_reasons)
    assert any("/run/live/medium" in r for r in stick.ineligible_reasons)


def test_explicit_boot_medium_overrides_the_recorded_one() -> None:
    inv = assess(load("laptop-nvme-usb"), boot_devices=["/dev/nvme0n1p2"])
    assert ROLE_BOOT_MEDIUM in inv.disk("nvme0n1").roles  # type: ignore[union-attr]
    # The stick is still mounted, so still not a target, but not as the boot medium.
    stick = inv.disk("sda")
    assert stick is not None and ROLE_BOOT_MEDIUM not in stick.roles and not stick.eligible


@pytest.mark.parametrize("ref", ["sdb", "/dev/sdb", "/dev/sdb1", "8:17", "8:16",
                                 "/dev/disk/by-id/usb-Samsung_PSSD_T7_S6WBNS0T812345A-0:0"])
def test_repository_disk_is_protected_whatever_the_reference(ref: str) -> None:
    inv = assess(load("laptop-nvme-usb"), repo_devices=[ref])
    ssd = inv.disk("sdb")
    assert ssd is not None and not ssd.eligible
    assert ssd.roles == [ROLE_REPOSITORY]
    assert ssd.ineligible_reasons == ["it holds the selected image repository"]
    assert inv.disk("nvme0n1").eligible  # type: ignore[union-attr]


def test_unknown_repository_reference_protects_nothing_else() -> None:
    inv = assess(load("laptop-nvme-usb"), repo_devices=["sdz", "7:3"])
    assert eligible(inv) == ["nvme0n1", "sdb"]


def test_mounted_partition_and_swap_make_a_disk_ineligible() -> None:
    inv = load("desktop-sata-raid")
    inv.disk("sdb").partitions[0].mountpoints = ["/mnt/data"]  # type: ignore[union-attr]
    inv.disk("sda").partitions[1].swap = True  # type: ignore[union-attr]
    out = assess(inv)
    assert out.disk("sdb").ineligible_reasons == ["/dev/sdb1 is mounted on /mnt/data"]  # type: ignore[union-attr]
    assert out.disk("sda").ineligible_reasons == ["/dev/sda2 is in use as swap"]  # type: ignore[union-attr]
    assert eligible(out) == ["sdc"]


def test_holder_raid_member_is_ineligible() -> None:
    inv = load("desktop-sata-raid")
    inv.disk("sdc").partitions[0].holders = ["md0"]  # type: ignore[union-attr]
    out = assess(inv)
    assert any("md0" in r for r in out.disk("sdc").ineligible_reasons)  # type: ignore[union-attr]


def test_optical_zram_read_only_and_empty_reader() -> None:
    desk = assess(load("desktop-sata-raid"))
    assert "it is an optical drive" in desk.disk("sr0").ineligible_reasons  # type: ignore[union-attr]
    vm = assess(load("vm-virtio"))
    zram = vm.disk("zram0")
    assert zram is not None and any("zram" in r for r in zram.ineligible_reasons)
    assert any("swap" in r for r in zram.ineligible_reasons)
    wp = assess(load("uefi-desktop-sata")).disk("sdc")
    assert wp is not None and any("read-only" in r for r in wp.ineligible_reasons)
    reader = assess(load("bios-legacy-pc")).disk("sdc")
    assert reader is not None and reader.ineligible_reasons == ["it has no medium (size 0)"]


def test_current_root_of_an_installed_system_is_protected() -> None:
    inv = assess(load("recorded-sandbox-vm"))
    vda = inv.disk("vda")
    assert vda is not None and ROLE_BOOT_MEDIUM in vda.roles
    assert "/dev/vda is mounted on /" in vda.ineligible_reasons


def test_loop_devices_are_eligible_when_listed() -> None:
    inv = load("vm-virtio")
    loop = inv.disks[1]
    loop.kind, loop.name, loop.path, loop.dev = "loop", "loop3", "/dev/loop3", "7:3"
    assert "loop3" in eligible(assess(inv))
