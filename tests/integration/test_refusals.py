"""Bad input gets a clear error and loses nothing: each check that can refuse a
restore runs before the first byte is written to the target."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from loopdev import loop_device, mounted
from realdisk import SRC_SIZE, BackedUp, MiB, file_is_zero, rescue_cli

from rescue import services
from rescue.engine.blockio import BlockTarget
from rescue.engine.restore import Restorer
from rescue.errors import DeviceError, ImageCorruptError
from rescue.image.manifest import Manifest
from rescue.image.repository import Repository
from rescue.runner import CommandRunner

pytestmark = pytest.mark.root


def _copy_repo(backed: BackedUp, tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(backed.repo, repo)
    return repo


def _manifest_path(repo: Path, image_id: str) -> Path:
    return repo / "images" / image_id / "manifest.json"


def _first_chunk(repo: Path, image_id: str, partition: int) -> tuple[str, int, int]:
    """(digest, offset in the partition, length) of a partition's first stored chunk."""
    opened = Repository.open(repo)
    m = opened.load_manifest(image_id)
    data = m.disks[0].partition(partition).data
    assert data is not None
    first = next(e for e in data.entries(lambda part: opened.read_part(part, "test"))
                 if e.digest is not None)
    assert first.digest is not None
    offset, length = data.chunk_span(first.index)
    return first.digest, offset, length


def _target_file(target: str) -> Path:
    out = subprocess.run(["losetup", "-n", "-O", "BACK-FILE", target], capture_output=True,
                         text=True, check=True)
    return Path(out.stdout.strip())


def _restore(repo: Path, image: str, target: str, *extra: str) -> subprocess.CompletedProcess:
    return rescue_cli("restore", "--repo", str(repo), "--image", image, "--disk", target,
                      "--yes", *extra)


def test_flipped_byte_in_chunk_stops_before_that_chunk_is_written(
        gpt_backup: BackedUp, blank_disk, tmp_path: Path) -> None:
    repo = _copy_repo(gpt_backup, tmp_path)
    digest, offset, length = _first_chunk(repo, gpt_backup.image_id, 2)
    path = Repository(repo).chunk_path(digest)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x40
    path.write_bytes(bytes(blob))
    target = blank_disk(SRC_SIZE)
    proc = _restore(repo, gpt_backup.image_id, target)
    assert proc.returncode == ImageCorruptError.exit_code
    assert "partition 2" in proc.stderr and f"offset {offset}" in proc.stderr
    assert digest[:16] in proc.stderr
    # that chunk's bytes never reached the target
    part_start = 2048 * 512 + 64 * MiB
    with open(_target_file(target), "rb") as f:
        f.seek(part_start + offset)
        assert f.read(length) == bytes(length)


def test_verify_first_refuses_a_damaged_image_before_any_write(
        gpt_backup: BackedUp, blank_disk, tmp_path: Path) -> None:
    repo = _copy_repo(gpt_backup, tmp_path)
    digest, _, _ = _first_chunk(repo, gpt_backup.image_id, 2)
    path = Repository(repo).chunk_path(digest)
    blob = bytearray(path.read_bytes())
    blob[-20] ^= 0x01
    path.write_bytes(bytes(blob))
    target = blank_disk(SRC_SIZE)
    proc = _restore(repo, gpt_backup.image_id, target, "--verify-first")
    assert proc.returncode == ImageCorruptError.exit_code, proc.stderr
    assert file_is_zero(_target_file(target))
    verify = rescue_cli("verify", "--repo", str(repo), "--image", gpt_backup.image_id)
    assert verify.returncode == ImageCorruptError.exit_code
    assert "damaged" in verify.stderr


def test_missing_chunk_refused_before_any_write(gpt_backup: BackedUp, blank_disk,
                                                tmp_path: Path) -> None:
    repo = _copy_repo(gpt_backup, tmp_path)
    digest, _, _ = _first_chunk(repo, gpt_backup.image_id, 1)
    Repository(repo).chunk_path(digest).unlink()
    target = blank_disk(SRC_SIZE)
    proc = _restore(repo, gpt_backup.image_id, target)
    assert proc.returncode == ImageCorruptError.exit_code
    assert "missing" in proc.stderr
    assert file_is_zero(_target_file(target))


def test_truncated_manifest_refused(gpt_backup: BackedUp, blank_disk, tmp_path: Path) -> None:
    repo = _copy_repo(gpt_backup, tmp_path)
    mpath = _manifest_path(repo, gpt_backup.image_id)
    mpath.write_bytes(mpath.read_bytes()[: mpath.stat().st_size // 2])
    target = blank_disk(SRC_SIZE)
    proc = _restore(repo, gpt_backup.image_id, target)
    assert proc.returncode == ImageCorruptError.exit_code
    assert "truncated" in proc.stderr
    assert file_is_zero(_target_file(target))


def test_edited_manifest_refused(gpt_backup: BackedUp, blank_disk, tmp_path: Path) -> None:
    repo = _copy_repo(gpt_backup, tmp_path)
    mpath = _manifest_path(repo, gpt_backup.image_id)
    body = json.loads(mpath.read_bytes())
    body["computer"] = "someone-else"
    mpath.write_text(json.dumps(body))
    target = blank_disk(SRC_SIZE)
    proc = _restore(repo, gpt_backup.image_id, target)
    assert proc.returncode == ImageCorruptError.exit_code
    assert "checksum" in proc.stderr
    assert file_is_zero(_target_file(target))


def test_newer_format_version_refused(gpt_backup: BackedUp, blank_disk,
                                      tmp_path: Path) -> None:
    repo = _copy_repo(gpt_backup, tmp_path)
    mpath = _manifest_path(repo, gpt_backup.image_id)
    body = json.loads(mpath.read_bytes())
    body["format_version"] = 99
    mpath.write_text(json.dumps(body))
    target = blank_disk(SRC_SIZE)
    proc = _restore(repo, gpt_backup.image_id, target)
    assert proc.returncode == 13
    assert "version 99" in proc.stderr and "newer rescue" in proc.stderr
    assert file_is_zero(_target_file(target))


def test_target_too_small_refused_with_numbers(gpt_backup: BackedUp, blank_disk) -> None:
    target = blank_disk(96 * MiB)  # smaller than even the shrunk layout
    proc = _restore(gpt_backup.repo, gpt_backup.image_id, target)
    assert proc.returncode == 22
    assert "96.0 MiB" in proc.stderr and str(96 * MiB) in proc.stderr
    assert "need" in proc.stderr
    assert file_is_zero(_target_file(target))


def test_mounted_target_refused(gpt_backup: BackedUp, tmp_path: Path) -> None:
    with loop_device(tmp_path / "t.img", SRC_SIZE) as target:
        subprocess.run(["mkfs.ext4", "-q", "-L", "busy", target], check=True)
        (tmp_path / "m").mkdir()
        before = (tmp_path / "t.img").read_bytes()
        with mounted(target, tmp_path / "m", "ro"):
            proc = _restore(gpt_backup.repo, gpt_backup.image_id, target)
        assert proc.returncode == 21
        assert "mounted" in proc.stderr
        assert (tmp_path / "t.img").read_bytes() == before


def test_target_holding_the_repository_refused(gpt_backup: BackedUp, tmp_path: Path) -> None:
    with loop_device(tmp_path / "t.img", SRC_SIZE) as target:
        subprocess.run(["mkfs.ext4", "-q", target], check=True)
        mnt = tmp_path / "m"
        with mounted(target, mnt):
            shutil.copytree(gpt_backup.repo, mnt / "repo")
            proc = _restore(mnt / "repo", gpt_backup.image_id, target)
        assert proc.returncode == 21
        assert "repository" in proc.stderr


def test_read_write_mounted_source_refused(tmp_path: Path) -> None:
    with loop_device(tmp_path / "s.img", 64 * MiB) as src:
        subprocess.run(["sfdisk", "-q", "--no-reread", src], input="label: gpt\n,,L\n",
                       text=True, check=True, capture_output=True)
        subprocess.run(["partx", "-u", src], check=True)
        subprocess.run(["mkfs.ext4", "-q", f"{src}p1"], check=True)
        with mounted(f"{src}p1", tmp_path / "m"):
            proc = rescue_cli("backup", "--disk", src, "--repo", str(tmp_path / "repo"))
        assert proc.returncode == 20
        assert "mounted read-write" in proc.stderr
        assert not (tmp_path / "repo" / "images").exists() or not any(
            (tmp_path / "repo" / "images").iterdir())


def test_full_destination_leaves_no_half_image(gpt_backup: BackedUp, tmp_path: Path) -> None:
    """A first backup that fills its destination fails with exit 31 and leaves nothing."""
    with loop_device(tmp_path / "small.img", 16 * MiB) as small:
        subprocess.run(["mkfs.ext4", "-q", "-m", "0", small], check=True)
        mnt = tmp_path / "m"
        with mounted(small, mnt):
            repo = mnt / "repo"
            proc = rescue_cli("backup", "--disk", gpt_backup.system.dev, "--repo", str(repo))
            assert proc.returncode == 31, proc.stderr
            assert "full" in proc.stderr
            # the repository this first backup created is taken away again: no half
            # image, no chunks filling the stick, nothing to clean by hand
            assert not repo.exists()
            assert list(mnt.iterdir()) == [mnt / "lost+found"]


class FailingTarget(BlockTarget):
    """Fault injection: the disk fails with EIO after a few writes (cannot be produced
    for real on a loop device)."""

    writes = 0

    def pwrite(self, data, offset):  # type: ignore[no-untyped-def]
        FailingTarget.writes += 1
        if FailingTarget.writes > 5:
            err = OSError(errno.EIO, "Input/output error")
            from rescue.errors import from_oserror
            raise from_oserror(err, f"Writing to {self.path} at byte {offset}")
        super().pwrite(data, offset)


def test_io_error_mid_restore_is_reported_clearly(gpt_backup: BackedUp, blank_disk) -> None:
    target = blank_disk(SRC_SIZE)
    prepared = services.prepare_restore(str(gpt_backup.repo), gpt_backup.image_id, target)
    restorer = Restorer(prepared.repo, prepared.manifest, prepared.plan, CommandRunner(),
                        target_factory=FailingTarget)
    with pytest.raises(DeviceError, match="input/output error"):
        restorer.run()
    assert restorer.report.result == "failed"
    assert "input/output error" in restorer.report.error


def test_manifest_roundtrip_through_repository(gpt_backup: BackedUp) -> None:
    m = Repository.open(gpt_backup.repo).load_manifest("latest")
    again = Manifest.from_json(m.to_json())
    assert again == m
    assert m.computer == "demo-pc" and m.os_name.startswith("Debian GNU/Linux 12")
    assert m.timezone == "Europe/Berlin" and m.created_local.endswith(("+01:00", "+02:00"))


def test_read_only_target_refused(gpt_backup: BackedUp, tmp_path: Path) -> None:
    backing = tmp_path / "ro.img"
    with open(backing, "wb") as f:
        f.truncate(SRC_SIZE)
    dev = subprocess.run(["losetup", "-r", "-f", "--show", str(backing)], capture_output=True,
                         text=True, check=True).stdout.strip()
    try:
        proc = _restore(gpt_backup.repo, gpt_backup.image_id, dev)
    finally:
        subprocess.run(["losetup", "-d", dev])
    assert proc.returncode == 21
    assert "read-only" in proc.stderr
    assert file_is_zero(backing)


def test_a_4kn_disk_is_listed_with_its_size_and_refused_for_a_512_byte_image(
        gpt_backup: BackedUp, tmp_path: Path) -> None:
    """Issue 14: a disk with 4096-byte logical sectors (4Kn) appears with its true size
    and sector size; an image made on a 512-byte-sector disk is refused onto it with a
    sentence, before anything is written (its layout is in 512-byte sectors)."""
    with loop_device(tmp_path / "4kn.img", SRC_SIZE, sector_size=4096) as target:
        listed = json.loads(rescue_cli("devices", "--include-loop", "--json",
                                       check=True).stdout)
        disks = listed["disks"] if isinstance(listed, dict) else listed
        mine = next(d for d in disks if d["path"] == target)
        assert mine["size"] == SRC_SIZE and mine["logical_sector_size"] == 4096, mine
        proc = _restore(gpt_backup.repo, gpt_backup.image_id, target)
        assert proc.returncode == 21, proc.stdout + proc.stderr
        assert "4096-byte sectors" in proc.stderr and "512-byte sectors" in proc.stderr
        assert file_is_zero(tmp_path / "4kn.img")
