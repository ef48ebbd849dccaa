"""FAT12/16/32: the used map read natively from the boot sector and the first FAT.

Used = boot/reserved sectors + every FAT copy + the FAT12/16 root directory + every
cluster whose FAT entry is not zero (allocated, end-of-chain or bad)."""

from __future__ import annotations

import os
import struct

from rescue.errors import SourceRefusedError
from rescue.fs import registry
from rescue.fs.usedmap import UsedMap
from rescue.i18n import _

FAT_TYPES = registry.FAT_TYPES  # the blkid TYPE and its aliases


def used_map_from_device(fd: int, offset: int, length: int) -> UsedMap:
    boot = os.pread(fd, 512, offset)
    geo = parse_boot_sector(boot)
    fat_bytes = geo["fat_sectors"] * geo["bytes_per_sector"]
    fat = os.pread(fd, fat_bytes, offset + geo["reserved"] * geo["bytes_per_sector"])
    return used_map(geo, fat, length)


def parse_boot_sector(boot: bytes) -> dict[str, int]:
    if len(boot) < 512 or boot[510:512] != b"\x55\xaa":
        raise SourceRefusedError(_("The FAT boot sector has no 55AA signature."))
    bps, spc, reserved, nfats, root_entries, total16, _media, fat16 = struct.unpack_from(
        "<HBHBHHBH", boot, 11
    )
    total32 = struct.unpack_from("<I", boot, 32)[0]
    fat32 = struct.unpack_from("<I", boot, 36)[0]
    if bps not in (512, 1024, 2048, 4096) or spc == 0 or nfats == 0:
        raise SourceRefusedError(_("The FAT boot sector has an impossible geometry."))
    fat_sectors = fat16 or fat32
    total = total16 or total32
    root_sectors = (root_entries * 32 + bps - 1) // bps
    data_start = reserved + nfats * fat_sectors + root_sectors
    clusters = (total - data_start) // spc
    bits = 12 if clusters < 4085 else 16 if clusters < 65525 else 32
    return {
        "bytes_per_sector": bps,
        "sectors_per_cluster": spc,
        "reserved": reserved,
        "fats": nfats,
        "fat_sectors": fat_sectors,
        "total_sectors": total,
        "data_start": data_start,
        "clusters": clusters,
        "bits": bits,
    }


def cluster_in_use(fat: bytes, bits: int, clusters: int) -> list[bool]:
    """in_use[i] for data clusters 2 .. clusters+1 (index 0 = cluster 2)."""
    out = []
    for c in range(2, clusters + 2):
        if bits == 32:
            entry = struct.unpack_from("<I", fat, c * 4)[0] & 0x0FFFFFFF
        elif bits == 16:
            entry = struct.unpack_from("<H", fat, c * 2)[0]
        else:
            pair = struct.unpack_from("<H", fat, c * 3 // 2)[0]
            entry = pair >> 4 if c & 1 else pair & 0xFFF
        out.append(entry != 0)
    return out


def used_map(geo: dict[str, int], fat: bytes, length: int) -> UsedMap:
    bps, spc = geo["bytes_per_sector"], geo["sectors_per_cluster"]
    ranges = [(0, geo["data_start"] * bps)]
    cluster_bytes = spc * bps
    data_off = geo["data_start"] * bps
    run_start = None
    in_use = cluster_in_use(fat, geo["bits"], geo["clusters"])
    for i, used in enumerate([*in_use, False]):
        if used and run_start is None:
            run_start = i
        elif not used and run_start is not None:
            ranges.append((data_off + run_start * cluster_bytes, data_off + i * cluster_bytes))
            run_start = None
    return UsedMap.from_ranges(length, ranges)
