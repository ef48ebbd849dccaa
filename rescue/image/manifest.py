"""The image manifest: what was backed up and where each byte is stored.

A manifest is JSON. It carries its own BLAKE3 hash (``manifest_blake3``) over the
canonical serialisation of every other field, so a damaged or edited manifest is
refused before anything is planned. See docs/FORMAT.md.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import blake3

from rescue.errors import ImageCorruptError, UnsupportedFormatError
from rescue.i18n import _

MAGIC = "rescue-image"
FORMAT_VERSION = 1
HASH_FIELD = "manifest_blake3"


@dataclass
class ChunkedData:
    """A byte range cut into fixed-size chunks aligned to its start.

    Chunk *i* covers ``[i * chunk_size, min((i + 1) * chunk_size, length))``.
    ``chunks`` lists ``(i, blake3-hex)`` for stored chunks; ``zero`` lists
    ``(first, count)`` runs of chunks that are all zero and must read back as zero.
    Any other chunk index is unused space: never stored and never written.
    """

    length: int
    chunk_size: int
    chunks: list[tuple[int, str]] = field(default_factory=list)
    zero: list[tuple[int, int]] = field(default_factory=list)

    def chunk_span(self, index: int) -> tuple[int, int]:
        start = index * self.chunk_size
        return start, min(self.chunk_size, self.length - start)

    @property
    def stored_chunk_bytes(self) -> int:
        return sum(self.chunk_span(i)[1] for i, _digest in self.chunks)

    @property
    def zero_bytes(self) -> int:
        total = 0
        for first, count in self.zero:
            for i in range(first, first + count):
                total += self.chunk_span(i)[1]
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "length": self.length,
            "chunk_size": self.chunk_size,
            "chunks": [[i, h] for i, h in self.chunks],
            "zero": [[a, n] for a, n in self.zero],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChunkedData:
        return cls(
            length=int(d["length"]),
            chunk_size=int(d["chunk_size"]),
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

    def all_chunk_hashes(self, disk_index: int | None = None) -> set[str]:
        """The chunks of every disk, or of the disk *disk_index* only."""
        hashes: set[str] = set()
        disks = self.disks if disk_index is None else [self.disks[disk_index]]
        for disk in disks:
            for area in disk.boot_areas:
                hashes.update(h for _index, h in area.data.chunks)
            for p in disk.partitions:
                if p.data:
                    hashes.update(h for _index, h in p.data.chunks)
        return hashes

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
        except (KeyError, TypeError, ValueError) as exc:
            raise ImageCorruptError(_("The {where} is missing a field ({error}).").format(
                where=where, error=exc)) from exc


def _body_hash(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return blake3.blake3(canonical).hexdigest()
