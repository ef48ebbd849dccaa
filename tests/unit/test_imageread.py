"""rescue.engine.imageread: offset -> chunk through format-2 index parts (fetched lazily,
only the part covering the offset) and format-1 inline lists, checked against a plain
model of the partition's bytes; the bounded cache; a damaged chunk."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rescue.engine.imageread import (
    MIN_CACHE_CHUNKS,
    ZERO,
    ChunkCache,
    ChunkIndex,
    RangeReader,
)
from rescue.errors import ImageCorruptError
from rescue.image import chunks as codec
from rescue.image.index import Entry, IndexPart, encode_part
from rescue.image.manifest import ChunkedData
from rescue.image.repository import RepositoryReader

STORED, ZEROED, UNUSED = "stored", "zero", "unused"


class MemoryRepository(RepositoryReader):
    """Chunks in a dict, as a repository holds them (zstd frames named by BLAKE3)."""

    location = "memory"

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.reads: list[str] = []
        self.lock = threading.Lock()

    def put(self, raw: bytes) -> str:
        digest = codec.chunk_hash(raw)
        self.blobs[digest] = codec.compress(raw)
        return digest

    def read_chunk(self, digest: str, where: str) -> bytes:
        with self.lock:
            self.reads.append(digest)
        try:
            return self.blobs[digest]
        except KeyError:
            raise ImageCorruptError(f"{where}: chunk {digest[:16]} is missing") from None


class Layout:
    """A partition: per chunk STORED (with bytes), ZEROED or UNUSED; its bytes as a model."""

    def __init__(self, cs: int, kinds: list[tuple[str, int]], tail: int, extra: int) -> None:
        self.cs = cs
        self.kinds = kinds
        self.length = len(kinds) * cs - tail
        self.size = self.length + extra
        self.repo = MemoryRepository()
        self.chunks: dict[int, bytes] = {}
        model = bytearray(self.size)
        for i, (kind, seed) in enumerate(kinds):
            if kind != STORED:
                continue
            span = min(cs, self.length - i * cs)
            raw = bytes((seed * 7 + k * 13 + i * (seed % 3)) % 251 + 1 for k in range(span))
            self.chunks[i] = raw
            model[i * cs:i * cs + span] = raw
        self.model = bytes(model)

    def entries(self, lo: int, hi: int) -> list[Entry]:
        out: list[Entry] = []
        for i in range(lo, hi):
            kind = self.kinds[i][0]
            if kind == STORED:
                out.append(Entry(i, codec.chunk_hash(self.chunks[i])))
            elif kind == ZEROED:
                last = out[-1] if out else None
                if last is not None and last.digest is None and last.index + last.count == i:
                    out[-1] = Entry(last.index, None, last.count + 1)
                else:
                    out.append(Entry(i, None))
        return out

    def format2(self, cuts: list[int]) -> ChunkedData:
        """Index parts over the spans between *cuts*; spans without entries get none."""
        for raw in self.chunks.values():
            self.repo.put(raw)
        bounds = sorted({0, len(self.kinds), *[c for c in cuts if 0 < c < len(self.kinds)]})
        parts = []
        for lo, hi in zip(bounds, bounds[1:], strict=False):
            entries = self.entries(lo, hi)
            if not entries:
                continue
            raw = encode_part(lo, hi - lo, entries)
            stored = [e for e in entries if e.digest]
            zeros = [e for e in entries if not e.digest]
            parts.append(IndexPart(lo, hi - lo, self.repo.put(raw), len(raw), len(stored), 0,
                                   sum(e.count for e in zeros), 0))
        return ChunkedData(self.length, self.cs, parts=parts)

    def format1(self) -> ChunkedData:
        for raw in self.chunks.values():
            self.repo.put(raw)
        entries = self.entries(0, len(self.kinds))
        return ChunkedData(self.length, self.cs,
                           chunks=[(e.index, e.digest) for e in entries if e.digest],
                           zero=[(e.index, e.count) for e in entries if not e.digest])


layouts = st.builds(
    Layout,
    cs=st.sampled_from([16, 32, 64]),
    kinds=st.lists(st.tuples(st.sampled_from([STORED, ZEROED, UNUSED]),
                             st.integers(0, 5)), min_size=1, max_size=120),
    tail=st.integers(0, 15),
    extra=st.integers(0, 200),
)


def _expected(layout: Layout, i: int) -> str | None:
    if i < 0 or i >= len(layout.kinds):
        return None
    kind = layout.kinds[i][0]
    if kind == STORED:
        return codec.chunk_hash(layout.chunks[i])
    return ZERO if kind == ZEROED else None


@settings(max_examples=150, deadline=None)
@given(layout=layouts, cuts=st.lists(st.integers(0, 120), max_size=6),
       fmt=st.sampled_from([1, 2]),
       reads=st.lists(st.tuples(st.integers(0, 8000), st.integers(0, 700)), max_size=12))
def test_reads_match_the_model(layout: Layout, cuts: list[int], fmt: int,
                               reads: list[tuple[int, int]]) -> None:
    data = layout.format2(cuts) if fmt == 2 else layout.format1()
    index = ChunkIndex(data, lambda part: layout.repo.read_part(part, part.name))
    for i in range(-1, len(layout.kinds) + 3):
        assert index.lookup(i) == _expected(layout, i), i
    reader = RangeReader(layout.repo, data, layout.size, ChunkCache(layout.repo, 256),
                         "partition 1")
    for offset, length in reads:
        assert reader.read(offset, length) == layout.model[offset:offset + length]
    assert reader.read(0, layout.size + 10) == layout.model


@settings(max_examples=50, deadline=None)
@given(layout=layouts, cuts=st.lists(st.integers(1, 119), min_size=1, max_size=6),
       at=st.integers(0, 119))
def test_only_the_part_covering_the_offset_is_fetched(layout: Layout, cuts: list[int],
                                                      at: int) -> None:
    data = layout.format2(cuts)
    index = ChunkIndex(data, lambda part: layout.repo.read_part(part, part.name))
    index.lookup(at)
    covering = [p for p in data.parts if p.first <= at < p.first + p.count]
    assert index.parts_read == len(covering) <= 1
    index.lookup(at)
    assert index.parts_read == len(covering)  # kept, not fetched again


def test_a_huge_index_costs_one_part_per_span_visited() -> None:
    """An image of 14 million 1 MiB chunks (214 parts): a read at its end fetches one."""
    repo = MemoryRepository()
    span = 65536
    parts = []
    total = 14_000_000
    for first in range(0, total, span):
        count = min(span, total - first)
        raw = encode_part(first, count, [Entry(first, None, count)])
        parts.append(IndexPart(first, count, repo.put(raw), len(raw), 0, 0, count, 0))
    data = ChunkedData(total << 20, 1 << 20, parts=parts)
    reader = RangeReader(repo, data, data.length, ChunkCache(repo), "partition 3")
    assert reader.read(data.length - 4096, 4096) == bytes(4096)
    assert reader.index is not None and reader.index.parts_read == 1
    assert len(repo.reads) == 1


def test_the_cache_is_bounded_and_shared_fetches_happen_once() -> None:
    layout = Layout(64, [(STORED, i) for i in range(40)], 0, 0)
    data = layout.format2([])
    cache = ChunkCache(layout.repo, max_bytes=64 * 10)
    reader = RangeReader(layout.repo, data, layout.size, cache, "p1")
    assert reader.read(0, layout.size) == layout.model
    assert cache.size <= max(64 * 10, 64 * MIN_CACHE_CHUNKS)
    before = cache.fetched
    barrier = threading.Barrier(8)

    def read_last() -> None:
        barrier.wait()
        assert reader.read(layout.size - 64, 64) == layout.model[-64:]

    threads = [threading.Thread(target=read_last) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.fetched - before <= 1


def test_a_damaged_chunk_fails_its_own_range_only() -> None:
    layout = Layout(64, [(STORED, i) for i in range(6)], 0, 0)
    data = layout.format2([])
    bad = codec.chunk_hash(layout.chunks[3])
    layout.repo.blobs[bad] = codec.compress(bytes(64))  # a valid frame, wrong bytes
    reader = RangeReader(layout.repo, data, layout.size, ChunkCache(layout.repo), "p1")
    with pytest.raises(ImageCorruptError, match="BLAKE3"):
        reader.read(3 * 64 + 5, 10)
    with pytest.raises(ImageCorruptError):
        reader.read(0, layout.size)
    assert reader.read(0, 3 * 64) == layout.model[:3 * 64]
    assert reader.read(4 * 64, 128) == layout.model[4 * 64:]
    del layout.repo.blobs[codec.chunk_hash(layout.chunks[5])]
    assert reader.read(5 * 64, 1) == layout.model[5 * 64:5 * 64 + 1]  # decoded, cached
    fresh = RangeReader(layout.repo, data, layout.size, ChunkCache(layout.repo), "p1")
    with pytest.raises(ImageCorruptError, match="missing"):
        fresh.read(5 * 64, 1)


def test_a_partition_without_data_reads_as_zeros() -> None:
    repo = MemoryRepository()
    reader = RangeReader(repo, None, 1000, ChunkCache(repo), "swap")
    assert reader.read(0, 2000) == bytes(1000)
    assert reader.read(1000, 10) == b""


def test_a_damaged_index_part_fails_the_reads_it_covers_only() -> None:
    layout = Layout(64, [(STORED, i) for i in range(8)], 0, 0)
    data = layout.format2([4])
    first, second = data.parts
    layout.repo.blobs[second.blake3] = codec.compress(b"RIDX" + bytes(second.size - 4))
    reader = RangeReader(layout.repo, data, layout.size, ChunkCache(layout.repo), "p1")
    assert reader.read(0, 4 * 64) == layout.model[:4 * 64]
    with pytest.raises(ImageCorruptError, match=second.blake3[:16]):
        reader.read(5 * 64, 10)
