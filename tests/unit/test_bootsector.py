"""The start fields of NTFS, FAT and exFAT boot sectors follow a moved partition: made by
the real mkfs tools on image files, patched, and judged by the filesystems' own checkers
(which compare the boot sector with its backup, and exFAT's boot checksum)."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from rescue.fs.bootsector import exfat_checksum, plan_start_fix

MiB = 1024 * 1024


def _needs(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (make setup installs them)")


def _reader(path: Path):
    def read(offset: int, length: int) -> bytes:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(length)
    return read


def _apply(path: Path, writes: list[tuple[int, bytes]]) -> None:
    with open(path, "r+b") as f:
        for offset, data in writes:
            f.seek(offset)
            f.write(data)


def _u32(path: Path, offset: int) -> int:
    with open(path, "rb") as f:
        f.seek(offset)
        return int(struct.unpack("<I", f.read(4))[0])


def _volume(tmp_path: Path, name: str, *mkfs: str) -> Path:
    img = tmp_path / name
    with open(img, "wb") as f:
        f.truncate(64 * MiB)
    subprocess.run([*mkfs, str(img)], check=True, capture_output=True)
    return img


def test_ntfs_hidden_sectors_follow_the_move_in_both_boot_sectors(tmp_path: Path) -> None:
    _needs("mkfs.ntfs", "ntfsfix")
    img = _volume(tmp_path, "ntfs.img", "mkfs.ntfs", "-Q", "-F", "-p", "2048")
    backup = (64 * MiB // 512 - 1) * 512  # the volume's last sector
    assert _u32(img, 0x1C) == 2048 and _u32(img, backup + 0x1C) == 2048
    fix = plan_start_fix("ntfs", _reader(img), 2048, 1050624, 512)
    assert (fix.old, fix.new) == (2048, 1050624)
    assert [offset for offset, _data in fix.writes] == [0, backup]
    _apply(img, fix.writes)
    assert _u32(img, 0x1C) == 1050624 and _u32(img, backup + 0x1C) == 1050624
    check = subprocess.run(["ntfsfix", "-n", str(img)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "BAD" not in check.stdout


@pytest.mark.parametrize("bits", ["16", "32"])
def test_fat_hidden_sectors_follow_the_move(tmp_path: Path, bits: str) -> None:
    _needs("mkfs.fat", "fsck.fat")
    img = _volume(tmp_path, f"fat{bits}.img", "mkfs.fat", "-F", bits, "-h", "4096")
    fix = plan_start_fix("vfat", _reader(img), 4096, 300000, 512)
    offsets = [offset for offset, _data in fix.writes]
    assert offsets == ([0, 6 * 512] if bits == "32" else [0])
    _apply(img, fix.writes)
    for offset in offsets:
        assert _u32(img, offset + 0x1C) == 300000
    check = subprocess.run(["fsck.fat", "-n", str(img)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "differ" not in check.stdout  # fsck.fat compares the FAT32 backup boot sector


def test_4096_byte_disk_sectors_are_scaled_to_the_volume_sectors(tmp_path: Path) -> None:
    _needs("mkfs.ntfs")
    img = _volume(tmp_path, "ntfs.img", "mkfs.ntfs", "-Q", "-F", "-p", "2048")
    # a 512-byte-sector NTFS recording 2048 = disk sector 256 of a 4096-byte-sector disk
    fix = plan_start_fix("ntfs", _reader(img), 256, 512, 4096)
    assert (fix.old, fix.new) == (2048, 4096)
    assert fix.changes


def test_a_field_that_records_something_else_is_left_alone(tmp_path: Path) -> None:
    _needs("mkfs.fat")
    img = _volume(tmp_path, "fat.img", "mkfs.fat", "-F", "32", "-h", "0")
    fix = plan_start_fix("vfat", _reader(img), 2048, 4096, 512)
    assert not fix.changes and "records 0" in fix.note
    fix = plan_start_fix("vfat", lambda offset, length: bytes(length), 2048, 4096, 512)
    assert not fix.changes and fix.note


def _set_exfat_offset(img: Path, value: int) -> None:
    """Record *value* as PartitionOffset in both boot regions, checksums recomputed."""
    bps = 512
    with open(img, "r+b") as f:
        for region in (0, 12 * bps):
            f.seek(region)
            data = bytearray(f.read(12 * bps))
            struct.pack_into("<Q", data, 0x40, value)
            data[11 * bps:] = struct.pack("<I", exfat_checksum(bytes(data), bps)) * (bps // 4)
            f.seek(region)
            f.write(data)


def test_exfat_partition_offset_and_checksum(tmp_path: Path) -> None:
    _needs("mkfs.exfat", "fsck.exfat")
    img = _volume(tmp_path, "exfat.img", "mkfs.exfat")
    # the checksum of the untouched volume, as mkfs wrote it, is what we compute
    with open(img, "rb") as f:
        region = f.read(12 * 512)
    assert struct.pack("<I", exfat_checksum(region, 512)) == region[11 * 512:11 * 512 + 4]
    _set_exfat_offset(img, 2048)
    fix = plan_start_fix("exfat", _reader(img), 2048, 8192, 512)
    assert (fix.old, fix.new) == (2048, 8192)
    assert [o for o, _d in fix.writes] == [0, 11 * 512, 12 * 512, 23 * 512]
    _apply(img, fix.writes)
    with open(img, "rb") as f:
        data = f.read(24 * 512)
    for region in (0, 12 * 512):
        assert struct.unpack_from("<Q", data, region + 0x40)[0] == 8192
    check = subprocess.run(["fsck.exfat", "-n", str(img)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_ntfs_resized_volume_keeps_its_backup_in_the_partitions_last_sector(
        tmp_path: Path) -> None:
    """After ntfsresize (Windows' "Extend volume" too) the volume ends on a cluster
    boundary and the backup boot sector sits in the partition's last sector, not right
    after the volume."""
    _needs("mkfs.ntfs", "ntfsresize", "ntfsfix")
    img = _volume(tmp_path, "ntfs.img", "mkfs.ntfs", "-Q", "-F", "-p", "2048")
    length = 100 * MiB + 3 * 512
    with open(img, "r+b") as f:
        f.truncate(length)
    subprocess.run(["ntfsresize", "--force", "--no-progress-bar", str(img)], input="y\n",
                   text=True, check=True, capture_output=True)
    last = length - 512
    with open(img, "rb") as f:
        total = struct.unpack("<Q", f.read(0x30)[0x28:0x30])[0]
    assert total * 512 != last  # the case this test is about
    assert _u32(img, last + 0x1C) == 2048
    fix = plan_start_fix("ntfs", _reader(img), 2048, 4096, 512, length=length)
    assert last in [offset for offset, _data in fix.writes]
    _apply(img, fix.writes)
    assert _u32(img, 0x1C) == 4096 and _u32(img, last + 0x1C) == 4096
    check = subprocess.run(["ntfsfix", "-n", str(img)], capture_output=True, text=True)
    assert check.returncode == 0 and "BAD" not in check.stdout, check.stdout
