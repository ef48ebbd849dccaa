"""The chunk index of an image (format 2): which chunk of a byte range is stored under
which BLAKE3 and which are zero, cut into *index parts* that each cover a fixed span of
chunk indexes (:data:`PART_SPAN`: 64 GiB of a partition at 1 MiB chunks).

A part is stored in the repository like a data chunk (zstd frame under ``chunks/``, named
by the BLAKE3 of its raw bytes), so it is fetched and verified over HTTP like data, and an
incremental backup that changed nothing in a span writes the very same part again, which
the repository already holds. The image header (the manifest) names each part with its
counts, so listing an image never reads a part; restoring reads one part at a time.

Raw part layout (little-endian), :data:`HEADER` then ``entries`` records of
:data:`RECORD` (37 bytes) sorted by chunk index, none overlapping::

    header  "RIDX" | version u8 (1) | 3 zero bytes | first u64 | count u32 | entries u32
    record  offset u32 (chunk index - first) | kind u8 | payload 32 bytes
            kind 1: a stored chunk, payload = its BLAKE3 (raw 32 bytes)
            kind 2: a zero run, payload = run length u32 + 28 zero bytes

Every record lies inside ``[first, first + count)``. Decoding checks all of it and raises
:class:`~rescue.errors.ImageCorruptError` naming the part.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rescue.errors import ImageCorruptError
from rescue.i18n import _

PART_SPAN = 65536  # chunk indexes one part covers
MAGIC = b"RIDX"
VERSION = 1
HEADER = struct.Struct("<4sB3xQII")
RECORD = struct.Struct("<IB32s")
STORED = 1
ZERO = 2
_RUN = struct.Struct("<I28x")


@dataclass(frozen=True)
class IndexPart:
    """One part as the image header names it: the span it covers, its BLAKE3 and what
    it holds (so totals need no part)."""

    first: int  # first chunk index of the span
    count: int  # chunk indexes in the span
    blake3: str  # BLAKE3 of the raw part (also its chunk file's name)
    size: int  # bytes of the raw part
    stored: int  # stored chunks listed
    stored_bytes: int  # bytes of data those chunks restore
    zero: int  # zero chunks listed
    zero_bytes: int

    @property
    def name(self) -> str:
        """How sentences name the part."""
        return _("index part {digest}").format(digest=self.blake3[:16])

    def to_dict(self) -> dict[str, int | str]:
        return {"first": self.first, "count": self.count, "blake3": self.blake3,
                "size": self.size, "stored": self.stored, "stored_bytes": self.stored_bytes,
                "zero": self.zero, "zero_bytes": self.zero_bytes}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> IndexPart:
        return cls(first=_int(d["first"]), count=_int(d["count"]), blake3=str(d["blake3"]),
                   size=_int(d["size"]), stored=_int(d["stored"]),
                   stored_bytes=_int(d["stored_bytes"]), zero=_int(d["zero"]),
                   zero_bytes=_int(d["zero_bytes"]))


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is not an integer")
    return value


@dataclass(frozen=True)
class Entry:
    """A stored chunk (``digest``; ``count`` 1) or a run of ``count`` zero chunks
    (``digest`` None), starting at chunk ``index``."""

    index: int
    digest: str | None
    count: int = 1


def encode_part(first: int, count: int, entries: list[Entry]) -> bytes:
    out = [HEADER.pack(MAGIC, VERSION, first, count, len(entries))]
    for e in entries:
        if e.digest is None:
            out.append(RECORD.pack(e.index - first, ZERO, _RUN.pack(e.count)))
        else:
            out.append(RECORD.pack(e.index - first, STORED, bytes.fromhex(e.digest)))
    return b"".join(out)


def decode_part(raw: bytes, part: IndexPart, where: str) -> Iterator[Entry]:
    """The entries of *part* from its raw bytes (already verified against its BLAKE3),
    checked: header matches the image header's description, records sorted, inside the
    span, counts as the image header says."""
    for offset, digest, run in _records(raw, part, where):
        yield Entry(part.first + offset, None if digest is None else digest.hex(), run)


def stored_keys(raw: bytes, part: IndexPart, where: str) -> list[int]:
    """The first 64 bits of every stored chunk's BLAKE3 in *part*, checked like
    :func:`decode_part`: what a presence check needs, at a fraction of the cost."""
    return [int.from_bytes(digest[:8], "big")
            for _offset, digest, _run in _records(raw, part, where) if digest is not None]


def _records(raw: bytes, part: IndexPart, where: str) -> Iterator[tuple[int, bytes | None, int]]:
    """(offset in the span, raw digest or None for a zero run, chunks) per record."""
    def bad(why: str) -> ImageCorruptError:
        return ImageCorruptError(_("The chunk index of {where} is damaged ({why}).").format(
            where=where, why=why))

    if len(raw) < HEADER.size:
        raise bad("too short")
    magic, version, first, count, n = HEADER.unpack_from(raw)
    if magic != MAGIC or version != VERSION:
        raise bad("not an index part")
    if (first, count) != (part.first, part.count) or len(raw) != HEADER.size + n * RECORD.size:
        raise bad("its span or length differs from the image header")
    end = 0  # one past the last chunk index of the previous record
    stored = zero = 0
    for offset, kind, payload in RECORD.iter_unpack(memoryview(raw)[HEADER.size:]):
        if offset < end:
            raise bad("records out of order or overlapping")
        if kind == STORED:
            stored += 1
            end = offset + 1
            if end > count:
                raise bad("a record past the end of its span")
            yield offset, payload, 1
        elif kind == ZERO:
            (run,) = _RUN.unpack(payload)
            if run < 1:
                raise bad("an empty zero run")
            zero += run
            end = offset + run
            if end > count:
                raise bad("a record past the end of its span")
            yield offset, None, run
        else:
            raise bad(f"record kind {kind}")
    if (stored, zero) != (part.stored, part.zero):
        raise bad("its counts differ from the image header")


class IndexWriter:
    """Builds the parts of one byte range's index while a backup runs, holding one
    part's entries at a time. Entries must come in chunk-index order. *store* keeps a
    finished part's raw bytes (in the repository, as a chunk) and returns its BLAKE3."""

    def __init__(self, length: int, chunk_size: int, store: Callable[[bytes], str]) -> None:
        self.length, self.chunk_size, self.store = length, chunk_size, store
        self.parts: list[IndexPart] = []
        self._first = 0
        self._entries: list[Entry] = []
        self._last = -1

    def _span_bytes(self, index: int, count: int) -> int:
        start = index * self.chunk_size
        return max(0, min(self.length, (index + count) * self.chunk_size) - start)

    def add(self, index: int, digest: str | None) -> None:
        """Chunk *index* is stored under *digest*, or zero (None)."""
        if index <= self._last:
            raise ValueError(f"chunk {index} after {self._last}")
        if index * self.chunk_size >= self.length:
            raise ValueError(f"chunk {index} is past the end ({self.length} bytes)")
        while index >= self._first + PART_SPAN:
            self._flush()
        last = self._entries[-1] if self._entries else None
        if (digest is None and last is not None and last.digest is None
                and last.index + last.count == index):
            self._entries[-1] = Entry(last.index, None, last.count + 1)
        else:
            self._entries.append(Entry(index, digest))
        self._last = index

    def _flush(self) -> None:
        if self._entries:
            count = min(PART_SPAN, -(-self.length // self.chunk_size) - self._first)
            raw = encode_part(self._first, count, self._entries)
            digest = self.store(raw)
            stored = [e for e in self._entries if e.digest is not None]
            zeros = [e for e in self._entries if e.digest is None]
            self.parts.append(IndexPart(
                first=self._first, count=count, blake3=digest, size=len(raw),
                stored=len(stored),
                stored_bytes=sum(self._span_bytes(e.index, 1) for e in stored),
                zero=sum(e.count for e in zeros),
                zero_bytes=sum(self._span_bytes(e.index, e.count) for e in zeros)))
        self._first += PART_SPAN
        self._entries = []

    def finish(self) -> list[IndexPart]:
        if self._entries:
            self._flush()
        return self.parts
