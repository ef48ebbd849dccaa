"""Forged and damaged boot sectors against rescue.fs.bootsector.plan_start_fix: nothing is
written outside the partition, nothing twice, nothing where no copy of the boot sector is."""

from __future__ import annotations

import struct

from rescue.fs.bootsector import plan_start_fix

MiB = 1024 * 1024
OLD, NEW = 2048, 2048 + 2048 * 10  # disk sectors (512 bytes): moved by 10 MiB


class Volume:
    def __init__(self, length: int) -> None:
        self.buf = bytearray(length)
        self.reads: list[tuple[int, int]] = []

    def read(self, offset: int, length: int) -> bytes:
        self.reads.append((offset, length))
        if offset < 0 or offset + length > len(self.buf):
            return b""
        return bytes(self.buf[offset:offset + length])

    def put(self, offset: int, data: bytes) -> None:
        self.buf[offset:offset + len(data)] = data


def ntfs_boot(total: int, hidden: int = OLD, bps: int = 512) -> bytes:
    boot = bytearray(512)
    boot[0:3] = b"\xeb\x52\x90"
    boot[3:11] = b"NTFS    "
    struct.pack_into("<H", boot, 11, bps)
    boot[13] = 8
    struct.pack_into("<I", boot, 0x1C, hidden)
    struct.pack_into("<Q", boot, 0x28, total)
    boot[510:512] = b"\x55\xaa"
    return bytes(boot)


def fat32_boot(backup: int, reserved: int = 32, hidden: int = OLD) -> bytes:
    boot = bytearray(512)
    boot[0:3] = b"\xeb\x58\x90"
    boot[3:11] = b"mkfs.fat"
    struct.pack_into("<H", boot, 11, 512)
    boot[13] = 1
    struct.pack_into("<H", boot, 14, reserved)
    boot[16] = 2
    struct.pack_into("<H", boot, 0x16, 0)  # FAT32
    struct.pack_into("<I", boot, 0x1C, hidden)
    struct.pack_into("<H", boot, 0x32, backup)
    boot[510:512] = b"\x55\xaa"
    return bytes(boot)


def _offsets(writes: list[tuple[int, bytes]]) -> list[int]:
    return [o for o, _ in writes]


def test_ntfs_total_sectors_zero_does_not_write_the_primary_twice() -> None:
    """A damaged NTFS boot sector whose "total sectors" field is 0 makes its backup
    location sector 0, the primary itself: the primary is patched (and counted) twice, and
    the report says "3 copies" for two."""
    length = 16 * MiB
    vol = Volume(length)
    vol.put(0, ntfs_boot(total=0))
    vol.put(length - 512, ntfs_boot(total=0))
    fix = plan_start_fix("ntfs", vol.read, OLD, NEW, 512, length=length)
    offsets = _offsets(fix.writes)
    assert len(offsets) == len(set(offsets)), offsets
    assert sorted(offsets) == [0, length - 512]


def test_ntfs_total_sectors_past_the_partition_reads_and_writes_nothing_outside() -> None:
    length = 16 * MiB
    vol = Volume(length)
    vol.put(0, ntfs_boot(total=2**63 // 512))
    fix = plan_start_fix("ntfs", vol.read, OLD, NEW, 512, length=length)
    for offset, data in fix.writes:
        assert offset >= 0 and offset + len(data) <= length
    assert _offsets(fix.writes) == [0]


def test_fat32_backup_index_zero_or_past_reserved_is_ignored() -> None:
    for backup in (0, 32, 40, 0xFFFF):
        vol = Volume(4 * MiB)
        vol.put(0, fat32_boot(backup=backup))
        vol.put(backup * 512, fat32_boot(backup=backup))  # a copy where the index points
        fix = plan_start_fix("vfat", vol.read, OLD, NEW, 512, length=4 * MiB)
        assert _offsets(fix.writes) == [0], backup


def test_fat32_backup_index_pointing_at_fsinfo_is_not_overwritten() -> None:
    vol = Volume(4 * MiB)
    vol.put(0, fat32_boot(backup=1))
    vol.put(512, b"RRaA" + bytes(480) + b"rrAa" + bytes(24) + b"\x00\x00\x55\xaa")
    fix = plan_start_fix("vfat", vol.read, OLD, NEW, 512, length=4 * MiB)
    assert _offsets(fix.writes) == [0]


def test_partition_typed_vfat_without_a_fat_boot_sector_is_left_alone() -> None:
    vol = Volume(4 * MiB)
    vol.put(0, ntfs_boot(total=8191))  # blkid said vfat, the sector says otherwise
    fix = plan_start_fix("vfat", vol.read, OLD, NEW, 512, length=4 * MiB)
    assert not fix.writes and fix.note


def test_exfat_bogus_shift_is_left_alone() -> None:
    boot = bytearray(512)
    boot[3:11] = b"EXFAT   "
    struct.pack_into("<Q", boot, 0x40, OLD)
    boot[510:512] = b"\x55\xaa"
    for shift in (0, 8, 13, 255):
        boot[0x6C] = shift
        vol = Volume(4 * MiB)
        vol.put(0, bytes(boot))
        fix = plan_start_fix("exfat", vol.read, OLD, NEW, 512, length=4 * MiB)
        assert not fix.writes, shift
