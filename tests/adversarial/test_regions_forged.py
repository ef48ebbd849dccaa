"""Forged filesystem headers against rescue.fs.regions.extra_ranges: a header value taken
from the source disk must not make the backup build a million-entry range list (memory,
time) or copy gigabytes no filesystem uses."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from rescue.fs.regions import BELT, extra_ranges

MiB = 1024 * 1024
LENGTH = 1 << 40  # a 1 TiB partition (only the header is stored: sparse)


@pytest.fixture
def fd(tmp_path: Path) -> Iterator[int]:
    fd = os.open(tmp_path / "part.img", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        yield fd
    finally:
        os.close(fd)


def _xfs(fd: int, block_size: int, ag_blocks: int, ag_count: int, sect: int = 512) -> None:
    sb = bytearray(512)
    sb[0:4] = b"XFSB"
    struct.pack_into(">I", sb, 4, block_size)
    struct.pack_into(">Q", sb, 8, ag_blocks * ag_count)  # dblocks
    struct.pack_into(">II", sb, 84, ag_blocks, ag_count)
    struct.pack_into(">H", sb, 102, sect)
    os.pwrite(fd, bytes(sb), 0)


def test_xfs_forged_allocation_groups_are_not_believed(fd: int) -> None:
    """agblocks=2 (xfs's minimum AG is 16 MiB), agcount=2^20: a million 8 KiB "AG headers"
    (about 250 MB of Python tuples and 4 GiB of copied data) from one forged superblock."""
    _xfs(fd, 4096, 2, 1 << 20)
    ranges = extra_ranges("xfs", fd, 0, LENGTH)
    assert len(ranges) <= 2 + LENGTH // (16 * MiB), len(ranges)


def test_xfs_forged_block_size_does_not_claim_the_partition(fd: int) -> None:
    """blocksize 2^31 (xfs allows 512..65536): the first "AG header" alone is 2 GiB."""
    _xfs(fd, 1 << 31, 1, 4)
    ranges = extra_ranges("xfs", fd, 0, LENGTH)
    extra = sum(e - s for s, e in ranges) - 2 * BELT
    assert extra <= 4 * 65536, extra


def test_ntfs_and_hfsplus_ranges_stay_inside_the_partition(fd: int) -> None:
    boot = bytearray(512)
    boot[3:11] = b"NTFS    "
    struct.pack_into("<H", boot, 0x0B, 512)
    struct.pack_into("<Q", boot, 0x28, 2**63 // 512)
    os.pwrite(fd, bytes(boot), 0)
    for s, e in extra_ranges("ntfs", fd, 0, 8 * MiB):
        assert 0 <= s < e <= 8 * MiB
    header = bytearray(512)
    header[0:2] = b"H+"
    struct.pack_into(">II", header, 40, 0xFFFFFFFF, 0xFFFFFFFF)
    os.pwrite(fd, bytes(header), 1024)
    for s, e in extra_ranges("hfsplus", fd, 0, 8 * MiB):
        assert 0 <= s < e <= 8 * MiB
