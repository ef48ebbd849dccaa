"""The chunk index of format 2 (rescue.image.index): what a backup writes part by part
reads back entry for entry, totals come from the header alone, and a damaged or forged
part is refused with rescue's own error, never anything else."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rescue.errors import ImageCorruptError
from rescue.image.index import (
    HEADER,
    PART_SPAN,
    RECORD,
    Entry,
    IndexPart,
    IndexWriter,
    decode_part,
    encode_part,
)
from rescue.image.manifest import ChunkedData

CHUNK = 1024 * 1024


def digest_of(n: int) -> str:
    return hashlib.sha256(n.to_bytes(8, "little")).hexdigest()


@st.composite
def indexes(draw: st.DrawFn) -> tuple[int, dict[int, str | None]]:
    """(length, {chunk index: digest or None for zero}) over up to 3 parts' spans, with
    clusters at part boundaries."""
    chunks = draw(st.integers(1, 3 * PART_SPAN))
    length = chunks * CHUNK - draw(st.integers(0, CHUNK - 1))
    picks = draw(st.lists(st.one_of(
        st.integers(0, chunks - 1),
        st.sampled_from([i for i in (0, PART_SPAN - 1, PART_SPAN, 2 * PART_SPAN - 1,
                                     2 * PART_SPAN, chunks - 1) if i < chunks])),
        max_size=300, unique=True))
    runs = draw(st.lists(st.tuples(st.integers(0, chunks - 1), st.integers(1, 3000)),
                         max_size=4))
    table: dict[int, str | None] = {}
    for first, count in runs:
        for i in range(first, min(chunks, first + count)):
            table[i] = None
    for i in picks:
        table[i] = draw(st.one_of(st.none(), st.integers(0, 50).map(digest_of)))
    return length, table


def build(length: int, table: dict[int, str | None]) -> tuple[ChunkedData, dict[str, bytes]]:
    store: dict[str, bytes] = {}

    def keep(raw: bytes) -> str:
        digest = hashlib.sha256(raw).hexdigest()
        store[digest] = raw
        return digest

    writer = IndexWriter(length, CHUNK, keep)
    for i in sorted(table):
        writer.add(i, table[i])
    return ChunkedData(length, CHUNK, parts=writer.finish()), store


def expand(data: ChunkedData, store: dict[str, bytes]) -> dict[int, str | None]:
    out: dict[int, str | None] = {}
    last = -1
    for e in data.entries(lambda part: store[part.blake3]):
        assert e.index > last  # in order, no overlap
        for i in range(e.index, e.index + e.count):
            out[i] = e.digest
        last = e.index + e.count - 1
    return out


@settings(max_examples=150, deadline=None)
@given(indexes())
def test_what_is_written_part_by_part_reads_back_entry_for_entry(
        case: tuple[int, dict[int, str | None]]) -> None:
    length, table = case
    data, store = build(length, table)
    assert expand(data, store) == table
    # every part covers its own span of PART_SPAN chunk indexes, none empty
    for part in data.parts:
        assert part.first % PART_SPAN == 0 and 0 < part.count <= PART_SPAN
        assert part.first * CHUNK < length
    # totals from the header alone
    stored = [i for i, d in table.items() if d is not None]
    zero = [i for i, d in table.items() if d is None]
    assert data.stored_chunks == len(stored)
    assert data.stored_chunk_bytes == sum(data.chunk_span(i)[1] for i in stored)
    assert data.zero_bytes == sum(data.chunk_span(i)[1] for i in zero)
    # JSON round trip of the header's description
    assert ChunkedData.from_dict(data.to_dict()) == data


def test_an_unchanged_span_gives_the_same_part() -> None:
    """What makes an incremental backup reuse the index: a span whose chunks did not
    change encodes to the same bytes, whatever changed elsewhere."""
    table = {i: digest_of(i) for i in range(0, 3 * PART_SPAN, 7)}
    one, _ = build(3 * PART_SPAN * CHUNK, table)
    table[2 * PART_SPAN + 5] = digest_of(10**9)
    two, _ = build(3 * PART_SPAN * CHUNK, table)
    assert [p.blake3 for p in one.parts[:2]] == [p.blake3 for p in two.parts[:2]]
    assert one.parts[2].blake3 != two.parts[2].blake3


def test_zero_runs_are_one_entry_and_split_at_part_ends() -> None:
    table: dict[int, str | None] = dict.fromkeys(range(PART_SPAN - 10, PART_SPAN + 10))
    data, store = build(2 * PART_SPAN * CHUNK, table)
    runs = list(data.entries(lambda part: store[part.blake3]))
    assert runs == [Entry(PART_SPAN - 10, None, 10), Entry(PART_SPAN, None, 10)]


def test_the_writer_refuses_entries_out_of_order_or_past_the_end() -> None:
    writer = IndexWriter(10 * CHUNK, CHUNK, lambda raw: "x" * 64)
    writer.add(3, None)
    with pytest.raises(ValueError):
        writer.add(3, None)
    with pytest.raises(ValueError):
        writer.add(10, digest_of(1))


def _part(entries: list[Entry], first: int = 0, count: int = 100) -> tuple[bytes, IndexPart]:
    raw = encode_part(first, count, entries)
    stored = sum(1 for e in entries if e.digest is not None)
    zero = sum(e.count for e in entries if e.digest is None)
    return raw, IndexPart(first, count, "0" * 64, len(raw), stored, 0, zero, 0)


@pytest.mark.parametrize(("entries", "why"), [
    ([Entry(5, digest_of(1)), Entry(5, digest_of(2))], "out of order"),
    ([Entry(5, None, 3), Entry(6, digest_of(2))], "out of order"),
    ([Entry(99, None, 2)], "past the end"),
    ([Entry(150, digest_of(1))], "past the end"),
])
def test_forged_records_are_refused(entries: list[Entry], why: str) -> None:
    raw, part = _part(entries)
    with pytest.raises(ImageCorruptError, match=why):
        list(decode_part(raw, part, "test"))


def test_a_part_that_disagrees_with_the_header_is_refused() -> None:
    raw, part = _part([Entry(1, digest_of(1)), Entry(4, None, 2)])
    assert list(decode_part(raw, part, "t")) == [Entry(1, digest_of(1)), Entry(4, None, 2)]
    for forged in (
        IndexPart(0, 100, part.blake3, part.size, 2, 0, 2, 0),  # counts
        IndexPart(100, 100, part.blake3, part.size, 1, 0, 2, 0),  # span
        IndexPart(0, 99, part.blake3, part.size, 1, 0, 2, 0),
    ):
        with pytest.raises(ImageCorruptError):
            list(decode_part(raw, forged, "t"))
    with pytest.raises(ImageCorruptError, match="too short"):
        list(decode_part(raw[:10], part, "t"))
    with pytest.raises(ImageCorruptError):
        list(decode_part(raw[:-1], part, "t"))
    bad_kind = bytearray(raw)
    bad_kind[HEADER.size + 4] = 9
    with pytest.raises(ImageCorruptError, match="kind 9"):
        list(decode_part(bytes(bad_kind), part, "t"))
    empty_run = encode_part(0, 100, [Entry(4, None, 0)])
    with pytest.raises(ImageCorruptError, match="empty zero run"):
        list(decode_part(empty_run, IndexPart(0, 100, "0" * 64, len(empty_run), 0, 0, 0, 0),
                         "t"))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_damage_gives_rescues_own_error(data: st.DataObject) -> None:
    entries = [Entry(2, digest_of(1)), Entry(3, None, 5), Entry(40, digest_of(2))]
    raw, part = _part(entries)
    damaged = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(damaged) - 1))
        damaged[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        damaged = damaged[: data.draw(st.integers(0, len(damaged)))]
    try:
        got = list(decode_part(bytes(damaged), part, "t"))
    except ImageCorruptError:
        return
    # accepted: then it is a valid index of that span with the header's counts
    assert sum(1 for e in got if e.digest) == part.stored
    assert all(e.index >= 0 and e.index + e.count <= part.count for e in got)
    assert len(damaged) == HEADER.size + len(got) * RECORD.size
