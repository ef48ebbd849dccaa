"""Everything a manifest says, checked in one place when it is loaded (after its own
BLAKE3, before anything is listed, planned or written): types, ranges and geometry.

A manifest passes its checksum when whoever wrote it computed one, so the checksum proves
nothing about intent. These checks make a forged or damaged one a refusal with a
sentence instead of a write into the wrong place, a libparted abort or a hang:

- numbers are integers of sane size; ids, hashes and names have their form;
- each disk's sectors and table are ones rescue writes; partitions lie inside the disk,
  after the table's own sectors, numbered once, not overlapping (logical ones inside
  their extended container, nothing else inside it);
- a partition's data is no longer than the partition; every chunk index, zero run and
  index part lies inside that data; chunk ids are 64 lower-case hex digits;
- a boot area lies in front of the first partition, clear of the GPT's own sectors
  (the MBR boot code: bytes 0-439).

Index parts are checked again, record by record, when they are read
(:func:`rescue.image.index.decode_part`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rescue.errors import ImageCorruptError
from rescue.i18n import _
from rescue.image.gpt import gpt_entry_sectors
from rescue.image.index import HEADER, PART_SPAN, RECORD
from rescue.image.manifest import (
    METHOD_NONE,
    METHOD_RECREATE,
    METHOD_USED_BLOCKS,
    METHOD_WHOLE,
    ChunkedData,
    Disk,
    Manifest,
)

HEX64 = re.compile(r"[0-9a-f]{64}")
MAX_BYTES = 1 << 60  # far beyond any disk; keeps arithmetic on forged numbers cheap
SECTOR_SIZES = (512, 1024, 2048, 4096)
KINDS = ("primary", "extended", "logical")
METHODS = (METHOD_USED_BLOCKS, METHOD_WHOLE, METHOD_RECREATE, METHOD_NONE)
BOOT_AREAS = ("mbr-boot-code", "post-mbr-gap")


GUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
MBR_TYPE = re.compile(r"[0-9A-Fa-f]{1,2}")


def check_manifest(m: Manifest, where: str) -> None:
    """Raise :class:`~rescue.errors.ImageCorruptError` naming *where* and the first thing
    that is wrong."""
    try:
        _check(m)
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise ImageCorruptError(_("The {where} is not a valid image: {what}.").format(
            where=where, what=str(exc) or type(exc).__name__)) from exc


def _int(value: object, what: str, low: int = 0, high: int = MAX_BYTES) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{what} is {value!r}")
    return value


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} is {value!r}")
    return value


def _check(m: Manifest) -> None:
    for name in ("id", "name", "created_utc", "created_local", "timezone", "computer",
                 "os_name", "os_id", "os_version", "firmware", "compression",
                 "tool_version"):
        _str(getattr(m, name), name)
    if m.compression != "zstd":
        raise ValueError(f"compression {m.compression!r}")
    cs = _int(m.chunk_size, "chunk_size", 4096, 64 << 20)
    if cs & (cs - 1):
        raise ValueError(f"chunk size {cs} is not a power of two")
    if not isinstance(m.hardware, dict) or not isinstance(m.stats, dict):
        raise ValueError("hardware or stats is not an object")
    if not isinstance(m.disks, list) or not m.disks:
        raise ValueError("it lists no disk")
    for n, disk in enumerate(m.disks, start=1):
        _check_disk(disk, n, cs)


def _check_disk(disk: Disk, n: int, cs: int) -> None:
    ss = _int(disk.logical_sector_size, f"disk {n} sector size", 512, 4096)
    if ss not in SECTOR_SIZES:
        raise ValueError(f"disk {n} has {ss}-byte sectors")
    _int(disk.physical_sector_size, f"disk {n} physical sector size", ss, 1 << 20)
    size = _int(disk.size_bytes, f"disk {n} size", ss)
    sectors = size // ss
    if disk.table not in ("gpt", "dos"):
        raise ValueError(f"disk {n} has partition table {disk.table!r}")
    _str(disk.id, f"disk {n} id")
    for name in ("first_lba", "last_lba"):
        value = getattr(disk, name)
        if value is not None:
            _int(value, f"disk {n} {name}", 0, sectors)
    entries = gpt_entry_sectors(ss)
    # a GPT's own sectors: MBR + header + entries in front, entries + header at the end
    head, tail = (2 + entries, 1 + entries) if disk.table == "gpt" else (1, 0)
    numbers: set[int] = set()
    spans: list[tuple[int, int, str, int]] = []  # (start, end, kind, number)
    for p in disk.partitions:
        num = _int(p.number, f"disk {n} partition number", 1, 256)
        if num in numbers:
            raise ValueError(f"disk {n} lists partition {num} twice")
        numbers.add(num)
        if p.kind not in KINDS or (disk.table == "gpt" and p.kind != "primary"):
            raise ValueError(f"partition {num} is of kind {p.kind!r}")
        if p.method not in METHODS:
            raise ValueError(f"partition {num} is copied by {p.method!r}")
        # partitions inside the table's own sectors are the planner's refusal (with the
        # bytes a larger table needs); here only: on the disk, past its first sector
        start = _int(p.start, f"partition {num} start", 1, sectors)
        length = _int(p.size, f"partition {num} size", 1, sectors)
        if start + length > sectors:
            raise ValueError(f"partition {num} (sectors {start}-{start + length - 1}) lies outside "
                       f"the disk's {sectors} sectors")
        if not (GUID if disk.table == "gpt" else MBR_TYPE).fullmatch(
                _str(p.type, f"partition {num} type")):
            raise ValueError(f"partition {num} has type {p.type[:40]!r}")
        _int(p.used_bytes, f"partition {num} used bytes")
        for name in ("uuid", "name", "attrs", "filesystem", "fs_uuid", "fs_label",
                     "fs_version"):
            value = getattr(p, name)
            if value is not None:
                _str(value, f"partition {num} {name}")
        if p.data is not None:
            _check_data(p.data, length * ss, f"partition {num}", cs)
        spans.append((start, start + length, p.kind, num))
    _check_overlaps(spans, n)
    first = min([sectors - tail, *(s for s, _e, kind, _n in spans if kind != "logical")]) * ss
    for area in disk.boot_areas:
        if area.name not in BOOT_AREAS:
            raise ValueError(f"disk {n} has a boot area {area.name!r}")
        offset = _int(area.offset, f"boot area {area.name} offset")
        _check_data(area.data, first, f"boot area {area.name}", cs)
        end = offset + area.data.length
        if area.name == "mbr-boot-code":
            if offset != 0 or end > 440:
                raise ValueError("the MBR boot code area is not bytes 0-439")
        elif offset < (head * ss if disk.table == "gpt" else ss) or end > first:
            raise ValueError(f"the boot area {area.name} (bytes {offset}-{end}) overlaps the "
                       "partition table or a partition")


def _check_overlaps(spans: Iterable[tuple[int, int, str, int]], n: int) -> None:
    spans = sorted(spans)
    containers = [(s, e) for s, e, kind, _num in spans if kind == "extended"]
    if len(containers) > 1:
        raise ValueError(f"disk {n} has {len(containers)} extended partitions")
    outer = [(s, e, num) for s, e, kind, num in spans if kind != "logical"]
    for (_s1, e1, a), (s2, _e2, b) in zip(outer, outer[1:], strict=False):
        if s2 < e1:
            raise ValueError(f"partitions {a} and {b} overlap")
    inner = [(s, e, num) for s, e, kind, num in spans if kind == "logical"]
    for s, e, num in inner:
        if not containers or not (containers[0][0] < s and e <= containers[0][1]):
            raise ValueError(f"logical partition {num} lies outside the extended partition")
    for (_s1, e1, a), (s2, _e2, b) in zip(inner, inner[1:], strict=False):
        if s2 < e1:
            raise ValueError(f"partitions {a} and {b} overlap")


def _check_data(data: ChunkedData, room: int, what: str, cs: int) -> None:
    length = _int(data.length, f"{what} data length", 0, room)
    size = _int(data.chunk_size, f"{what} chunk size", 4096, 64 << 20)
    if size != cs:
        raise ValueError(f"{what} is cut into chunks of {size} bytes, the image into {cs}")
    chunks = -(-length // size)
    last = -1
    for index, digest in data.chunks:
        _int(index, f"{what} chunk index", last + 1, chunks - 1)
        if not HEX64.fullmatch(_str(digest, f"{what} chunk id")):
            raise ValueError(f"{what} names chunk {digest[:70]!r}")
        last = index
    end = -1
    for first, count in data.zero:
        _int(first, f"{what} zero run start", end + 1, chunks - 1)
        _int(count, f"{what} zero run length", 1, chunks - first)
        end = first + count - 1
    span_end = 0
    for part in data.parts:
        first = _int(part.first, f"{what} index part start", span_end, chunks - 1)
        if first % PART_SPAN:
            raise ValueError(f"{what} has an index part starting at chunk {first}")
        count = _int(part.count, f"{what} index part span", 1, min(PART_SPAN, chunks - first))
        if not HEX64.fullmatch(part.blake3):
            raise ValueError(f"{what} names index part {part.blake3[:70]!r}")
        records = _int(part.size - HEADER.size, f"{what} index part size", 0,
                       count * RECORD.size)
        if records % RECORD.size:
            raise ValueError(f"{what} has an index part of {part.size} bytes")
        stored = _int(part.stored, f"{what} stored chunks", 0, count)
        zero = _int(part.zero, f"{what} zero chunks", 0, count - stored)
        _int(part.stored_bytes, f"{what} stored bytes", 0, stored * size)
        _int(part.zero_bytes, f"{what} zero bytes", 0, zero * size)
        span_end = first + count
