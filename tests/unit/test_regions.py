"""rescue.fs.regions: the byte ranges copied besides a filesystem's allocation map."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from rescue.fs.regions import BELT, extra_ranges

MiB = 1024 * 1024
OFFSET = MiB  # the partition starts 1 MiB into the "disk" file


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    path = tmp_path / "disk.img"
    with open(path, "wb") as f:
        f.truncate(OFFSET + 64 * MiB)
    fd = os.open(path, os.O_RDWR)
    try:
        yield fd, path
    finally:
        os.close(fd)


def put(fd: int, at: int, data: bytes) -> None:
    os.pwrite(fd, data, OFFSET + at)


def test_belt_for_every_type_and_clipped_to_the_partition(disk) -> None:
    fd, _ = disk
    length = 10 * MiB + 512
    assert extra_ranges("ext4", fd, OFFSET, length) == [(0, BELT), (length - BELT, length)]
    assert extra_ranges(None, fd, OFFSET, 1000) == [(0, 1000), (0, 1000)]


def test_ntfs_backup_boot_sector_at_total_sectors(disk) -> None:
    fd, _ = disk
    boot = bytearray(512)
    boot[3:11] = b"NTFS    "
    struct.pack_into("<H", boot, 0x0B, 512)
    struct.pack_into("<Q", boot, 0x28, 40_000)  # a volume shorter than its partition
    put(fd, 0, bytes(boot))
    got = extra_ranges("ntfs", fd, OFFSET, 48 * MiB)
    assert (40_000 * 512, 40_001 * 512) in got


def test_ntfs_without_signature_gets_the_belt_only(disk) -> None:
    fd, _ = disk
    assert extra_ranges("ntfs", fd, OFFSET, 48 * MiB) == [(0, BELT), (48 * MiB - BELT, 48 * MiB)]


def test_hfsplus_alternate_volume_header(disk) -> None:
    fd, _ = disk
    header = bytearray(512)
    header[0:2] = b"H+"
    struct.pack_into(">II", header, 40, 4096, 5000)  # volume of 5000 blocks of 4 KiB
    put(fd, 1024, bytes(header))
    end = 4096 * 5000
    assert (end - 1024, end - 512) in extra_ranges("hfsplus", fd, OFFSET, 40 * MiB)


def test_btrfs_mirrors_inside_the_partition_only(disk) -> None:
    fd, _ = disk
    length = 100 * MiB
    got = extra_ranges("btrfs", fd, OFFSET, length)
    assert (64 * 1024, 68 * 1024) in got
    assert (64 * MiB, 64 * MiB + 4096) in got
    assert all(e <= length for _, e in got)


def test_exfat_boot_regions_follow_the_sector_size(disk) -> None:
    fd, _ = disk
    boot = bytearray(512)
    boot[3:11] = b"EXFAT   "
    boot[108] = 12  # 4096-byte sectors: 24 sectors are 96 KiB, more than the belt
    put(fd, 0, bytes(boot))
    assert (0, 24 * 4096) in extra_ranges("exfat", fd, OFFSET, 32 * MiB)


def test_xfs_every_allocation_group_header(disk) -> None:
    fd, _ = disk
    sb = bytearray(512)
    sb[0:4] = b"XFSB"
    struct.pack_into(">I", sb, 4, 4096)
    struct.pack_into(">II", sb, 84, 4096, 4)  # 4 AGs of 4096 blocks (16 MiB, xfs' least)
    struct.pack_into(">H", sb, 102, 512)
    put(fd, 0, bytes(sb))
    got = extra_ranges("xfs", fd, OFFSET, 4 * 4096 * 4096)
    for ag in range(4):
        assert (ag * 4096 * 4096, ag * 4096 * 4096 + 4096) in got
