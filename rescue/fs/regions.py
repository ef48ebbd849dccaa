"""Byte ranges a filesystem keeps outside its allocation map, copied besides the used blocks.

A used-blocks copy takes what the filesystem's own allocation structures list (ext block
bitmaps, the FAT, partclone's domain log). Several filesystems keep copies of their
headers where no allocation structure covers them; a restore without them passes a
mount but fails the filesystem's own check, and loses the spare copy a repair needs:

==========  ===============================================================  ==========
type        region outside the allocation map                                 read from
==========  ===============================================================  ==========
every one   the first and the last 64 KiB of the partition (the belt: boot   -
            sectors, primary headers, and whatever sits after the last
            cluster or block: what a dd copy would give there)
ntfs        the backup boot sector, one sector at sector "total sectors"     0x0B, 0x28
            and the partition's last sector (after the last cluster: not in
            the $Bitmap that partclone.ntfs reads; rescue.fs.bootsector)
hfsplus     the alternate volume header, 1024 bytes before the volume's end  1024 (+40, +44)
btrfs       the superblock mirrors at 64 KiB, 64 MiB, 256 GiB and 1 PiB       -
            (4 KiB each, those inside the partition)
exfat       the main and backup boot regions, sectors 0-23                  108
xfs         every allocation group's header sectors (secondary superblock,  0 (+4, +84,
            AGF, AGI, AGFL): the first block of each AG                      +88, +102)
==========  ===============================================================  ==========

ext (bitmaps mark the superblock backups and group descriptors used) and FAT (the whole
reserved region, which holds the FAT32 backup boot sector, is copied) need only the belt.
The reads are a few header bytes by fd and offset; a header that cannot be parsed adds
nothing but the belt (the used-map reader has already judged the filesystem)."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

from rescue.fs import registry
from rescue.fs.bootsector import ntfs_backup_offsets

BELT = 64 * 1024
XFS_MIN_AG_BYTES = 16 * 1024 * 1024  # mkfs.xfs makes no smaller allocation group
KiB = 1024

Ranges = list[tuple[int, int]]


def _read(fd: int, offset: int, size: int) -> bytes:
    try:
        return os.pread(fd, size, offset)
    except OSError:
        return b""


def outside_ntfs(fd: int, offset: int, length: int) -> Ranges:
    boot = _read(fd, offset, 512)
    bps = struct.unpack_from("<H", boot, 0x0B)[0] if len(boot) >= 512 else 0
    return [(at, at + bps) for at in ntfs_backup_offsets(boot, length)]


def outside_hfsplus(fd: int, offset: int, length: int) -> Ranges:
    header = _read(fd, offset + 1024, 512)
    if len(header) < 512 or header[0:2] not in (b"H+", b"HX"):
        return []
    block_size, total_blocks = struct.unpack_from(">II", header, 40)
    end = block_size * total_blocks
    return [(end - 1024, end - 512)] if end >= 2048 else []


def outside_btrfs(fd: int, offset: int, length: int) -> Ranges:
    return [(at, at + 4 * KiB) for at in (64 * KiB, 64 << 20, 256 << 30, 1 << 50)]


def outside_exfat(fd: int, offset: int, length: int) -> Ranges:
    boot = _read(fd, offset, 512)
    if len(boot) < 512 or boot[3:11] != b"EXFAT   ":
        return []
    shift = boot[108]
    if not 9 <= shift <= 12:
        return []
    return [(0, 24 << shift)]


def outside_xfs(fd: int, offset: int, length: int) -> Ranges:
    sb = _read(fd, offset, 512)
    if len(sb) < 512 or sb[0:4] != b"XFSB":
        return []
    block_size = struct.unpack_from(">I", sb, 4)[0]
    ag_blocks, ag_count = struct.unpack_from(">II", sb, 84)
    sect_size = struct.unpack_from(">H", sb, 102)[0]
    # believe only what xfs itself allows (a forged header must not claim the partition
    # or make millions of ranges): block 512 B-64 KiB, sector 512 B-32 KiB, both powers
    # of two, allocation groups of at least 16 MiB, and only those inside the partition
    if not (_power_of_two(block_size, 512, 65536) and _power_of_two(sect_size, 512, 32768)):
        return []
    ag_bytes = ag_blocks * block_size
    if ag_bytes < XFS_MIN_AG_BYTES or not ag_count:
        return []
    head = max(block_size, 4 * sect_size)
    return [(ag * ag_bytes, ag * ag_bytes + head)
            for ag in range(min(ag_count, -(-length // ag_bytes)))]


def _power_of_two(value: int, low: int, high: int) -> bool:
    return low <= value <= high and value & (value - 1) == 0


# function name (the type's ``outside_map`` in rescue.fs.registry) -> the function
READERS: dict[str, Callable[[int, int, int], Ranges]] = {f.__name__: f for f in (
    outside_ntfs, outside_hfsplus, outside_btrfs, outside_exfat, outside_xfs)}
# blkid TYPE -> the regions it keeps outside its allocation map (besides the belt)
TRAITS: dict[str, Callable[[int, int, int], Ranges]] = {
    name: READERS[t.outside_map] for t in registry.RECORDS if t.outside_map
    for name in t.names}


def belt(length: int) -> Ranges:
    return [(0, min(BELT, length)), (max(0, length - BELT), length)]


def extra_ranges(fstype: str | None, fd: int, offset: int, length: int) -> Ranges:
    """Byte ranges (relative to the partition, end exclusive, clipped to it) to copy in
    addition to the allocation map of a *length*-byte partition at *offset* of *fd*."""
    ranges = belt(length)
    trait = TRAITS.get(fstype or "")
    if trait is not None:
        ranges += trait(fd, offset, length)
    return sorted((max(0, s), min(length, e)) for s, e in ranges if s < length and e > 0)
