"""Restore a real backup read over HTTP from a web server, onto a real (loop) disk."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from httpserve import serve
from realdisk import SRC_SIZE, BackedUp, rescue_cli, sfdisk_json, source_digest

pytestmark = pytest.mark.root


def test_restore_from_a_web_server(gpt_backup: BackedUp, blank_disk, tmp_path: Path) -> None:
    target = blank_disk(SRC_SIZE)
    with serve(gpt_backup.repo, listing=False) as (url, requests):
        listed = json.loads(rescue_cli("list", "--repo", url, "--json", check=True).stdout)
        assert gpt_backup.image_id in [i["id"] for i in listed]
        verified = rescue_cli("verify", "--repo", url, "--image", gpt_backup.image_id,
                              check=True)
        assert "is intact" in verified.stdout
        rescue_cli("restore", "--repo", url, "--image", gpt_backup.image_id, "--disk", target,
                   "--yes", "--firmware", "uefi", "--verify", check=True)
    assert any(r.startswith("GET /chunks/") for r in requests)
    src, dst = sfdisk_json(gpt_backup.system.dev), sfdisk_json(target)
    assert dst["id"] == src["id"] and len(dst["partitions"]) == len(src["partitions"])
    fsck = subprocess.run(["e2fsck", "-fn", f"{target}p2"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert source_digest(f"{target}p2", tmp_path / "dst") == gpt_backup.digest


def test_a_chunk_missing_on_the_server_refuses_before_writing(
        gpt_backup: BackedUp, blank_disk, tmp_path: Path) -> None:
    # a copy of the repository with one chunk gone (the fixture's repository is shared)
    repo = tmp_path / "repo"
    subprocess.run(["cp", "-a", "--reflink=auto", str(gpt_backup.repo), str(repo)], check=True)
    victim = sorted((repo / "chunks").glob("*/*.zst"))[0]
    victim.unlink()
    target = blank_disk(SRC_SIZE)
    with open(target, "rb") as f:
        before = f.read(4 * 1024 * 1024)
    with serve(repo) as (url, _):
        res = rescue_cli("restore", "--repo", url, "--image", gpt_backup.image_id,
                         "--disk", target, "--yes", "--firmware", "uefi")
    assert res.returncode == 12, res.stdout + res.stderr
    assert "missing" in res.stderr and victim.stem[:16] in res.stderr
    with open(target, "rb") as f:
        assert f.read(4 * 1024 * 1024) == before  # nothing was written
