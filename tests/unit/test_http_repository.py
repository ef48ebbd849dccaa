"""Repositories read over HTTP from a real (standard library) web server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from httpserve import serve

from rescue.engine.restore import check_chunks_present, verify_image
from rescue.errors import ImageCorruptError, RepositoryError, UsageError
from rescue.image import chunks as codec
from rescue.image import http_repository
from rescue.image.http_repository import HttpRepository
from rescue.image.manifest import ChunkedData, Disk, Manifest, Partition
from rescue.image.repository import INDEX_FILE, Repository
from rescue.repo import open_repository

CHUNK = 1024 * 1024


def make_repo(root: Path, images: int = 2) -> tuple[Repository, list[Manifest]]:
    repo = Repository.create(root)
    made = []
    for n in range(images):
        blocks = [os.urandom(CHUNK), bytes(CHUNK), os.urandom(CHUNK // 2)]
        chunks = []
        for index, block in enumerate(blocks):
            if codec.is_zero(block):
                continue
            digest = codec.chunk_hash(block)
            repo.put_chunk(digest, codec.compress(block))
            chunks.append((index, digest))
        data = ChunkedData(length=sum(map(len, blocks)), chunk_size=CHUNK, chunks=chunks,
                           zero=[(1, 1)])
        part = Partition(number=1, start=2048, size=8192,
                         type="0FC63DAF-8483-4772-8E79-3D69D8E47DE4", uuid="", filesystem="ext4",
                         fs_uuid="u", fs_label="root", method="used-blocks",
                         used_bytes=data.length, data=data)
        disk = Disk(size_bytes=64 * CHUNK, logical_sector_size=512, physical_sector_size=512,
                    table="gpt", id="G", first_lba=34, last_lba=131038, partitions=[part])
        m = Manifest(id=f"2026010{n + 1}T000000Z-abcde{n}", name=f"image {n}",
                     created_utc=f"2026-01-0{n + 1}T00:00:00Z",
                     created_local=f"2026-01-0{n + 1}T01:00:00+01:00", timezone="Europe/Berlin",
                     computer="pc", os_name="Debian", os_id="debian", os_version="12",
                     firmware="uefi", hardware={}, chunk_size=CHUNK, compression="zstd",
                     disks=[disk])
        repo.write_manifest(m)
        made.append(m)
    return repo, made


@pytest.fixture
def local(tmp_path: Path) -> tuple[Repository, list[Manifest]]:
    return make_repo(tmp_path / "repo")


def test_lists_reads_and_verifies_like_the_folder(local) -> None:
    repo, made = local
    assert json.loads((repo.root / INDEX_FILE).read_text())["images"] == sorted(
        m.id for m in made)
    # a query is not part of the folder
    with serve(repo.root) as (url, requests), open_repository(url + "?") as remote:
        assert isinstance(remote, HttpRepository)
        assert remote.list_images() == repo.list_images()
        assert remote.resolve("latest") == made[-1].id
        assert remote.load_manifest(made[0].id[:10]) == made[0]
        digest = made[0].disks[0].partitions[0].data.chunks[0][1]
        assert remote.read_chunk(digest, "t") == repo.read_chunk(digest, "t")
        assert remote.chunk_size_on_disk(digest) == repo.chunk_size_on_disk(digest)
        check_chunks_present(remote, made[1])
        assert verify_image(remote, made[1]) == CHUNK + CHUNK // 2
    assert any(r.startswith("HEAD /chunks/") for r in requests)


def test_without_index_the_servers_listing_is_used(local) -> None:
    repo, made = local
    (repo.root / INDEX_FILE).unlink()
    with serve(repo.root) as (url, _):
        assert [s.id for s in HttpRepository.open(url).list_images()] == [
            m.id for m in reversed(made)]
    # a static host that lists nothing and a repository without index: no images, said so
    with serve(repo.root, listing=False) as (url, _), pytest.raises(
            RepositoryError, match="holds no images"):
        HttpRepository.open(url).resolve("latest")


def test_index_is_enough_on_a_host_without_listings(local) -> None:
    repo, made = local
    with serve(repo.root, listing=False) as (url, _):
        assert HttpRepository.open(url).image_ids() == sorted((m.id for m in made),
                                                              reverse=True)


def test_a_missing_chunk_is_found_before_restoring(local) -> None:
    repo, made = local
    digest = made[1].disks[0].partitions[0].data.chunks[-1][1]
    repo.chunk_path(digest).unlink()
    with serve(repo.root) as (url, _):
        remote = HttpRepository.open(url)
        with pytest.raises(ImageCorruptError, match="1 chunk\\(s\\) are missing"):
            check_chunks_present(remote, made[1])
        with pytest.raises(ImageCorruptError, match="missing from the repository http://"):
            remote.read_chunk(digest, "partition 1")


def test_a_damaged_chunk_fails_its_hash(local) -> None:
    repo, made = local
    digest = made[0].disks[0].partitions[0].data.chunks[0][1]
    repo.chunk_path(digest).write_bytes(codec.compress(os.urandom(CHUNK)))
    with serve(repo.root) as (url, _), pytest.raises(ImageCorruptError):
        verify_image(HttpRepository.open(url), made[0])


def test_not_a_repository(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<html>a NAS start page</html>")
    with serve(tmp_path) as (url, _), pytest.raises(
            RepositoryError, match="not a rescue repository"), open_repository(url):
        pass


def test_login_in_the_url_and_never_in_messages(local) -> None:
    repo, made = local
    with serve(repo.root, user="tech", password="s3cret:!") as (url, _):
        with pytest.raises(RepositoryError, match="refused access .*HTTP 401"), \
                open_repository(url):
            pass
        authed = url.replace("http://", "http://tech:s3cret%3A%21@")
        with open_repository(authed) as remote:
            assert remote.resolve("latest") == made[-1].id
            assert "s3cret" not in remote.location and "tech" not in remote.location
            with pytest.raises(RepositoryError) as refused:
                remote.resolve("nothing-like-this")
        assert "s3cret" not in str(refused.value)


def test_busy_server_is_retried(local, monkeypatch) -> None:
    repo, made = local
    monkeypatch.setattr(http_repository, "BACKOFF", 0.01)
    with serve(repo.root, unavailable=http_repository.ATTEMPTS - 1) as (url, requests), \
            open_repository(url) as remote:
        assert remote.resolve("latest") == made[-1].id
    assert len([r for r in requests if "rescue-repository.json" in r]) == \
        http_repository.ATTEMPTS
    with serve(repo.root, unavailable=http_repository.ATTEMPTS) as (url, _), pytest.raises(
            RepositoryError, match="did not answer .*HTTP 503"), open_repository(url):
        pass


def test_server_gone_gives_a_sentence(local, monkeypatch) -> None:
    repo, _ = local
    monkeypatch.setattr(http_repository, "BACKOFF", 0.01)
    with serve(repo.root) as (url, _), open_repository(url):
        pass
    # the server has stopped: nothing listens on its port any more
    with pytest.raises(RepositoryError, match="did not answer.*check the network cable"):
        HttpRepository(url).image_ids()


def test_url_is_never_a_backup_destination(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="read-only"), \
            open_repository("http://server/backups/", write=True):
        pass
    assert not Repository.is_repository("http://server/backups/")


def test_listing_parser_takes_only_image_ids(tmp_path: Path) -> None:
    repo, made = make_repo(tmp_path / "repo", images=1)
    (repo.root / INDEX_FILE).unlink()
    (repo.root / "images" / "notes").mkdir()
    shutil.copytree(repo.root / "images" / made[0].id,
                    repo.root / "images" / "20260101T000000Z-zzzzzz")  # not an id
    with serve(repo.root) as (url, _):
        assert HttpRepository.open(url).image_ids() == [made[0].id]


def test_presence_is_one_listing_per_chunk_folder_not_a_head_per_chunk(local) -> None:
    repo, made = local
    with serve(repo.root) as (url, requests):
        check_chunks_present(HttpRepository.open(url), made[1])
    assert not any(r.startswith("HEAD /chunks/") for r in requests)
    assert any(r.startswith("GET /chunks/") and r.rstrip().endswith("/") for r in requests)


def test_a_server_without_listings_is_asked_per_chunk_only_for_small_images(
        local, monkeypatch: pytest.MonkeyPatch) -> None:
    from rescue.engine import restore
    from rescue.events import LogMessage

    repo, made = local
    digest = next(h for _i, h in made[1].disks[0].partitions[0].data.chunks)
    repo.chunk_path(digest).unlink()
    with serve(repo.root, listing=False) as (url, requests):
        remote = HttpRepository.open(url)
        assert remote.chunk_inventory() is None
        with pytest.raises(ImageCorruptError, match="1 chunk\\(s\\) are missing"):
            check_chunks_present(remote, made[1])
        assert any(r.startswith("HEAD /chunks/") for r in requests)
        # above the limit: no HEAD per chunk; said so, and the read itself stops later
        monkeypatch.setattr(restore, "ASK_EACH_LIMIT", 1)
        said: list[object] = []
        check_chunks_present(remote, made[1], sink=said.append)
        assert any(isinstance(e, LogMessage) and "does not list its folders" in e.text
                   for e in said)
        with pytest.raises(ImageCorruptError, match="missing from the repository"):
            remote.read_chunk(digest, "partition 1")
