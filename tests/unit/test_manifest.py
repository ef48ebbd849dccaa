from __future__ import annotations

import json

import pytest

from rescue.errors import ImageCorruptError, UnsupportedFormatError
from rescue.image.manifest import ChunkedData, Disk, Manifest, Partition


def sample_manifest() -> Manifest:
    data = ChunkedData(length=10 * 1024 * 1024 + 5, chunk_size=4 * 1024 * 1024,
                       chunks=[(0, "a" * 64), (2, "b" * 64)], zero=[(1, 1)])
    part = Partition(number=1, start=2048, size=20480, type="0FC63DAF-8483-4772-8E79-3D69D8477DE4",
                     uuid="X", filesystem="ext4", fs_uuid="u", fs_label="root",
                     method="used-blocks", used_bytes=123, data=data)
    disk = Disk(size_bytes=64 * 1024 * 1024, logical_sector_size=512, physical_sector_size=4096,
                table="gpt", id="G", first_lba=34, last_lba=131038, partitions=[part])
    return Manifest(id="20260101T000000Z-abcdef", name="n", created_utc="2026-01-01T00:00:00Z",
                    created_local="2026-01-01T01:00:00+01:00", timezone="Europe/Berlin",
                    computer="pc", os_name="Debian", os_id="debian", os_version="12",
                    firmware="uefi", hardware={"architecture": "x86_64"},
                    chunk_size=4 * 1024 * 1024, compression="zstd", disks=[disk])


def test_roundtrip_and_self_hash() -> None:
    m = sample_manifest()
    raw = m.to_json()
    assert Manifest.from_json(raw) == m
    assert b"manifest_blake3" in raw


def test_chunk_spans_and_byte_counts() -> None:
    data = sample_manifest().disks[0].partitions[0].data
    assert data is not None
    assert data.chunk_span(2) == (8 * 1024 * 1024, 2 * 1024 * 1024 + 5)
    assert data.stored_chunk_bytes == 4 * 1024 * 1024 + 2 * 1024 * 1024 + 5
    assert data.zero_bytes == 4 * 1024 * 1024
    assert sample_manifest().data_bytes == 10 * 1024 * 1024 + 5


def test_edited_manifest_is_refused() -> None:
    body = json.loads(sample_manifest().to_json())
    body["computer"] = "other"
    with pytest.raises(ImageCorruptError, match="checksum"):
        Manifest.from_json(json.dumps(body).encode())


def test_truncated_manifest_is_refused() -> None:
    raw = sample_manifest().to_json()
    with pytest.raises(ImageCorruptError, match="truncated"):
        Manifest.from_json(raw[: len(raw) // 3])


def test_newer_version_is_refused_with_advice() -> None:
    body = json.loads(sample_manifest().to_json())
    body["format_version"] = 7
    with pytest.raises(UnsupportedFormatError, match="newer rescue"):
        Manifest.from_json(json.dumps(body).encode())


def test_wrong_magic_is_refused() -> None:
    with pytest.raises(ImageCorruptError, match="not a rescue image"):
        Manifest.from_json(b'{"magic": "something"}')


def test_two_backups_in_the_same_second_sort_in_the_order_they_were_made() -> None:
    from datetime import UTC, datetime

    from rescue.image.repository import new_image_id

    now = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)
    first = new_image_id(now)
    ids = [first]
    for _n in range(5):
        ids.append(new_image_id(now, ids))
    assert ids == sorted(ids) and len(set(ids)) == 6
    assert new_image_id(now, ["20261203T095959Z-ffffff"]).startswith("20261203T100000Z-")
