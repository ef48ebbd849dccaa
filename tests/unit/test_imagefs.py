"""rescue.engine.imagefs without a kernel: the operations FUSE calls (names, sizes, modes,
read-only opens) and a damaged chunk turned into EIO with one sentence per place."""

from __future__ import annotations

import errno
import os
import stat

import pytest
from test_imageread import MemoryRepository

from rescue.engine.imagefs import PARTS_DIR, ImageFilesystem
from rescue.engine.imageread import ChunkCache, RangeReader
from rescue.image import chunks as codec
from rescue.image.manifest import ChunkedData


def _fs() -> tuple[ImageFilesystem, list[str], MemoryRepository]:
    repo = MemoryRepository()
    good, bad = b"a" * 64, b"b" * 64
    data = ChunkedData(256, 64, chunks=[(0, repo.put(good)), (2, repo.put(bad))],
                       zero=[(1, 1)])
    repo.blobs[codec.chunk_hash(bad)] = codec.compress(b"c" * 64)  # damaged
    cache = ChunkCache(repo)
    said: list[str] = []
    fs = ImageFilesystem({"p1.img": RangeReader(repo, data, 300, cache, "partition 1"),
                          "p2.img": RangeReader(repo, None, 100, cache, "partition 2")},
                         "rescue:test", said.append)
    return fs, said, repo


def test_names_sizes_and_modes() -> None:
    fs, _said, _repo = _fs()
    assert fs.readdir("/", 0) == [".", "..", PARTS_DIR]
    fs.add_folder("p1")
    assert fs.readdir("/", 0) == [".", "..", PARTS_DIR, "p1"]
    assert fs.readdir("/" + PARTS_DIR, 0) == [".", "..", "p1.img", "p2.img"]
    attrs = fs.getattr(f"/{PARTS_DIR}/p1.img")
    assert attrs["st_size"] == 300 and stat.S_ISREG(attrs["st_mode"])
    assert attrs["st_mode"] & 0o222 == 0
    assert stat.S_ISDIR(fs.getattr("/p1")["st_mode"])
    for missing in ("/p2", "/parts/p3.img", "/x/y"):
        with pytest.raises(OSError) as err:
            fs.getattr(missing)
        assert err.value.errno == errno.ENOENT
    with pytest.raises(OSError) as err:
        fs.open(f"/{PARTS_DIR}/p1.img", os.O_RDWR)
    assert err.value.errno == errno.EROFS
    assert fs.open(f"/{PARTS_DIR}/p1.img", os.O_RDONLY) == 0
    fs.drop_folder("p1")
    assert fs.readdir("/", 0) == [".", "..", PARTS_DIR]


def test_reads_and_a_damaged_chunk() -> None:
    fs, said, _repo = _fs()
    path = f"/{PARTS_DIR}/p1.img"
    assert fs.read(path, 128, 0, 0) == b"a" * 64 + bytes(64)
    assert fs.read(path, 100, 250, 0) == bytes(50)  # unused, then past the indexed range
    assert fs.read(f"/{PARTS_DIR}/p2.img", 200, 0, 0) == bytes(100)
    for _ in range(3):
        with pytest.raises(OSError) as err:
            fs.read(path, 10, 130, 0)
        assert err.value.errno == errno.EIO
    assert fs.read_errors == 3
    assert len(said) == 1 and "BLAKE3" in said[0] and "partition 1, offset 128" in said[0]
