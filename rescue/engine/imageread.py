"""An image's partition read like a block device: bytes at any offset, produced on demand.

::

    cache = ChunkCache(repo)                         # decoded chunks, bounded (bytes)
    reader = RangeReader(repo, partition.data, size, cache, where="partition 2")
    reader.read(offset, length)                      # bytes; zeros where nothing is stored

Offset -> chunk: chunk *i* covers ``[i * chunk_size, (i + 1) * chunk_size)`` of the range
(docs/FORMAT.md, "Chunk index"). :class:`ChunkIndex` answers what chunk *i* is: a stored
chunk (its BLAKE3), a zero chunk, or unused space (never stored). A format-2 image keeps
that answer in *index parts* of 65 536 chunk indexes each; only the part covering the
chunk asked for is fetched (verified like any chunk) and decoded, and a few decoded parts
are kept (:data:`PARTS_KEPT`), so an image of 14 million chunks costs one part read per
64 GiB visited, never the whole index. A format-1 image's inline lists are used as they
are.

A stored chunk is fetched from the repository, decompressed and its BLAKE3 checked
(:func:`rescue.image.chunks.decode_chunk`) before any byte of it is returned; decoded
chunks are kept in :class:`ChunkCache`, least recently used first out, up to a byte
budget (:data:`DEFAULT_CACHE_BYTES`). Chunks are named by content, so one cache serves
every partition of the image. Sequential reads start fetching the next chunks in the
background (:data:`READ_AHEAD`), so a file copied out of a mounted image streams at the
repository's pace rather than one round trip per chunk.

A chunk that is missing or damaged raises :class:`~rescue.errors.ImageCorruptError` for
the reads that touch it (the FUSE layer answers EIO for that range); the rest of the
partition stays readable.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from rescue.image import chunks as codec
from rescue.image.index import IndexPart, decode_part
from rescue.image.manifest import ChunkedData
from rescue.image.repository import RepositoryReader

log = logging.getLogger(__name__)

#: decoded chunks kept: 128 MiB. A loop device reads 128 KiB-1 MiB at a time, so a
#: sequential pass hits each 1 MiB chunk several times; filesystem metadata (inode
#: tables, directories, the journal, btrfs trees) is scattered and read again on every
#: listing. 128 chunks of 1 MiB keep a root filesystem's hot metadata without taking
#: more than a small share of a live system's memory (the kernel's page cache of the
#: partition file and of the mounted filesystem caches on top). Never fewer than
#: :data:`MIN_CACHE_CHUNKS` chunks, whatever the chunk size.
DEFAULT_CACHE_BYTES = 128 << 20
MIN_CACHE_CHUNKS = 4
#: decoded index parts kept (each covers 65 536 chunks: 64 GiB at 1 MiB chunks)
PARTS_KEPT = 4
#: chunks fetched ahead of a sequential reader
READ_AHEAD = 8

ZERO = "zero"  # ChunkIndex.lookup: an all-zero chunk (listed as a zero run)


class ChunkIndex:
    """What chunk *i* of a byte range is: ``lookup(i)`` gives its BLAKE3 (stored),
    :data:`ZERO`, or None (unused space, never stored). *fetch* reads an index part's
    raw bytes, verified against its BLAKE3 (``RepositoryReader.read_part``)."""

    def __init__(self, data: ChunkedData, fetch: Callable[[IndexPart], bytes],
                 parts_kept: int = PARTS_KEPT) -> None:
        self.data = data
        self._fetch = fetch
        self._parts = sorted(data.parts, key=lambda p: p.first)
        self._firsts = [p.first for p in self._parts]
        self._kept: OrderedDict[int, _Decoded] = OrderedDict()
        self._parts_kept = max(1, parts_kept)
        self._lock = threading.Lock()
        self.parts_read = 0  # how many index parts were fetched (tests, benchmarks)
        # format 1: the manifest's inline lists, sorted once
        chunks = sorted(data.chunks)
        zeros = sorted(data.zero)
        self._inline = _Decoded(
            array("q", [i for i, _h in chunks] + [a for a, _n in zeros]),
            array("q", [1] * len(chunks) + [n for _a, n in zeros]),
            [h for _i, h in chunks] + [None] * len(zeros))
        self._inline.sort()

    def lookup(self, index: int) -> str | None:
        if index < 0:
            return None
        found = self._inline.find(index)
        if found is not None:
            return found
        j = bisect_right(self._firsts, index) - 1
        if j < 0:
            return None
        part = self._parts[j]
        if index >= part.first + part.count:
            return None
        return self._decoded(part).find(index)

    def _decoded(self, part: IndexPart) -> _Decoded:
        with self._lock:
            got = self._kept.get(part.first)
            if got is not None:
                self._kept.move_to_end(part.first)
                return got
            # one part at a time: parts are few (one per 64 GiB) and read rarely
            raw = self._fetch(part)
            self.parts_read += 1
            starts: array[int] = array("q")
            counts: array[int] = array("q")
            digests: list[str | None] = []
            for entry in decode_part(raw, part, part.name):
                starts.append(entry.index)
                counts.append(entry.count)
                digests.append(entry.digest)
            got = _Decoded(starts, counts, digests)
            self._kept[part.first] = got
            while len(self._kept) > self._parts_kept:
                self._kept.popitem(last=False)
            return got


@dataclass
class _Decoded:
    """Records of one index part (or a format-1 manifest): sorted starts, chunk counts
    (1 for a stored chunk), digests (None for a zero run)."""

    starts: array[int]
    counts: array[int]
    digests: list[str | None]

    def sort(self) -> None:
        order = sorted(range(len(self.starts)), key=self.starts.__getitem__)
        self.starts = array("q", (self.starts[k] for k in order))
        self.counts = array("q", (self.counts[k] for k in order))
        self.digests = [self.digests[k] for k in order]

    def find(self, index: int) -> str | None:
        k = bisect_right(self.starts, index) - 1
        if k < 0 or index >= self.starts[k] + self.counts[k]:
            return None
        digest = self.digests[k]
        return ZERO if digest is None else digest


class ChunkCache:
    """Decoded, verified chunks by BLAKE3, least recently used out first, at most
    *max_bytes* (and at least :data:`MIN_CACHE_CHUNKS` chunks). Thread-safe; a chunk
    being fetched by one thread is waited for by the others, never fetched twice."""

    def __init__(self, repo: RepositoryReader, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.repo = repo
        self.max_bytes = max_bytes
        self._chunks: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._loading: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.fetched = 0  # chunks read from the repository (tests, benchmarks)
        self.hits = 0

    def get(self, digest: str, length: int, where: str) -> bytes:
        """The raw bytes of chunk *digest* (*length* bytes), verified. Raises
        ImageCorruptError (missing, damaged) or a RepositoryError (cannot be read)."""
        while True:
            with self._lock:
                data = self._chunks.get(digest)
                if data is not None:
                    self._chunks.move_to_end(digest)
                    self.hits += 1
                    return data
                waiting = self._loading.get(digest)
                if waiting is None:
                    mine = self._loading[digest] = threading.Event()
                    break
            waiting.wait()  # another thread fetches it; then look again
        try:
            data = codec.decode_chunk(digest, self.repo.read_chunk(digest, where), length,
                                      where)
            with self._lock:
                self.fetched += 1
                self._put(digest, data)
            return data
        finally:
            with self._lock:
                del self._loading[digest]
            mine.set()

    def _put(self, digest: str, data: bytes) -> None:
        if digest in self._chunks:
            return
        self._chunks[digest] = data
        self._bytes += len(data)
        while self._bytes > self.max_bytes and len(self._chunks) > MIN_CACHE_CHUNKS:
            _old, dropped = self._chunks.popitem(last=False)
            self._bytes -= len(dropped)

    def __contains__(self, digest: str) -> bool:
        with self._lock:
            return digest in self._chunks or digest in self._loading

    @property
    def size(self) -> int:
        return self._bytes


class RangeReader:
    """One partition (a :class:`ChunkedData` byte range) read at any offset. *size*: the
    bytes the partition file shows (the partition's size; anything past the indexed
    range reads as zeros). *where* names the partition in sentences. *ahead*: a thread
    pool that fetches the next chunks of a sequential reader (None: no read-ahead)."""

    def __init__(self, repo: RepositoryReader, data: ChunkedData | None, size: int,
                 cache: ChunkCache, where: str,
                 ahead: ThreadPoolExecutor | None = None) -> None:
        self.repo, self.data, self.size, self.cache, self.where = repo, data, size, cache, where
        self.index = ChunkIndex(data, lambda part: repo.read_part(part, part.name)) \
            if data is not None else None
        self._ahead = ahead
        self._last = -2  # chunk index of the last read (read-ahead on sequential reads)
        self._ahead_to = -1  # chunks up to this index were asked for already

    def read(self, offset: int, length: int) -> bytes:
        """*length* bytes from *offset* (fewer at the end of the partition)."""
        if offset < 0 or length < 0:
            raise ValueError("negative offset or length")
        end = min(self.size, offset + length)
        if offset >= end:
            return b""
        if self.data is None:
            return bytes(end - offset)
        cs = self.data.chunk_size
        i = offset // cs
        if (end - 1) // cs == i:  # within one chunk (most requests): no extra copy
            chunk = self.chunk(i)
            a, b = offset - i * cs, end - i * cs
            if chunk is None:
                return bytes(b - a)
            if len(chunk) >= b:
                return chunk if (a, b) == (0, len(chunk)) else chunk[a:b]
        out = bytearray()
        pos = offset
        while pos < end:
            i = pos // cs
            start = i * cs
            stop = min(end, start + cs)
            chunk = self.chunk(i)
            if chunk is None:
                out += bytes(stop - pos)
            else:
                piece = chunk[pos - start:stop - start]
                out += piece
                if len(piece) < stop - pos:  # the partition's last chunk may be short
                    out += bytes(stop - pos - len(piece))
            pos = stop
        return bytes(out)

    def chunk(self, i: int) -> bytes | None:
        """The raw bytes of chunk *i*; None when it reads as zeros (a zero chunk, unused
        space, past the indexed range)."""
        assert self.data is not None and self.index is not None
        if i * self.data.chunk_size >= self.data.length:
            return None
        sequential = i == self._last + 1 or i == self._last
        if not sequential:
            self._ahead_to = i  # a jump: read ahead from here once it goes on in order
        self._last = i
        what = self.index.lookup(i)
        if sequential and self._ahead is not None:
            self._read_ahead(i)
        if what is None or what == ZERO:
            return None
        return self.cache.get(what, self.data.chunk_span(i)[1], self._where(i))

    def _where(self, i: int) -> str:
        assert self.data is not None
        return f"{self.where}, offset {i * self.data.chunk_size}"

    def _read_ahead(self, i: int) -> None:
        assert self.data is not None and self.index is not None and self._ahead is not None
        last = (self.data.length - 1) // self.data.chunk_size
        first = max(i + 1, self._ahead_to + 1)
        upto = min(last, i + READ_AHEAD)
        for j in range(first, upto + 1):
            what = self.index.lookup(j)
            if what is None or what == ZERO or what in self.cache:
                continue
            with contextlib.suppress(RuntimeError):  # the pool is shutting down
                self._ahead.submit(self._fetch_quietly, what, self.data.chunk_span(j)[1],
                                   self._where(j))
        self._ahead_to = max(self._ahead_to, upto)

    def _fetch_quietly(self, digest: str, length: int, where: str) -> None:
        try:
            self.cache.get(digest, length, where)
        except Exception as exc:  # the reader that needs it gets the error itself
            log.debug("read-ahead of %s: %s", where, exc)
