"""seal.json is read from repositories others control: whatever it holds, parsing gives
a seal or nothing, never an exception, and only a well-formed one vouches."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from rescue.image.seal import CHUNK_FOLDERS, OPEN, SEALED, Seal, parse_seal

GOOD = Seal(SEALED, frozenset({"20260101T000000Z-abcdef"}),
            {name: (n * 1000 if n % 3 else None) for n, name in enumerate(CHUNK_FOLDERS)},
            "2026-01-01T00:00:00Z")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=5),
    max_leaves=20)


def test_a_seal_round_trips_and_vouches_only_for_unchanged_folders() -> None:
    back = parse_seal(GOOD.to_json())
    assert back == GOOD
    assert back.vouches_now(dict(GOOD.folders)) == GOOD.images
    changed = dict(GOOD.folders, **{"7f": 1})
    assert back.vouches_now(changed) == frozenset()
    assert back.carried_over(changed) == frozenset()
    opened = parse_seal(Seal(OPEN, GOOD.images).to_json())
    assert opened is not None and opened.vouches_now(dict(GOOD.folders)) == frozenset()
    assert opened.carried_over({}) == GOOD.images  # only a rescue writer was there


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_give_a_seal_or_nothing(raw: bytes) -> None:
    parse_seal(raw)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["format", "state", "images", "folders", "written_utc"]), json_values)
def test_a_field_replaced_by_anything_gives_a_valid_seal_or_nothing(key: str,
                                                                    value: object) -> None:
    body = json.loads(GOOD.to_json())
    body[key] = value
    seal = parse_seal(json.dumps(body).encode())
    if seal is not None:
        assert seal.state in (OPEN, SEALED)
        assert all(isinstance(i, str) and len(i) == 23 for i in seal.images)
        if seal.state == SEALED:
            assert set(seal.folders) == set(CHUNK_FOLDERS)
            assert all(v is None or (type(v) is int and v >= 0) for v in seal.folders.values())


def test_a_huge_or_deep_seal_is_no_seal() -> None:
    assert parse_seal(b"[" * 100000 + b"]" * 100000) is None
    assert parse_seal(b" " * (9 << 20)) is None
