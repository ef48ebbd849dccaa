"""Boot fix-ups on real loop devices: a real ESP (FAT32, mtools), real ext4 roots, a real
MBR. No QEMU here (that is tests/system)."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from loopdev import MiB, loop_device, mounted, partition, sh

from rescue.engine.bootfix import FixupContext, run_fixups
from rescue.events import LogMessage
from rescue.image.manifest import BootArea, ChunkedData, Disk, Manifest, Partition
from rescue.plan.fixups import plan_fixups
from rescue.runner import RecordingRunner

pytestmark = pytest.mark.root

ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX = "0FC63DAF-8483-4772-8E7D-3D69E4C47D1E"
MTOOLS = dict(os.environ, MTOOLS_SKIP_CHECK="1")


def make_manifest(parts: list[Partition], table: str, firmware: str,
                  source: str = "/dev/sda") -> Manifest:
    disk = Disk(64 * MiB, 512, 512, table, "0x1", source_path=source, partitions=parts)
    return Manifest(
        id="it", name="", created_utc="", created_local="", timezone="", computer="it-pc",
        os_name="Debian GNU/Linux 12 (bookworm)", os_id="debian", os_version="12",
        firmware=firmware, hardware={}, chunk_size=4 << 20, compression="zstd", disks=[disk],
    )


def mounts_under(prefix: str) -> list[str]:
    return [ln for ln in Path("/proc/mounts").read_text().splitlines() if prefix in ln]


def make_root(node: str, where: Path, fstab: str) -> str:
    fs_uuid = str(uuid.uuid4())
    sh("mkfs.ext4", "-q", "-F", "-U", fs_uuid, node)
    with mounted(node, where) as mnt:
        (mnt / "etc").mkdir()
        (mnt / "sbin").mkdir()
        (mnt / "sbin/init").write_text("#!/bin/sh\n")
        (mnt / "etc/fstab").write_text(fstab.replace("@ROOT@", fs_uuid))
    return fs_uuid


@pytest.fixture
def uefi_disk(tmp_path):
    """GPT: 1 = ESP with GRUB only in \\EFI\\debian, 2 = ext4 root."""
    with loop_device(tmp_path / "disk.img", 96 * MiB) as dev:
        nodes = partition(dev, f"label: gpt\nsize=40MiB, type={ESP}\ntype={LINUX}\n")
        sh("mkfs.vfat", "-F", "32", "-n", "EFI", nodes[0])
        sh("mmd", "-i", nodes[0], "::/EFI", "::/EFI/debian", env=MTOOLS)
        loader = tmp_path / "grubx64.efi"
        loader.write_bytes(os.urandom(150_000))
        sh("mcopy", "-i", nodes[0], loader, "::/EFI/debian/grubx64.efi", env=MTOOLS)
        esp_uuid = sh("blkid", "-o", "value", "-s", "UUID", nodes[0]).strip()
        make_root(nodes[1], tmp_path / "mnt",
                  "UUID=@ROOT@ / ext4 defaults 0 1\n"
                  f"UUID={esp_uuid} /boot/efi vfat umask=0077 0 1\n")
        parts = [Partition(1, 2048, 81920, ESP, filesystem="vfat"),
                 Partition(2, 83968, 112607, LINUX, filesystem="ext4")]
        yield dev, {1: nodes[0], 2: nodes[1]}, make_manifest(parts, "gpt", "uefi"), loader


def test_uefi_fallback_loader_added_and_read_back(uefi_disk, tmp_path):
    dev, nodes, manifest, loader = uefi_disk
    steps = plan_fixups(manifest, "uefi", [], set())
    logs: list[str] = []
    ctx = FixupContext(disk=dev, partitions=nodes, manifest=manifest, firmware="uefi",
                       runner=RecordingRunner(),
                       sink=lambda e: logs.append(e.text) if isinstance(e, LogMessage) else None,
                       efivars=str(tmp_path / "no-efivars"), workdir=str(tmp_path / "work"))
    results = {r.name: r for r in run_fixups(ctx, steps)}
    assert results["uefi-fallback-loader"].status == "done", results
    assert "\\EFI\\debian\\grubx64.efi -> \\EFI\\BOOT\\BOOTX64.EFI" in (
        results["uefi-fallback-loader"].detail)
    copied = tmp_path / "copied.efi"
    sh("mcopy", "-n", "-i", nodes[1], "::/EFI/BOOT/BOOTX64.EFI", copied, env=MTOOLS)
    assert copied.read_bytes() == loader.read_bytes()
    # Not on UEFI firmware here: the NVRAM step says so instead of pretending.
    assert results["uefi-nvram-entry"].status == "skipped"
    assert results["fstab-check"].status == "done"
    assert "2 of 2 entries resolve" in results["fstab-check"].detail
    assert any("uefi-fallback-loader: done" in line for line in logs)
    assert mounts_under(str(tmp_path)) == []
    # Idempotent: a second run finds the loader and changes nothing.
    again = {r.name: r for r in run_fixups(ctx, steps)}
    assert again["uefi-fallback-loader"].status == "done"
    assert "already on the ESP" in again["uefi-fallback-loader"].detail


def test_uefi_fallback_fails_honestly_without_a_loader(tmp_path):
    with loop_device(tmp_path / "disk.img", 48 * MiB) as dev:
        nodes = partition(dev, f"label: gpt\nsize=40MiB, type={ESP}\n")
        sh("mkfs.vfat", "-F", "32", nodes[0])
        manifest = make_manifest([Partition(1, 2048, 81920, ESP, filesystem="vfat")], "gpt",
                                 "uefi")
        steps = plan_fixups(manifest, "uefi", [], {"uefi-nvram-entry"})
        ctx = FixupContext(disk=dev, partitions={1: nodes[0]}, manifest=manifest,
                           firmware="uefi", runner=RecordingRunner())
        results = {r.name: r for r in run_fixups(ctx, steps)}
    assert results["uefi-fallback-loader"].status == "failed"
    assert "no installed UEFI loader" in results["uefi-fallback-loader"].detail
    assert results["uefi-nvram-entry"].status == "skipped"
    assert "by option" in results["uefi-nvram-entry"].detail


def test_fstab_device_names_rewritten_and_missing_uuid_reported(tmp_path):
    with loop_device(tmp_path / "disk.img", 64 * MiB) as dev:
        nodes = partition(dev, "label: dos\nsize=20MiB, type=83\ntype=83\n")
        data_uuid = str(uuid.uuid4())
        sh("mkfs.ext4", "-q", "-F", "-U", data_uuid, nodes[0])
        root_uuid = make_root(
            nodes[1], tmp_path / "mnt",
            "/dev/sda2 / ext4 defaults 0 1\n"
            "/dev/sda1 /data ext4 defaults 0 2\n"
            "UUID=0b5e0000-0000-4000-8000-000000000000 /gone ext4 defaults 0 2\n"
            "LABEL=usbstick /media/usb ext4 noauto 0 0\n"
            "tmpfs /tmp tmpfs defaults 0 0\n",
        )
        parts = [Partition(1, 2048, 40960, "83", filesystem="ext4"),
                 Partition(2, 43008, 88064, "83", filesystem="ext4")]
        manifest = make_manifest(parts, "dos", "bios", source="/dev/sda")
        steps = [s for s in plan_fixups(manifest, "bios", [], set()) if s.name == "fstab-check"]
        assert steps[0].params["root_candidates"] == [2, 1]
        ctx = FixupContext(disk=dev, partitions={1: nodes[0], 2: nodes[1]}, manifest=manifest,
                           firmware="bios", runner=RecordingRunner(),
                           workdir=str(tmp_path / "work"))
        [result] = run_fixups(ctx, steps)
        assert result.status == "failed"
        assert "UUID=0b5e0000-0000-4000-8000-000000000000 (/gone)" in result.detail
        assert "emergency mode" in result.detail
        assert "LABEL=usbstick" in result.detail  # noted, not fatal: noauto
        with mounted(nodes[1], tmp_path / "check") as mnt:
            fstab = (mnt / "etc/fstab").read_text()
            assert (mnt / "etc/fstab.rescue-backup").read_text().startswith("/dev/sda2 /")
        assert fstab.startswith(f"UUID={root_uuid} / ext4 defaults 0 1\n")
        assert f"UUID={data_uuid} /data ext4" in fstab
        assert mounts_under(str(tmp_path / "work")) == []


def test_bios_boot_code_checked_on_the_disk(tmp_path):
    with loop_device(tmp_path / "disk.img", 32 * MiB) as dev:
        nodes = partition(dev, "label: dos\ntype=83\n")
        make_root(nodes[0], tmp_path / "mnt", "UUID=@ROOT@ / ext4 defaults 0 1\n")
        manifest = make_manifest([Partition(1, 2048, 63488, "83", filesystem="ext4")], "dos",
                                 "bios")
        # the image holds BIOS boot code (a BIOS system), so the check is planned
        manifest.disks[0].boot_areas.append(
            BootArea("mbr-boot-code", 0, ChunkedData(440, 1 << 20, chunks=[(0, "ab" * 32)])))
        steps = [s for s in plan_fixups(manifest, "bios", [], set())
                 if s.name == "bios-boot-code"]
        assert steps
        ctx = FixupContext(disk=dev, partitions={1: nodes[0]}, manifest=manifest,
                           firmware="bios", runner=RecordingRunner())
        [empty] = run_fixups(ctx, steps)
        assert empty.status == "failed" and "boot code" in empty.detail
        with open(dev, "r+b") as f:  # what grub-install puts there, in shape
            f.write(b"\xeb\x63\x90" + os.urandom(437))
            f.seek(512)
            f.write(os.urandom(64 * 1024))
        subprocess.run(["sync"], check=True)
        [ok] = run_fixups(ctx, steps)
        assert ok.status == "done", ok.detail
        assert "post-MBR gap" in ok.detail
