"""A power cut during a backup, and a second writer, on a real disk (issue 12, finding
6). The torn chunk file stands for what a power cut leaves on a filesystem that kept the
name but not the data; the lock file written by hand stands for a backup running in
another process of this system."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from loopdev import loop_device
from realdisk import MiB, rescue_cli

from rescue.demo.sample_system import build_gpt_system
from rescue.image.repository import LOCK_FILE, Repository, _boot_id

pytestmark = pytest.mark.root


def _ids(repo: Path) -> list[str]:
    return [i["id"] for i in json.loads(
        rescue_cli("list", "--repo", str(repo), "--json", check=True).stdout)]


def test_a_torn_chunk_is_reported_and_rewritten_and_a_second_writer_refused(
        tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    with loop_device(tmp_path / "src.img", 256 * MiB) as dev:
        build_gpt_system(dev, hostname="torn-pc", files=300, data_bytes=8 * MiB,
                         root_size="150M")
        rescue_cli("backup", "--disk", dev, "--repo", str(repo), "--name", "one", check=True)
        [first] = _ids(repo)
        # the power cut: the largest chunk file (a data chunk) lost its second half
        victim = max((repo / "chunks").rglob("*.zst"), key=lambda p: p.stat().st_size)
        whole = victim.read_bytes()
        victim.write_bytes(whole[: len(whole) // 2])
        digest = victim.name.removesuffix(".zst")

        proc = rescue_cli("verify", "--repo", str(repo), "--image", first)
        assert proc.returncode == 12, proc.stdout + proc.stderr
        assert digest[:16] in proc.stderr and "damaged" in proc.stderr, proc.stderr

        # another backup is running (this process holds the lock): refused, nothing added
        (repo / LOCK_FILE).write_text(json.dumps({
            "host": os.uname().nodename, "pid": os.getpid(), "boot_id": _boot_id(),
            "machine_id": "", "started": "2026-12-03T12:00:00+00:00", "token": "x" * 32}))
        proc = rescue_cli("backup", "--disk", dev, "--repo", str(repo))
        assert proc.returncode == 10, proc.stdout + proc.stderr
        assert f"process {os.getpid()}" in proc.stderr and "--break-lock" in proc.stderr
        assert _ids(repo) == [first]
        assert (repo / LOCK_FILE).exists()

        # that writer is gone: the next backup takes the lock, writes the torn chunk again
        rescue_cli("backup", "--disk", dev, "--repo", str(repo), "--name", "two",
                   "--break-lock", check=True)
    assert not (repo / LOCK_FILE).exists()
    assert victim.read_bytes() == whole
    assert Repository.open(repo).has_chunk(digest)
    for image_id in _ids(repo):
        rescue_cli("verify", "--repo", str(repo), "--image", image_id, check=True)
