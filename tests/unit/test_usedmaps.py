from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rescue.fs import ext, fat
from rescue.fs.usedmap import UsedMap, blocks_to_ranges

DUMPE2FS = """Filesystem volume name:   root
Filesystem features:      has_journal ext_attr extent 64bit flex_bg
Filesystem state:         clean
Block count:              1000
Block size:               4096
Journal inode:            8
Journal start:            0

Group 0: (Blocks 0-999) csum 0x1234
  Primary superblock at 0, Group descriptors at 1-1
  Free blocks: 10-19, 500-899, 950
  Free inodes: 12-256
"""


def test_usedmap_merges_and_clips() -> None:
    m = UsedMap.from_ranges(100, [(50, 60), (0, 10), (5, 20), (90, 200)])
    assert m.ranges == [(0, 20), (50, 60), (90, 100)]
    assert m.used_bytes == 40
    assert list(m.chunks_touched(32)) == [0, 1, 2, 3]
    assert list(m.chunks_touched(50)) == [0, 1]
    assert m.overlaps(15, 55) == [(15, 20), (50, 55)]


def test_blocks_to_ranges() -> None:
    m = blocks_to_ranges([(2, 3), (6, 9)], total_blocks=10, block_size=10, length=100)
    assert m.ranges == [(0, 20), (40, 60)]


def test_parse_dumpe2fs_free_runs() -> None:
    m = ext.parse_dumpe2fs(DUMPE2FS, 1000 * 4096)
    assert m.ranges == [(0, 10 * 4096), (20 * 4096, 500 * 4096), (900 * 4096, 950 * 4096),
                        (951 * 4096, 1000 * 4096)]


def test_empty_journal_log_is_dropped_but_its_superblock_kept() -> None:
    fields = ext.header_fields(DUMPE2FS)
    assert ext.empty_journal(fields)
    runs = ext.journal_log_blocks("(0-99):100-199, (ETB0):5, (100-149):300-349")
    assert runs == [(101, 199), (300, 349)]
    dirty = dict(fields, **{"Journal start": "17"})
    assert not ext.empty_journal(dirty)


def test_fat_used_map_matches_mtools(tmp_path: Path) -> None:
    img = tmp_path / "esp.img"
    with open(img, "wb") as f:
        f.truncate(40 * 1024 * 1024)
    subprocess.run(["mkfs.vfat", "-F", "32", str(img)], check=True, capture_output=True)
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"\x01" * (3 * 1024 * 1024 + 17))
    env = {"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"}
    subprocess.run(["mcopy", "-i", str(img), str(payload), "::/p.bin"], check=True, env=env)
    import os

    fd = os.open(img, os.O_RDONLY)
    try:
        geo = fat.parse_boot_sector(os.pread(fd, 512, 0))
        used = fat.used_map_from_device(fd, 0, 40 * 1024 * 1024)
    finally:
        os.close(fd)
    assert geo["bits"] == 32
    cluster = geo["bytes_per_sector"] * geo["sectors_per_cluster"]
    metadata = geo["data_start"] * geo["bytes_per_sector"]
    file_clusters = -(-(3 * 1024 * 1024 + 17) // cluster)
    # metadata + the root directory cluster + the file's clusters
    assert used.used_bytes == metadata + cluster + file_clusters * cluster
    # every byte of the file lies in a used range
    data = img.read_bytes()
    for start, end in used.ranges:
        data = data[:start] + b"\0" * (end - start) + data[end:]
    assert b"\x01" * 4096 not in data


def test_fat_rejects_garbage() -> None:
    with pytest.raises(Exception, match="55AA"):
        fat.parse_boot_sector(b"\0" * 512)
