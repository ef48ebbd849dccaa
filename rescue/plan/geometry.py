"""Disk geometry of the partition tables rescue writes: pure arithmetic, one home.

A GPT (as libparted writes it: 128 entries of 128 bytes) takes LBA 0 (protective MBR),
LBA 1 (header) and the entry array after it at the start of the disk, and the entry
array plus the backup header at the end. At 512-byte sectors that is 34 sectors at the
start and 33 at the end; at 4096-byte sectors 6 and 5. An MBR takes sector 0 only (and
one sector before each logical partition, inside the extended one)."""

from __future__ import annotations

from rescue.image.gpt import gpt_entry_sectors

ALIGN_BYTES = 1024 * 1024  # partitions are moved/grown in steps of 1 MiB
MBR_MAX_SECTORS = 0xFFFFFFFF  # an MBR entry's start and size are 32-bit sector counts


def first_usable(table: str, sector_size: int) -> int:
    """The first sector a partition may use on a disk rescue writes the table of."""
    return 2 + gpt_entry_sectors(sector_size) if table == "gpt" else 1


def usable_end(table: str, sectors: int, sector_size: int) -> int:
    """One past the last sector a partition may use on a disk of *sectors* sectors (GPT:
    the backup entry array and header take the end; MBR: nothing does)."""
    if table == "gpt":
        return sectors - 1 - gpt_entry_sectors(sector_size)
    return sectors


def reserved_ranges(table: str, sectors: int, sector_size: int) -> list[tuple[int, int]]:
    """[start, end) sector ranges that hold the partition table itself: no image data may
    be written there (the MBR sector is left out: its boot code is part of the image;
    the engine writes only its first 440 bytes)."""
    if table != "gpt":
        return []
    return [(1, first_usable(table, sector_size)),
            (usable_end(table, sectors, sector_size), sectors)]


def align_sectors(sector_size: int) -> int:
    """The alignment step in sectors (1 MiB)."""
    return max(1, ALIGN_BYTES // sector_size)


def needed_disk_sectors(table: str, partitions_end: int, sector_size: int) -> int:
    """The smallest disk (in sectors) whose usable area reaches *partitions_end*."""
    if table == "gpt":
        return partitions_end + 1 + gpt_entry_sectors(sector_size)
    return partitions_end
