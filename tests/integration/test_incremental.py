"""A second backup of the same disk stores only the chunks that changed; both images
restore to their own state."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from loopdev import loop_device, mounted
from realdisk import SRC_SIZE, rescue_cli, source_digest

from rescue.demo.sample_system import build_gpt_system
from rescue.image.repository import Repository

pytestmark = pytest.mark.root


def _stored(repo: Path, image_id: str) -> int:
    return int(Repository.open(repo).load_manifest(image_id).stats["new_stored_bytes"])


def test_incremental_backup_stores_only_changes(tmp_path: Path, blank_disk) -> None:
    repo = tmp_path / "repo"
    with loop_device(tmp_path / "src.img", SRC_SIZE) as dev:
        system = build_gpt_system(dev, hostname="incr-pc", files=1500, seed=5)
        root = system.nodes["root"]
        first_digest = source_digest(root, tmp_path / "m1")
        rescue_cli("backup", "--disk", dev, "--repo", str(repo), "--name", "one", check=True)
        with mounted(root, tmp_path / "m2") as m:
            (m / "etc/hostname").write_text("incr-pc\n")
            (m / "home/user/docs/new-report.txt").write_text("quarterly numbers\n" * 500)
            victim = next((m / "usr/share/doc").rglob("file*.txt"))
            victim.write_text("changed\n")
            os.unlink(next((m / "usr/bin").glob("prog*")))
        second_digest = source_digest(root, tmp_path / "m3")
        assert second_digest != first_digest
        proc = rescue_cli("backup", "--disk", dev, "--repo", str(repo), "--name", "two",
                          check=True)
        assert re.search(r"reused [0-9.]+ MiB", proc.stdout)
    images = json.loads(rescue_cli("list", "--repo", str(repo), "--json", check=True).stdout)
    assert [i["name"] for i in images] == ["two", "one"]
    two, one = images[0]["id"], images[1]["id"]
    first, second = _stored(repo, one), _stored(repo, two)
    assert second < first * 0.15, (first, second)
    for image_id, digest in ((one, first_digest), (two, second_digest)):
        target = blank_disk(SRC_SIZE, name=image_id)
        rescue_cli("restore", "--repo", str(repo), "--image", image_id[:20], "--disk", target,
                   "--yes", "--firmware", "uefi", check=True)
        assert source_digest(f"{target}p2", tmp_path / f"d-{image_id}") == digest
