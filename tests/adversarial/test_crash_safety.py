"""A power cut while a backup writes (issue 12, finding 6). A filesystem may keep a
chunk's name but not its data (FAT, exFAT and a share keep no order between the two; ext4
without data ordering neither): the chunk file is then empty, shorter than it was written
or zero-filled. Such a file must never be reused by a later backup, and a chunk's name
must point at data already on the disk. A torn file is written here by hand, standing
for what the power cut left."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rescue.image import chunks as codec
from rescue.image import repository as repository_module
from rescue.image.repository import Repository

#: a chunk of several zstd blocks (random data: stored blocks of 128 KiB)
DATA = os.urandom(1 << 20)
DIGEST = codec.chunk_hash(DATA)
BLOB = codec.compress(DATA)
#: a chunk that compresses well (compressed blocks)
TEXT = b"".join(b"line %d of a log file\n" % i for i in range(60000))[: 1 << 20]
TEXT_DIGEST = codec.chunk_hash(TEXT)
TEXT_BLOB = codec.compress(TEXT)


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.create(tmp_path / "repo")


def _place(repo: Repository, digest: str, content: bytes) -> Path:
    path = repo.chunk_path(digest)
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    return path


def _torn(blob: bytes) -> dict[str, bytes]:
    """What a power cut can leave under a chunk's name."""
    return {
        "empty": b"",
        "cut short": blob[: len(blob) * 2 // 3],
        "cut by one byte": blob[:-1],
        "zero-filled": bytes(len(blob)),
        "zero tail": blob[: len(blob) // 2] + bytes(len(blob) - len(blob) // 2),
        "header only": blob[:18],
        "longer than its frame": blob + bytes(4096),
    }


@pytest.mark.parametrize("blob, digest, data", [(BLOB, DIGEST, DATA),
                                                (TEXT_BLOB, TEXT_DIGEST, TEXT)],
                         ids=["stored-blocks", "compressed-blocks"])
def test_a_torn_chunk_counts_as_missing_and_is_written_again(
        repo: Repository, blob: bytes, digest: str, data: bytes) -> None:
    assert len(blob) > 0
    for what, content in _torn(blob).items():
        path = _place(repo, digest, content)
        assert not repo.has_chunk(digest), f"a chunk file {what} would be reused"
        assert repo.put_chunk(digest, blob), what  # the next backup writes it over
        assert path.read_bytes() == blob, what
        assert repo.has_chunk(digest), what
        got = codec.decode_chunk(digest, repo.read_chunk(digest, "test"), len(data), "test")
        assert got == data


def test_a_whole_chunk_is_reused_at_every_level(repo: Repository) -> None:
    for level in (1, 3, 19):
        for data in (DATA, TEXT, b"x" * 100, bytes(5) + b"\x01"):
            digest = codec.chunk_hash(data + bytes([level]))
            blob = codec.compress(data + bytes([level]), level)
            assert repo.put_chunk(digest, blob)
            assert repo.has_chunk(digest), (level, len(data))
            assert not repo.put_chunk(digest, blob)


def test_a_frame_that_declares_no_size_or_another_kind_of_file_is_not_reused(
        repo: Repository) -> None:
    import zstandard
    no_size = zstandard.ZstdCompressor(write_content_size=False).compress(DATA)
    _place(repo, DIGEST, no_size)
    assert not repo.has_chunk(DIGEST)
    _place(repo, DIGEST, b"PK\x03\x04 not a zstd frame" * 100)
    assert not repo.has_chunk(DIGEST)


class _Journal:
    """Records, in order, which inodes were fsynced and which were renamed into place
    (the real calls still run)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, int]] = []
        real_fsync, real_replace = os.fsync, os.replace

        def fsync(fd: Any) -> None:
            fd = fd if isinstance(fd, int) else fd.fileno()
            info = os.fstat(fd)
            kind = "fsync-dir" if stat.S_ISDIR(info.st_mode) else "fsync"
            self.events.append((kind, info.st_ino))
            real_fsync(fd)

        def replace(src: Any, dst: Any, **kw: Any) -> None:
            self.events.append(("rename", os.stat(src).st_ino))
            real_replace(src, dst, **kw)

        monkeypatch.setattr(repository_module.os, "fsync", fsync)
        monkeypatch.setattr(repository_module.os, "replace", replace)


@pytest.fixture
def journal(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Journal]:
    yield _Journal(monkeypatch)


def test_a_chunk_is_on_the_disk_before_its_name_and_its_folder_before_the_manifest(
        repo: Repository, journal: _Journal) -> None:
    assert repo.put_chunk(DIGEST, BLOB)
    inode = repo.chunk_path(DIGEST).stat().st_ino
    assert ("rename", inode) in journal.events
    renamed = journal.events.index(("rename", inode))
    assert ("fsync", inode) in journal.events[:renamed], journal.events
    repo.sync()
    folder = repo.chunk_path(DIGEST).parent.stat().st_ino
    assert ("fsync-dir", folder) in journal.events[renamed:], journal.events


def test_an_image_folder_and_its_manifest_are_durable(
        repo: Repository, journal: _Journal) -> None:
    from rescue.image.repository import _atomic_write
    target = repo.root / "images" / "x.json"
    _atomic_write(target, b"{}", repo.root)
    inode = target.stat().st_ino
    renamed = journal.events.index(("rename", inode))
    assert ("fsync", inode) in journal.events[:renamed]
    assert ("fsync-dir", target.parent.stat().st_ino) in journal.events[renamed:]
