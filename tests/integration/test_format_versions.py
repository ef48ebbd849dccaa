"""Image format 2 on real disks: a backup writes a small header and its chunk index in
parts (kept in the repository like chunks); an unchanged disk backed up again reuses
every part; and an image in format 1 (every chunk listed in the manifest) is still
listed, verified and restored byte for byte."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from realdisk import SRC_SIZE, BackedUp, rescue_cli, source_digest

from rescue.image.manifest import ChunkedData, Manifest
from rescue.image.repository import Repository

pytestmark = pytest.mark.root


def test_a_backup_writes_a_small_header_and_its_index_in_parts(gpt_backup: BackedUp) -> None:
    repo = Repository.open(gpt_backup.repo)
    raw = repo.manifest_bytes(gpt_backup.image_id)
    body = json.loads(raw)
    assert body["format_version"] == 2
    manifest = repo.load_manifest(gpt_backup.image_id)
    ranges = list(manifest.ranges())
    assert ranges and all(data.parts and not data.chunks and not data.zero
                          for _place, data in ranges)
    assert all("index" in p["data"] and "chunks" not in p["data"]
               for p in body["disks"][0]["partitions"] if p["data"])
    for part in manifest.index_parts():
        assert repo.chunk_path(part.blake3).is_file()
        assert len(repo.read_part(part, "test")) == part.size
    # the header does not grow with the data: a few KiB for the whole disk
    assert len(raw) < 32 * 1024
    assert manifest.stored_chunks > 50


def test_an_unchanged_disk_backed_up_again_reuses_every_index_part(
        gpt_backup: BackedUp, tmp_path: Path) -> None:
    repo_path = tmp_path / "repo"
    shutil.copytree(gpt_backup.repo, repo_path)
    before = {p.name for p in (repo_path / "chunks").rglob("*.zst")}
    rescue_cli("backup", "--disk", gpt_backup.system.dev, "--repo", str(repo_path),
               "--name", "again", check=True)
    repo = Repository.open(repo_path)
    again = repo.load_manifest("latest")
    first = repo.load_manifest(gpt_backup.image_id)
    assert again.id != first.id
    assert [p.blake3 for p in again.index_parts()] == [p.blake3 for p in first.index_parts()]
    assert {p.name for p in (repo_path / "chunks").rglob("*.zst")} == before
    assert again.stats["new_stored_bytes"] == 0


def _as_format_1(manifest: Manifest, repo: Repository) -> Manifest:
    """The same image as format 1 wrote it: every chunk and zero run in the manifest."""
    for _place, data in manifest.ranges():
        entries = list(data.entries(lambda part: repo.read_part(part, "test")))
        data.chunks = [(e.index, e.digest) for e in entries if e.digest is not None]
        data.zero = [(e.index, e.count) for e in entries if e.digest is None]
        data.parts = []
    manifest.format_version = 1
    return manifest


def test_a_format_1_image_is_still_listed_verified_and_restored(
        gpt_backup: BackedUp, blank_disk, tmp_path: Path) -> None:
    repo_path = tmp_path / "repo"
    shutil.copytree(gpt_backup.repo, repo_path)
    repo = Repository.open(repo_path)
    old = _as_format_1(repo.load_manifest(gpt_backup.image_id), repo)
    raw = old.to_json()
    body = json.loads(raw)
    assert body["format_version"] == 1
    assert all("index" not in p["data"] and p["data"]["chunks"]
               for p in body["disks"][0]["partitions"] if p["data"] and p["data"]["chunks"])
    (repo_path / "images" / old.id / "manifest.json").write_bytes(raw)
    assert isinstance(Repository.open(repo_path).load_manifest(old.id).disks[0]
                      .partitions[1].data, ChunkedData)

    listed = json.loads(rescue_cli("list", "--repo", str(repo_path), "--json",
                                   check=True).stdout)
    assert [i["id"] for i in listed] == [old.id]
    assert listed[0]["data_bytes"] == old.data_bytes
    verify = rescue_cli("verify", "--repo", str(repo_path), "--image", old.id, check=True)
    assert f"{old.stored_chunks} chunks" in verify.stdout
    target = blank_disk(SRC_SIZE)
    rescue_cli("restore", "--repo", str(repo_path), "--image", old.id, "--disk", target,
               "--yes", "--firmware", "uefi", check=True)
    assert source_digest(f"{target}p2", tmp_path / "restored") == gpt_backup.digest
