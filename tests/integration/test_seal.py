"""The presence seal (issue 11: time to the first write). A restore must know every chunk
of the image is there before it writes, without looking up millions of chunks one by one:
the writer that made the image seals the repository (seal.json: the images complete and
each chunk folder's modification time), and while no folder changed a restore trusts it
and looks up a random sample only. Anything that adds or takes away a chunk file behind
rescue's back changes a folder's time, and the restore looks every chunk up again; a
copy that kept the times but not all the chunks is caught by the sample.

Real backups of a real disk (loop device, ext4 made by mkfs) through the CLI."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from httpserve import serve
from loopdev import loop_device, mounted
from realdisk import MiB, rescue_cli

from rescue.demo.sample_system import build_gpt_system
from rescue.engine.restore import SEAL_SAMPLE, check_chunks_present
from rescue.errors import ImageCorruptError
from rescue.events import LogMessage
from rescue.image.http_repository import HttpRepository
from rescue.image.repository import Repository
from rescue.image.seal import OPEN, SEAL_FILE, SEALED, parse_seal

pytestmark = pytest.mark.root


@dataclass
class Sealed:
    repo: Path
    old: str
    new: str


def _ids(repo: Path) -> list[str]:
    return [i["id"] for i in json.loads(
        rescue_cli("list", "--repo", str(repo), "--json", check=True).stdout)]


def _seal(repo: Path) -> dict:
    return json.loads((repo / SEAL_FILE).read_text())


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sealed]:
    if os.geteuid() != 0:
        pytest.skip("needs root for loop devices, mkfs and mount")
    tmp = tmp_path_factory.mktemp("seal")
    repo = tmp / "repo"
    with loop_device(tmp / "src.img", 192 * MiB) as dev:
        system = build_gpt_system(dev, hostname="seal-pc", files=200, data_bytes=4 * MiB,
                                  root_size="120M")
        rescue_cli("backup", "--disk", dev, "--repo", str(repo), "--name", "old", check=True)
        with mounted(system.nodes["root"], tmp / "m") as m:
            (m / "home/user/new.bin").write_bytes(os.urandom(3 * MiB))
        rescue_cli("backup", "--disk", dev, "--repo", str(repo), "--name", "new", check=True)
    new, old = _ids(repo)
    yield Sealed(repo, old, new)


@pytest.fixture
def copy(sealed: Sealed, tmp_path: Path) -> Path:
    """A copy that keeps every time, as `cp -a` or a finished `rsync -a` does."""
    target = tmp_path / "copy"
    shutil.copytree(sealed.repo, target, symlinks=True)
    return target


def _check(repo: Repository, image: str) -> list[str]:
    said: list[str] = []

    def sink(event: object) -> None:
        if isinstance(event, LogMessage):
            said.append(event.text)

    check_chunks_present(repo, repo.load_manifest(image), sink=sink)
    return said


def test_every_backup_seals_its_image_and_carries_the_earlier_ones(sealed: Sealed) -> None:
    seal = _seal(sealed.repo)
    assert seal["state"] == SEALED
    assert set(seal["images"]) == {sealed.old, sealed.new}
    assert len(seal["folders"]) == 256
    repo = Repository.open(sealed.repo)
    assert repo.sealed_images() == {sealed.old, sealed.new}
    for image in (sealed.old, sealed.new):
        said = _check(repo, image)
        assert any("seal" in s and str(SEAL_SAMPLE) in s for s in said), said


def test_a_copy_that_kept_its_times_stays_sealed(copy: Path, sealed: Sealed) -> None:
    assert Repository.open(copy).sealed_images() == {sealed.old, sealed.new}


def test_a_chunk_taken_away_behind_rescues_back_breaks_the_seal(copy: Path, sealed: Sealed
                                                                ) -> None:
    repo = Repository.open(copy)
    victim = _a_chunk_of(repo, sealed.new)
    victim.unlink()
    assert repo.sealed_images() == frozenset()  # its folder's time changed
    with pytest.raises(ImageCorruptError, match=r"1 chunk\(s\) are missing") as refused:
        _check(repo, sealed.new)
    assert victim.name[:16] in str(refused.value)


def test_a_chunk_added_behind_rescues_back_breaks_the_seal_too(copy: Path, sealed: Sealed
                                                               ) -> None:
    repo = Repository.open(copy)
    folder = next(p for p in (copy / "chunks").iterdir() if p.is_dir())
    (folder / ("0" * 64 + ".zst")).write_bytes(b"x")
    assert repo.sealed_images() == frozenset()
    said = _check(repo, sealed.new)  # every chunk looked up, all there
    assert not any("seal" in s for s in said)


def test_a_copy_with_the_times_but_not_the_chunks_is_caught_by_the_sample(
        copy: Path, sealed: Sealed) -> None:
    """The seal and the folders' times copied, most chunk files not (times forged back):
    the seal vouches, the sample finds the holes, nothing would be written."""
    repo = Repository.open(copy)
    keep = {p.blake3 for p in repo.load_manifest(sealed.new).index_parts()}
    stamps = {p: p.stat().st_mtime_ns for p in (copy / "chunks").iterdir()}
    for path in (copy / "chunks").rglob("*.zst"):
        if path.name[:-4] not in keep:
            path.unlink()
    for p, ns in stamps.items():
        os.utime(p, ns=(ns, ns))
    assert repo.sealed_images() == {sealed.old, sealed.new}
    with pytest.raises(ImageCorruptError, match="seal says the image is complete"):
        _check(repo, sealed.new)


def test_over_a_web_server_the_seal_is_taken_at_its_word_and_sampled(
        copy: Path, sealed: Sealed) -> None:
    with serve(copy) as (url, _log):
        remote = HttpRepository.open(url)
        assert remote.sealed_images() == {sealed.old, sealed.new}
        said = _check(remote, sealed.new)
        assert any("seal" in s for s in said), said
        keep = {p.blake3 for p in remote.load_manifest(sealed.new).index_parts()}
        for path in (copy / "chunks").rglob("*.zst"):
            if path.name[:-4] not in keep:
                path.unlink()
        with pytest.raises(ImageCorruptError, match="seal says the image is complete"):
            _check(remote, sealed.new)


def test_an_interrupted_backup_leaves_the_seal_open_and_the_next_carries_it(
        copy: Path, sealed: Sealed, tmp_path: Path) -> None:
    repo = Repository.open(copy)
    repo.start_image()  # a backup that wrote one chunk, then the stick was pulled
    from rescue.image import chunks as codec
    raw = os.urandom(4096)
    repo.put_chunk(codec.chunk_hash(raw), codec.compress(raw))
    seal = parse_seal((copy / SEAL_FILE).read_bytes())
    assert seal is not None and seal.state == OPEN
    assert seal.images == {sealed.old, sealed.new}
    assert Repository.open(copy).sealed_images() == frozenset()  # readers look up all
    with loop_device(tmp_path / "src.img", 160 * MiB) as dev:
        build_gpt_system(dev, hostname="other", files=20, data_bytes=MiB, root_size="40M")
        rescue_cli("backup", "--disk", dev, "--repo", str(copy), check=True)
    newest = _ids(copy)[0]
    assert Repository.open(copy).sealed_images() == {sealed.old, sealed.new, newest}


def test_a_copy_that_lost_its_times_is_sealed_again_by_prune(sealed: Sealed,
                                                             tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    shutil.copytree(sealed.repo, plain, copy_function=shutil.copyfile)
    for folder in (plain / "chunks").iterdir():  # `cp -r`: every folder's time is new
        os.utime(folder)
    repo = Repository.open(plain)
    assert repo.sealed_images() == frozenset()
    proc = rescue_cli("prune", "--repo", str(plain))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Sealed: 2 complete image(s)" in proc.stdout
    assert repo.sealed_images() == {sealed.old, sealed.new}


def test_prune_names_the_images_that_lost_chunks_and_leaves_them_unsealed(
        copy: Path, sealed: Sealed) -> None:
    repo = Repository.open(copy)
    old_only = _a_chunk_of(repo, sealed.old, not_in=sealed.new)
    old_only.unlink()
    proc = rescue_cli("prune", "--repo", str(copy))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 chunk file(s) that images refer to are missing" in proc.stdout
    assert sealed.old in proc.stdout and "cannot be restored" in proc.stdout
    assert repo.sealed_images() == {sealed.new}
    _check(repo, sealed.new)  # the complete one still restores, on the seal's word
    with pytest.raises(ImageCorruptError):
        _check(repo, sealed.old)


def test_a_forged_or_linked_seal_vouches_for_nothing(copy: Path, sealed: Sealed,
                                                     tmp_path: Path) -> None:
    repo = Repository.open(copy)
    body = _seal(copy)
    for bad in ({**body, "format": 2}, {**body, "images": ["../../etc"]},
                {**body, "folders": {"00": 1}}, {**body, "state": "closed"}, [body]):
        (copy / SEAL_FILE).write_text(json.dumps(bad))
        assert repo.sealed_images() == frozenset(), bad
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(body))
    (copy / SEAL_FILE).unlink()
    (copy / SEAL_FILE).symlink_to(outside)
    assert repo.sealed_images() == frozenset()  # never followed


def _a_chunk_of(repo: Repository, image: str, not_in: str | None = None) -> Path:
    """A stored chunk of *image* (and not of *not_in*), as a file of the repository."""
    from rescue.engine.restore import part_fetcher

    def digests(image_id: str) -> set[str]:
        m = repo.load_manifest(image_id)
        fetch = part_fetcher(repo, m)
        return {e.digest for _place, data in m.ranges() for e in data.entries(fetch)
                if e.digest is not None}

    mine = digests(image)
    if not_in is not None:
        mine -= digests(not_in)
    return repo.chunk_path(sorted(mine)[0])
