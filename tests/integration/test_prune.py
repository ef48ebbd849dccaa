"""rescue delete and rescue prune on real backups (issue 12, finding 6): a deleted
image's own chunks go, every chunk another image uses stays (the remaining image still
verifies and restores), leftovers of interrupted backups go, a dry run removes nothing,
an image that cannot be read stops the prune, and both wait for no backup: they take the
same writer lock."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from loopdev import loop_device, mounted
from realdisk import MiB, rescue_cli, source_digest

from rescue.demo.sample_system import build_gpt_system
from rescue.image.repository import LOCK_FILE, Repository, _boot_id

pytestmark = pytest.mark.root


@dataclass
class TwoImages:
    repo: Path
    old: str  # the first backup
    new: str  # the second, after files changed
    new_digest: dict


def _ids(repo: Path) -> list[str]:
    return [i["id"] for i in json.loads(
        rescue_cli("list", "--repo", str(repo), "--json", check=True).stdout)]


def _chunk_files(repo: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in (repo / "chunks").rglob("*.zst")}


@pytest.fixture(scope="module")
def two_images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoImages]:
    if os.geteuid() != 0:
        pytest.skip("needs root for loop devices, mkfs and mount")
    tmp = tmp_path_factory.mktemp("prune")
    repo = tmp / "repo"
    with loop_device(tmp / "src.img", 256 * MiB) as dev:
        system = build_gpt_system(dev, hostname="prune-pc", files=400, data_bytes=8 * MiB,
                                  root_size="150M")
        rescue_cli("backup", "--disk", dev, "--repo", str(repo), "--name", "old", check=True)
        with mounted(system.nodes["root"], tmp / "m") as m:
            (m / "home/user/docs/big.bin").write_bytes(os.urandom(6 * MiB))
            for victim in list((m / "usr/share/doc").rglob("file*.txt"))[:50]:
                victim.unlink()
        digest = source_digest(system.nodes["root"], tmp / "m2")
        rescue_cli("backup", "--disk", dev, "--repo", str(repo), "--name", "new", check=True)
    new, old = _ids(repo)
    yield TwoImages(repo, old, new, digest)


@pytest.fixture
def images(two_images: TwoImages, tmp_path: Path) -> TwoImages:
    """A copy of the two-image repository this test may change."""
    copy = tmp_path / "repo"
    shutil.copytree(two_images.repo, copy, symlinks=True)
    past = time.time() - 60  # files older than the prune, as they would be
    for p in copy.rglob("*"):
        os.utime(p, (past, past), follow_symlinks=False)
    return TwoImages(copy, two_images.old, two_images.new, two_images.new_digest)


def test_delete_then_prune_frees_the_old_image_s_own_chunks_only(
        images: TwoImages, blank_disk) -> None:
    repo = images.repo
    before = _chunk_files(repo)
    # leftovers of an interrupted backup: a half-written chunk and an unpublished image
    (repo / "tmp" / f"{'ab' * 32}.4242.0123abcd").write_bytes(b"half" * 1000)
    (repo / "images" / "20991231T235959Z-abcdef").mkdir()
    (repo / "chunks" / "ab" / "notes.txt").parent.mkdir(exist_ok=True)
    (repo / "chunks" / "ab" / "notes.txt").write_text("someone's file: not a chunk")

    # a prefix of the id names the image (18 characters or more: the two images may have
    # been made in the same second, so their ids can share more than the timestamp)
    prefix = next(images.old[:n] for n in range(18, len(images.old) + 1)
                  if not images.new.startswith(images.old[:n]))
    proc = rescue_cli("delete", "--repo", str(repo), "--image", prefix, "--dry-run",
                      check=True)
    assert f"Would delete image {images.old} (old," in proc.stdout, proc.stdout
    assert _ids(repo) == [images.new, images.old]

    proc = rescue_cli("delete", "--repo", str(repo), "--image", images.old, check=True)
    assert f"Deleted image {images.old}" in proc.stdout
    assert _ids(repo) == [images.new]
    assert not (repo / "images" / images.old).exists()
    index = json.loads((repo / "images/index.json").read_text())
    assert index == {"images": [images.new]}
    assert _chunk_files(repo) == before  # chunks go with a prune only

    dry = rescue_cli("prune", "--repo", str(repo), "--dry-run", "--list", check=True)
    assert "Dry run: nothing was removed." in dry.stdout
    assert _chunk_files(repo) == before
    assert (repo / "tmp" / f"{'ab' * 32}.4242.0123abcd").exists()
    would = {line.split()[2].split("/")[-1] for line in dry.stdout.splitlines()
             if line.startswith("  would remove chunks/")}
    assert would, dry.stdout

    proc = rescue_cli("prune", "--repo", str(repo), check=True)
    after = _chunk_files(repo)
    gone = set(before) - set(after)
    assert gone == would
    freed = sum(before[name] for name in gone)
    assert f"{len(gone)} unused chunk file(s)" in proc.stdout
    assert "removed tmp/" in proc.stdout and "removed images/20991231T235959Z-abcdef" \
        in proc.stdout
    assert not list((repo / "tmp").iterdir())
    assert not (repo / "images" / "20991231T235959Z-abcdef").exists()
    assert (repo / "chunks" / "ab" / "notes.txt").exists()
    assert freed > 0
    # everything the remaining image needs is there: verified and restored
    rescue_cli("verify", "--repo", str(repo), "--image", images.new, check=True)
    target = blank_disk(256 * MiB)
    rescue_cli("restore", "--repo", str(repo), "--image", images.new, "--disk", target,
               "--yes", "--firmware", "uefi", check=True)
    assert source_digest(f"{target}p2", repo.parent / "restored") == images.new_digest
    # a second prune finds nothing more
    again = rescue_cli("prune", "--repo", str(repo), check=True)
    assert "Freed 0 B: 0 unused chunk file(s)" in again.stdout, again.stdout


def test_prune_keeps_every_chunk_while_both_images_exist(images: TwoImages) -> None:
    before = _chunk_files(images.repo)
    proc = rescue_cli("prune", "--repo", str(images.repo), check=True)
    assert "0 unused chunk file(s)" in proc.stdout, proc.stdout
    assert _chunk_files(images.repo) == before


def test_an_unreadable_image_stops_the_prune_before_anything_is_removed(
        images: TwoImages) -> None:
    rescue_cli("delete", "--repo", str(images.repo), "--image", images.old, check=True)
    manifest = images.repo / "images" / images.new / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b'"new"', b'"NEW"'))  # hash breaks
    before = _chunk_files(images.repo)
    proc = rescue_cli("prune", "--repo", str(images.repo))
    assert proc.returncode != 0
    assert "Prune removes nothing" in proc.stderr and images.new in proc.stderr
    assert _chunk_files(images.repo) == before


def test_a_chunk_written_after_the_prune_began_is_kept(images: TwoImages) -> None:
    """The lock keeps backups out; a file that appears anyway (written by hand, by a
    writer that ignored the lock) while the prune runs is kept."""
    from rescue import services
    old_stray = images.repo / "chunks" / "00" / f"{'0' * 64}.zst"
    old_stray.parent.mkdir(exist_ok=True)
    old_stray.write_bytes(b"old")
    os.utime(old_stray, (time.time() - 60, time.time() - 60))
    stray = images.repo / "chunks" / "ff" / f"{'f' * 64}.zst"

    def appears(path: str, size: int) -> None:  # while the prune walks chunks/00
        if not stray.exists():
            stray.parent.mkdir(exist_ok=True)
            stray.write_bytes(b"new")

    result = services.prune(images.repo, on_remove=appears)
    assert stray.exists() and not old_stray.exists()
    assert result.chunks_removed == 1


def test_delete_and_prune_wait_for_no_backup(images: TwoImages) -> None:
    holder = subprocess.Popen(["sleep", "60"])
    try:
        (images.repo / LOCK_FILE).write_text(json.dumps({
            "host": os.uname().nodename, "pid": holder.pid, "boot_id": _boot_id(),
            "machine_id": "", "started": "2026-12-03T12:00:00+00:00", "token": "x" * 32}))
        for argv in (["delete", "--image", images.old], ["prune"]):
            proc = rescue_cli(*argv, "--repo", str(images.repo))
            assert proc.returncode == 10, proc.stdout + proc.stderr
            assert f"process {holder.pid}" in proc.stderr and "--break-lock" in proc.stderr
        assert _ids(images.repo) == [images.new, images.old]
    finally:
        holder.kill()
        holder.wait()
    # the backup's process is gone: its lock is stale and taken over without asking
    rescue_cli("delete", "--repo", str(images.repo), "--image", images.old, check=True)
    assert not (images.repo / LOCK_FILE).exists()


def test_delete_and_prune_create_no_repository(tmp_path: Path) -> None:
    for argv in (["delete", "--image", "2026"], ["prune"]):
        proc = rescue_cli(*argv, "--repo", str(tmp_path / "none"))
        assert proc.returncode == 10 and "not a rescue repository" in proc.stderr
    assert not (tmp_path / "none").exists()
    Repository.create(tmp_path / "empty")
    proc = rescue_cli("delete", "--repo", str(tmp_path / "empty"), "--image", "latest")
    assert proc.returncode == 2 and "not as 'latest'" in proc.stderr
