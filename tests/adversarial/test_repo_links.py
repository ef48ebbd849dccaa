"""A repository lives on a stick or a share someone else prepared. rescue follows no
link inside it and reads only regular files: a linked tmp/ does not make a backup delete
another folder, a linked chunk folder does not make it write elsewhere, a FIFO chunk does
not hang a verify, a chunk linked to /dev/zero does not eat the memory, a manifest
linked to a file of this system is not read."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from rescue.errors import ImageCorruptError, RepositoryError
from rescue.image import chunks as codec
from rescue.image.repository import Repository

DATA = b"chunk data " * 1000
DIGEST = codec.chunk_hash(DATA)


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.create(tmp_path / "repo")


@pytest.fixture(autouse=True)
def hang_guard() -> Iterator[None]:
    def hung(signum: int, frame: object) -> None:
        raise TimeoutError("blocked: a special file was opened as a chunk")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_a_linked_tmp_folder_is_not_emptied(repo: Repository, tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.odt").write_text("years of work")
    (precious / "a1b2.123.deadbeef").write_text("looks like a temporary file")
    (repo.root / "tmp").rmdir()
    (repo.root / "tmp").symlink_to(precious)
    repo.clean_tmp()
    assert sorted(p.name for p in precious.iterdir()) == ["a1b2.123.deadbeef", "thesis.odt"]
    with pytest.raises(RepositoryError, match="link"):
        Repository.create(repo.root)  # opened for writing: refused


def test_only_the_writers_own_temporary_files_are_removed(repo: Repository) -> None:
    tmp = repo.root / "tmp"
    (tmp / f"{DIGEST}.4242.0123abcd").write_bytes(b"half a chunk")
    (tmp / "notes.txt").write_text("someone's file")
    os.mkfifo(tmp / "manifest.json.77.89abcdef")
    repo.clean_tmp()
    assert sorted(p.name for p in tmp.iterdir()) == ["manifest.json.77.89abcdef",
                                                     "notes.txt"]


def test_a_linked_chunk_folder_is_not_written_through(repo: Repository,
                                                      tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (repo.root / "chunks" / DIGEST[:2]).symlink_to(elsewhere)
    with pytest.raises(RepositoryError, match="link"):
        repo.put_chunk(DIGEST, codec.compress(DATA))
    assert list(elsewhere.iterdir()) == []


def _place(repo: Repository, make: str) -> None:
    path = repo.chunk_path(DIGEST)
    path.parent.mkdir(exist_ok=True)
    if make == "fifo":
        os.mkfifo(path)
    elif make == "dev-zero":
        path.symlink_to("/dev/zero")
    elif make == "link-to-file":
        real = repo.root.parent / "real.zst"
        real.write_bytes(codec.compress(DATA))
        path.symlink_to(real)


@pytest.mark.parametrize("make", ["fifo", "dev-zero", "link-to-file"])
def test_a_chunk_that_is_no_regular_file_is_refused(repo: Repository, make: str) -> None:
    _place(repo, make)
    with pytest.raises(ImageCorruptError, match="link, a special file"):
        repo.read_chunk(DIGEST, "partition 2, offset 0")
    assert not repo.has_chunk(DIGEST)  # a backup stores the real chunk instead


def test_a_manifest_linked_to_a_system_file_is_not_read(repo: Repository,
                                                        tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret")
    folder = repo.root / "images" / "20260101T000000Z-abcdef"
    folder.mkdir()
    (folder / "manifest.json").symlink_to(secret)
    assert repo.image_ids() == []
    with pytest.raises(ImageCorruptError, match="link"):
        repo.manifest_bytes("20260101T000000Z-abcdef")
    os.unlink(folder / "manifest.json")
    folder.rmdir()
    folder.symlink_to(tmp_path)  # a linked image folder
    assert repo.image_ids() == []
