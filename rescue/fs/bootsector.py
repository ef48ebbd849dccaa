"""Boot sector fields that record where a volume starts on its disk.

NTFS and FAT keep the partition's first sector in their boot sector ("hidden sectors",
offset 0x1C, 32 bits, counted in the volume's own sectors); exFAT keeps it in
PartitionOffset (offset 0x40, 64 bits) under a checksum. BIOS-booted Windows (and DOS)
find their volume with it, so when a restore puts a partition elsewhere than the source
had it (it grew, or a partition after a grown one moved), these fields are rewritten,
in the boot sector and in its backup copy (FAT32: BPB_BkBootSec; NTFS: the volume's last
sector, and the partition's last one; exFAT: the backup boot region, sectors 12-23).

Pure: the caller reads sectors with *read(offset, length)* and writes the patches."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from rescue.fs.registry import FAT_TYPES, start_field_types

Reader = Callable[[int, int], bytes]

# blkid TYPE values whose boot sector records the volume's start
START_FIELD_TYPES = start_field_types()  # from their records in rescue.fs.registry

_HIDDEN = 0x1C
_EXFAT_OFFSET = 0x40
_EXFAT_SHIFT = 0x6C


@dataclass
class StartFix:
    """What to write (partition-relative byte offset -> bytes) and what it means."""

    fstype: str
    old: int  # the recorded start, in the volume's sectors
    new: int
    writes: list[tuple[int, bytes]] = field(default_factory=list)
    note: str = ""  # why nothing is written, when nothing is

    @property
    def changes(self) -> bool:
        return bool(self.writes)


def _sector_size(boot: bytes) -> int:
    bps = struct.unpack_from("<H", boot, 11)[0]
    return bps if bps in (512, 1024, 2048, 4096) else 0


def _is_ntfs(boot: bytes) -> bool:
    return boot[3:11] == b"NTFS    " and boot[510:512] == b"\x55\xaa" and _sector_size(boot) > 0


def _is_exfat(boot: bytes) -> bool:
    return boot[3:11] == b"EXFAT   " and boot[510:512] == b"\x55\xaa" and 9 <= boot[
        _EXFAT_SHIFT] <= 12


def _is_fat(boot: bytes) -> bool:
    if boot[510:512] != b"\x55\xaa" or boot[0] not in (0xEB, 0xE9) or not _sector_size(boot):
        return False
    spc, reserved, nfats = boot[13], struct.unpack_from("<H", boot, 14)[0], boot[16]
    return spc > 0 and spc & (spc - 1) == 0 and reserved > 0 and 1 <= nfats <= 4


NTFS_SECTOR_SIZES = (256, 512, 1024, 2048, 4096)


def ntfs_backup_offsets(boot: bytes, length: int) -> list[int]:
    """Byte offsets (in the partition) of the sector where an NTFS whose boot sector is
    *boot* may keep its backup boot sector: right after the volume ("total sectors",
    0x28: where mkntfs puts it), and the partition's last sector (after ntfsresize the
    volume ends on a cluster boundary before it). [] when *boot* is no NTFS boot sector."""
    if len(boot) < 512 or boot[3:11] != b"NTFS    ":
        return []
    bps = struct.unpack_from("<H", boot, 0x0B)[0]
    if bps not in NTFS_SECTOR_SIZES:
        return []
    total = struct.unpack_from("<Q", boot, 0x28)[0]
    return sorted({total * bps} | ({length - bps} if length >= 2 * bps else set()))


def _scaled(sectors: int, disk_sector: int, volume_sector: int) -> int:
    return sectors * disk_sector // volume_sector


def exfat_checksum(region: bytes, bps: int) -> int:
    """The exFAT boot checksum over the first 11 sectors of a boot region (VolumeFlags and
    PercentInUse excluded)."""
    checksum = 0
    for i, byte in enumerate(region[: 11 * bps]):
        if i in (106, 107, 112):
            continue
        checksum = (((checksum << 31) | (checksum >> 1)) + byte) & 0xFFFFFFFF
    return checksum


def plan_start_fix(fstype: str, read: Reader, old_start: int, new_start: int,
                   disk_sector: int, length: int = 0) -> StartFix:
    """The writes that make the volume record *new_start* (disk sectors) where it recorded
    *old_start*. *length*: the partition's size in bytes (NTFS keeps its backup boot
    sector in the partition's last sector). A field that recorded something else (0:
    "not used", or another value) is left as it is, and the note says so."""
    boot = read(0, 512)
    if len(boot) < 512:
        return StartFix(fstype, 0, 0, note="boot sector unreadable")
    if fstype == "exfat":
        return _exfat(read, boot, old_start, new_start, disk_sector)
    if fstype == "ntfs" and _is_ntfs(boot):
        bps = _sector_size(boot)
        backups = ntfs_backup_offsets(boot, length)
    elif fstype in FAT_TYPES and _is_fat(boot):
        bps = _sector_size(boot)
        backups = []
        if struct.unpack_from("<H", boot, 0x16)[0] == 0:  # FAT32: sectors per FAT is 0 here
            backup = struct.unpack_from("<H", boot, 0x32)[0]
            reserved = struct.unpack_from("<H", boot, 14)[0]
            if 0 < backup < reserved:
                backups = [backup * bps]
    else:
        return StartFix(fstype, 0, 0, note="no recognisable boot sector")
    old = struct.unpack_from("<I", boot, _HIDDEN)[0]
    want_old = _scaled(old_start, disk_sector, bps)
    new = _scaled(new_start, disk_sector, bps)
    fix = StartFix(fstype, old, new)
    if old != want_old:
        fix.note = f"records {old}, not the partition's start {want_old}: left as it is"
        return fix
    if new > 0xFFFFFFFF:
        fix.note = f"the new start {new} does not fit the 32-bit field: left as it is"
        return fix
    for where in sorted({0, *backups}):  # each copy once (a forged count may name 0)
        sector = bytearray(read(where, bps))
        if len(sector) != bps or sector[:11] != boot[:11]:
            continue  # a backup copy that is not there (damaged, or never written)
        if struct.unpack_from("<I", sector, _HIDDEN)[0] != old:
            continue
        struct.pack_into("<I", sector, _HIDDEN, new)
        fix.writes.append((where, bytes(sector)))
    return fix


def _exfat(read: Reader, boot: bytes, old_start: int, new_start: int,
           disk_sector: int) -> StartFix:
    if not _is_exfat(boot):
        return StartFix("exfat", 0, 0, note="no recognisable boot sector")
    bps = 1 << boot[_EXFAT_SHIFT]
    old = struct.unpack_from("<Q", boot, _EXFAT_OFFSET)[0]
    want_old = _scaled(old_start, disk_sector, bps)
    new = _scaled(new_start, disk_sector, bps)
    fix = StartFix("exfat", old, new)
    if old != want_old:
        fix.note = f"records {old}, not the partition's start {want_old}: left as it is"
        return fix
    for region in (0, 12 * bps):  # main and backup boot regions
        data = bytearray(read(region, 12 * bps))
        if len(data) != 12 * bps or data[3:11] != b"EXFAT   ":
            continue
        if struct.unpack_from("<Q", data, _EXFAT_OFFSET)[0] != old:
            continue
        struct.pack_into("<Q", data, _EXFAT_OFFSET, new)
        checksum = struct.pack("<I", exfat_checksum(bytes(data), bps))
        data[11 * bps:] = checksum * (bps // 4)
        fix.writes.append((region, bytes(data[:bps])))
        fix.writes.append((region + 11 * bps, bytes(data[11 * bps:])))
    return fix
