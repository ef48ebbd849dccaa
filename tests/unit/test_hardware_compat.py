"""The compatibility verdict for every pair of recorded machines, and its rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rescue.cli import main
from rescue.hardware.compat import (
    BOOT_CRITICAL,
    EXIT_CODES,
    OTHER,
    Verdict,
    compare,
)
from rescue.hardware.profile import BootDisk, HardwareProfile

MACHINES = Path(__file__).parent.parent / "data" / "machines"

L, D, V = "laptop-nvme-usb", "desktop-sata-raid", "vm-virtio"
A, B, U, S = "uefi-arm64-server", "bios-legacy-pc", "uefi-desktop-sata", "recorded-sandbox-vm"
ALL = [L, D, V, A, B, U, S]
C, F, X = "compatible", "fixups", "blocked"

# EXPECTED[image][machine]. Reasons: UEFI <-> BIOS blocks; aarch64 <-> x86_64 blocks;
# a storage controller change needs an initramfs fix-up; a lower x86-64 level warns.
EXPECTED = {
    L: {L: C, D: X, V: X, A: X, B: X, U: F, S: X},
    D: {L: X, D: C, V: F, A: X, B: F, U: X, S: F},
    V: {L: X, D: F, V: C, A: X, B: F, U: X, S: C},
    A: {L: X, D: X, V: X, A: C, B: X, U: X, S: X},
    B: {L: X, D: F, V: F, A: X, B: C, U: X, S: F},
    U: {L: F, D: X, V: X, A: X, B: X, U: C, S: X},
    S: {L: X, D: F, V: F, A: X, B: F, U: X, S: C},
}


def profile(name: str) -> HardwareProfile:
    return HardwareProfile.load(MACHINES / f"{name}.json")


@pytest.mark.parametrize("image", ALL)
@pytest.mark.parametrize("machine", ALL)
def test_verdict_for_each_pair_of_recorded_machines(image: str, machine: str) -> None:
    v = compare(profile(image), profile(machine))
    assert v.level == EXPECTED[image][machine], [(d.component, d.effect) for d in v.differences]
    assert v.exit_code == EXIT_CODES[v.level]
    assert v.initramfs_drivers == profile(machine).storage_modules()
    for d in v.differences:
        assert d.klass in (BOOT_CRITICAL, OTHER) and d.meaning and d.action
    if image == machine:
        assert v.differences == []


def test_arm64_image_on_x86_64_is_blocked_with_a_reason() -> None:
    v = compare(profile(A), profile(U))
    arch = [d for d in v.differences if d.component == "cpu.architecture"]
    assert arch and arch[0].effect == "block" and arch[0].klass == BOOT_CRITICAL
    assert (arch[0].source, arch[0].target) == ("aarch64", "x86_64")
    assert v.exit_code == 23


def test_virtio_to_nvme_needs_nvme_in_the_initramfs() -> None:
    src, dst = profile(V), profile(L)
    dst.firmware, dst.secure_boot = "bios", None  # same firmware: only storage differs
    v = compare(src, dst)
    assert v.level == "fixups"
    storage = next(d for d in v.differences if d.component == "storage.driver")
    assert (storage.source, storage.target) == ("virtio_blk", "nvme")
    assert "initramfs must contain nvme" in storage.meaning
    assert "adds nvme" in storage.action
    assert v.initramfs_drivers == ["nvme"]
    bus = next(d for d in v.differences if d.component == "boot_disk.bus")
    assert "/dev/vda becomes /dev/nvme0n1" in bus.meaning


def test_other_hardware_is_listed_as_install_drivers_after_restore() -> None:
    v = compare(profile(D), profile(B))
    others = {d.component: d for d in v.differences if d.klass == OTHER}
    assert set(others) >= {"network", "display", "storage.other"}
    assert (others["network"].source, others["network"].target) == ("r8169", "e1000e")
    assert "after restore" in others["network"].action
    assert all(d.effect == "none" for d in others.values())


def test_lower_x86_64_level_warns_but_does_not_block() -> None:
    v = compare(profile(D), profile(B))
    lvl = next(d for d in v.differences if d.component == "cpu.x86_64_level")
    assert (lvl.source, lvl.target, lvl.effect) == ("x86-64-v3", "x86-64-v1", "warning")


def test_secure_boot_on_target_warns() -> None:
    v = compare(profile(U), profile(L))
    sb = next(d for d in v.differences if d.component == "firmware.secure_boot")
    assert sb.effect == "warning" and sb.target == "on"
    assert v.uefi_entry_needed


def test_unknown_source_profile_adds_the_target_drivers() -> None:
    old = HardwareProfile.from_dict({"architecture": "x86_64", "firmware": "bios", "extra": {}})
    v = compare(old, profile(D))
    assert v.level == "fixups"
    assert next(d for d in v.differences if d.component == "storage.driver").source == "unknown"


def test_32bit_x86_image_runs_on_x86_64() -> None:
    src = profile(B)
    src.architecture = src.cpu.architecture = "i686"
    v = compare(src, profile(B))
    assert v.level == "compatible"
    assert [d.component for d in v.differences] == ["cpu.architecture"]


def test_verdict_round_trips_through_json() -> None:
    v = compare(profile(L), profile(U))
    data = json.loads(json.dumps(v.to_dict()))
    assert data["level"] == "fixups" and data["exit_code"] == 24
    assert Verdict.from_dict(data) == v
    assert any(line == "Verdict: compatible with fix-ups" for line in v.describe())


def test_boot_disk_controller_skips_generic_drivers() -> None:
    assert BootDisk(drivers=["sd", "uas", "xhci_hcd"]).controller == "uas"
    assert BootDisk(drivers=["virtio_blk", "virtio-pci"]).controller == "virtio_blk"
    assert BootDisk().controller == ""


@pytest.mark.parametrize(("image", "machine", "code"), [(V, S, 0), (D, V, 24), (A, L, 23)])
def test_compat_command_exit_codes(
    image: str, machine: str, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["compat", "--source-machine", str(MACHINES / f"{image}.json"),
               "--machine", str(MACHINES / f"{machine}.json")])
    assert rc == code
    assert capsys.readouterr().out.startswith("Verdict: ")


def test_compat_command_json(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["compat", "--json", "--source-machine", str(MACHINES / f"{D}.json"),
               "--machine", str(MACHINES / f"{V}.json")])
    data = json.loads(capsys.readouterr().out)
    assert rc == 24 and data["level"] == "fixups"
    assert data["initramfs_drivers"] == ["virtio_blk", "virtio_pci"]


def test_compat_command_needs_an_image(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compat"]) == 2
    assert "--repo" in capsys.readouterr().err


def test_compat_command_reads_the_profile_from_an_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import UTC, datetime

    from rescue.image.manifest import Disk, Manifest
    from rescue.image.repository import Repository, new_image_id

    repo = Repository.create(tmp_path / "repo")
    when = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    image_id = new_image_id(when)
    repo.write_manifest(Manifest(
        id=image_id, name="arm server", created_utc="2026-05-01T10:00:00Z",
        created_local="2026-05-01T10:00:00+00:00", timezone="", computer="arm1",
        os_name="Debian GNU/Linux 12 (bookworm)", os_id="debian", os_version="12",
        firmware="uefi", hardware=profile(A).to_dict(), chunk_size=4 << 20,
        compression="zstd", disks=[Disk(size_bytes=1 << 30, logical_sector_size=512,
                                        physical_sector_size=512, table="gpt", id="G")],
    ))
    args = ["compat", "--repo", str(tmp_path / "repo"), "--image", image_id[:10],
            "--machine", str(MACHINES / f"{U}.json")]
    assert main(args) == 23
    out = capsys.readouterr().out
    assert out.startswith("Verdict: blocked") and "aarch64 -> x86_64" in out
    assert main(["compat", "--repo", str(tmp_path / "repo"),
                 "--machine", str(MACHINES / f"{A}.json")]) == 0


def test_loop_target_stands_in_for_a_disk() -> None:
    """Demos and tests restore onto loop devices: no bus change, the machine's
    controllers count."""
    machine = profile(V)
    machine.boot_disk = BootDisk(name="loop3", bus="loop")
    v = compare(profile(V), machine)
    assert v.level == "compatible", v.differences
    assert v.initramfs_drivers == ["virtio_blk", "ata_piix"]


def test_unknown_target_disk_with_a_new_controller_needs_its_driver() -> None:
    machine = profile(D)
    machine.boot_disk = None
    v = compare(profile(V), machine)
    storage = next(d for d in v.differences if d.component == "storage.driver")
    assert "ahci" in storage.action and "megaraid_sas" in storage.action
    assert v.initramfs_drivers == ["ahci", "megaraid_sas"]
