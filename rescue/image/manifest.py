"""The image manifest: what was backed up and where each byte is stored.

A manifest is JSON. It carries its own BLAKE3 hash (``manifest_blake3``) over the
canonical serialisation of every other field, so a damaged or edited manifest is
refused before anything is planned. See docs/FORMAT.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import blake3

from rescue.errors import ImageCorruptError, UnsupportedFormatError
from rescue.i18n import _
from rescue.image.index import Entry, IndexPart, decode_part, stored_keys

MAGIC = "rescue-image"
FORMAT_VERSION = 2  # 2: chunk indexes in parts (rescue.image.index); 1 still read
HASH_FIELD = "manifest_blake3"


#: fetches the raw bytes of an index part (verified against its BLAKE3)
PartFetcher = Callable[[IndexPart], bytes]


@dataclass
class ChunkedData:
    """A byte range cut into fixed-size chunks aligned to its start.

    Chunk *i* covers ``[i * chunk_size, min((i + 1) * chunk_size, length))``. Which chunks
    are stored (under a BLAKE3) and which are all zero is the range's *index*: in format 2
    a list of :class:`~rescue.image.index.IndexPart` kept in the repository and read one
    at a time (``parts``); in format 1 (still read) inline lists, ``chunks`` of
    ``(i, blake3-hex)`` and ``zero`` of ``(first, count)`` runs. Any other chunk index is
    unused space: never stored and never written.
    """

    length: int
    chunk_size: int
    parts: list[IndexPart] = field(default_factory=list)
    chunks: list[tuple[int, str]] = field(default_factory=list)  # format 1
    zero: list[tuple[int, int]] = field(default_factory=list)  # format 1

    def chunk_span(self, index: int) -> tuple[int, int]:
        start = index * self.chunk_size
        return start, min(self.chunk_size, self.length - start)

    def run_bytes(self, index: int, count: int) -> int:
        """Bytes of *count* chunks from chunk *index* (the last chunk may be short)."""
        start = index * self.chunk_size
        return max(0, min(self.length, (index + count) * self.chunk_size) - start)

    @property
    def stored_chunks(self) -> int:
        return sum(p.stored for p in self.parts) + len(self.chunks)

    @property
    def stored_chunk_bytes(self) -> int:
        return (sum(p.stored_bytes for p in self.parts)
                + sum(self.chunk_span(i)[1] for i, _digest in self.chunks))

    @property
    def zero_bytes(self) -> int:
        return (sum(p.zero_bytes for p in self.parts)
                + sum(self.run_bytes(a, n) for a, n in self.zero))

    def entries(self, fetch: PartFetcher) -> Iterator[Entry]:
        """Stored chunks and zero runs in chunk order, one index part in memory at a time
        (*fetch* reads a part from the repository)."""
        if self.chunks or self.zero:
            inline = [Entry(i, h) for i, h in self.chunks] + [
                Entry(a, None, n) for a, n in self.zero]
            yield from sorted(inline, key=lambda e: e.index)
        for part in self.parts:
            yield from decode_part(fetch(part), part, part.name)

    def stored_key_batches(self, fetch: PartFetcher) -> Iterator[list[int]]:
        """The first 64 bits of each stored chunk's BLAKE3, a part at a time (what a
        presence check looks up)."""
        if self.chunks:
            yield [int(h[:16], 16) for _i, h in self.chunks]
        for part in self.parts:
            yield stored_keys(fetch(part), part, part.name)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"length": self.length, "chunk_size": self.chunk_size}
        if self.parts:
            d["index"] = [p.to_dict() for p in self.parts]
        if self.chunks or self.zero or not self.parts:
            d["chunks"] = [[i, h] for i, h in self.chunks]
            d["zero"] = [[a, n] for a, n in self.zero]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChunkedData:
        return cls(
            length=int(d["length"]),
            chunk_size=int(d["chunk_size"]),
            parts=[IndexPart.from_dict(x) for x in d.get("index", [])],
            chunks=[(int(i), str(h)) for i, h in d.get("chunks", [])],
            zero=[(int(a), int(n)) for a, n in d.get("zero", [])],
        )


# How a partition's content is captured and brought back.
METHOD_USED_BLOCKS = "used-blocks"  # only blocks the filesystem uses (ext2/3/4, vfat)
METHOD_WHOLE = "whole"  # every byte, all-zero chunks skipped (unknown fs, bios_grub)
METHOD_RECREATE = "recreate"  # no data: recreated (swap: mkswap with UUID and label)
METHOD_NONE = "none"  # a container (MBR extended partition)


@dataclass
class Partition:
    number: int
    start: int  # in logical sectors
    size: int  # in logical sectors
    type: str  # GPT type GUID (upper case) or MBR type in hex ("83", "ef")
    kind: str = "primary"  # "primary" | "extended" | "logical" (MBR); "primary" for GPT
    uuid: str | None = None  # GPT partition GUID / MBR PARTUUID as the kernel shows it
    name: str | None = None  # GPT partition name
    attrs: str | None = None  # GPT attributes in sfdisk syntax
    bootable: bool = False  # MBR active flag
    filesystem: str | None = None  # blkid TYPE: ext4, vfat, swap, xfs, ...
    fs_uuid: str | None = None
    fs_label: str | None = None
    fs_version: str | None = None
    method: str = METHOD_WHOLE
    used_bytes: int = 0
    data: ChunkedData | None = None

    def size_bytes(self, sector_size: int) -> int:
        return self.size * sector_size

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["data"] = self.data.to_dict() if self.data else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Partition:
        d = dict(d)
        data = d.pop("data", None)
        return cls(**d, data=ChunkedData.from_dict(data) if data else None)


@dataclass
class BootArea:
    """Bytes outside any partition that boot loaders use (absolute disk offsets)."""

    name: str  # "mbr-boot-code" | "post-mbr-gap"
    offset: int
    data: ChunkedData

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "offset": self.offset, "data": self.data.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BootArea:
        return cls(d["name"], int(d["offset"]), ChunkedData.from_dict(d["data"]))


@dataclass
class Disk:
    size_bytes: int
    logical_sector_size: int
    physical_sector_size: int
    table: str  # "gpt" | "dos"
    id: str  # disk GUID (gpt) or "0x1234abcd" (dos)
    first_lba: int | None = None  # gpt: first usable LBA
    last_lba: int | None = None  # gpt: last usable LBA
    source_path: str = ""  # the device it was read from (informational)
    model: str = ""
    serial: str = ""
    boot_areas: list[BootArea] = field(default_factory=list)
    partitions: list[Partition] = field(default_factory=list)

    @property
    def sectors(self) -> int:
        return self.size_bytes // self.logical_sector_size

    def partition(self, number: int) -> Partition:
        for p in self.partitions:
            if p.number == number:
                return p
        raise KeyError(number)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["boot_areas"] = [b.to_dict() for b in self.boot_areas]
        d["partitions"] = [p.to_dict() for p in self.partitions]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Disk:
        d = dict(d)
        boot = [BootArea.from_dict(b) for b in d.pop("boot_areas", [])]
        parts = [Partition.from_dict(p) for p in d.pop("partitions", [])]
        return cls(**d, boot_areas=boot, partitions=parts)


@dataclass
class Manifest:
    id: str
    name: str
    created_utc: str  # ISO 8601, "Z"
    created_local: str  # ISO 8601 with the source's UTC offset
    timezone: str  # the source system's zone name, "" when unknown
    computer: str  # hostname from the source's root filesystem
    os_name: str  # PRETTY_NAME from the source's os-release
    os_id: str
    os_version: str
    firmware: str  # "uefi" | "bios": how the source booted
    hardware: dict[str, Any]
    chunk_size: int
    compression: str
    disks: list[Disk]
    stats: dict[str, int] = field(default_factory=dict)
    tool_version: str = ""
    magic: str = MAGIC
    format_version: int = FORMAT_VERSION

    @property
    def data_bytes(self) -> int:
        """Bytes of used data the image restores (stored chunks + zero chunks)."""
        total = 0
        for disk in self.disks:
            for area in disk.boot_areas:
                total += area.data.stored_chunk_bytes
            for p in disk.partitions:
                if p.data:
                    total += p.data.stored_chunk_bytes + p.data.zero_bytes
        return total

    def ranges(self, disk_index: int | None = None) -> Iterator[tuple[dict[str, Any],
                                                                  ChunkedData]]:
        """Every indexed byte range, of every disk or of the disk *disk_index* only, with
        where it is (``{"disk": n, "area": name}`` or ``{"disk": n, "partition": n}``;
        disk 0 when the image has one disk)."""
        for n, disk in enumerate(self.disks):
            if disk_index is not None and n != disk_index:
                continue
            which = n + 1 if len(self.disks) > 1 else 0
            for area in disk.boot_areas:
                yield {"disk": which, "area": area.name}, area.data
            for p in disk.partitions:
                if p.data:
                    yield {"disk": which, "partition": p.number}, p.data

    def index_parts(self, disk_index: int | None = None) -> list[IndexPart]:
        return [part for _place, data in self.ranges(disk_index) for part in data.parts]

    @property
    def stored_chunks(self) -> int:
        return sum(data.stored_chunks for _place, data in self.ranges())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["disks"] = [disk.to_dict() for disk in self.disks]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        d = dict(d)
        disks = [Disk.from_dict(x) for x in d.pop("disks")]
        return cls(**d, disks=disks)

    # -- serialisation with the self-hash -------------------------------------------

    def to_json(self) -> bytes:
        body = self.to_dict()
        body[HASH_FIELD] = _body_hash(body)
        return (json.dumps(body, indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes, where: str = "") -> Manifest:
        where = where or _("manifest")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ImageCorruptError(_(
                "The {where} is truncated or damaged (not valid JSON); the image cannot be used."
            ).format(where=where)) from exc
        if not isinstance(body, dict) or body.get("magic") != MAGIC:
            raise ImageCorruptError(
                _("The {where} is not a rescue image manifest.").format(where=where))
        version = body.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise UnsupportedFormatError(_(
                "The {where} uses image format version {version}; this rescue reads up to "
                "version {supported}. Use a newer rescue."
            ).format(where=where, version=version, supported=FORMAT_VERSION))
        stated = body.pop(HASH_FIELD, None)
        if stated != _body_hash(body):
            raise ImageCorruptError(_(
                "The {where} does not match its own checksum; it was damaged or edited."
            ).format(where=where))
        try:
            return cls.from_dict(body)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise ImageCorruptError(_("The {where} is missing a field ({error}).").format(
                where=where, error=exc)) from exc


def _body_hash(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return blake3.blake3(canonical).hexdigest()
