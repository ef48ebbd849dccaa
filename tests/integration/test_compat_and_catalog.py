"""The hardware verdict gates a restore; `rescue list` without --repo searches every disk."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from loopdev import loop_device, mounted
from realdisk import SRC_SIZE, BackedUp, MiB, file_is_zero, rescue_cli

from rescue.image.repository import Repository, new_image_id

pytestmark = pytest.mark.root


def _arm64_copy(backed: BackedUp, tmp_path: Path) -> tuple[Path, str]:
    """A copy of the repository with an extra image that claims an arm64 source."""
    repo = tmp_path / "repo"
    shutil.copytree(backed.repo, repo)
    r = Repository.open(repo)
    m = r.load_manifest(backed.image_id)
    hw = dict(m.hardware)
    hw["architecture"] = "aarch64"
    hw["cpu"] = dict(hw.get("cpu", {}), architecture="aarch64", vendor="ARM")
    arm = dataclasses.replace(m, id=new_image_id(), hardware=hw, name="arm64 server")
    r.write_manifest(arm)
    return repo, arm.id


def test_blocked_image_is_refused_before_writing_and_force_overrides(
        gpt_backup: BackedUp, blank_disk, tmp_path: Path) -> None:
    repo, arm_id = _arm64_copy(gpt_backup, tmp_path)
    target = blank_disk(SRC_SIZE)
    backing = Path(subprocess.run(["losetup", "-n", "-O", "BACK-FILE", target],
                                  capture_output=True, text=True).stdout.strip())
    proc = rescue_cli("restore", "--repo", str(repo), "--image", arm_id, "--disk", target,
                      "--yes")
    assert proc.returncode == 23, proc.stderr
    assert "cannot boot on this hardware" in proc.stderr and "--force" in proc.stderr
    assert file_is_zero(backing)
    compat = rescue_cli("compat", "--repo", str(repo), "--image", arm_id)
    assert compat.returncode == 23
    report = tmp_path / "report.json"
    rescue_cli("restore", "--repo", str(repo), "--image", arm_id, "--disk", target, "--yes",
               "--force", "--firmware", "uefi", "--report", str(report), check=True)
    data = json.loads(report.read_text())
    assert data["result"] == "ok"
    assert data["compatibility"]["level"] == "blocked"


def test_same_machine_image_is_compatible_and_recorded(gpt_backup: BackedUp, blank_disk,
                                                       tmp_path: Path) -> None:
    target = blank_disk(SRC_SIZE)
    report = tmp_path / "report.json"
    rescue_cli("restore", "--repo", str(gpt_backup.repo), "--disk", target, "--yes",
               "--firmware", "uefi", "--report", str(report), check=True)
    level = json.loads(report.read_text())["compatibility"]["level"]
    assert level in ("compatible", "fixups")  # loop target vs vda source may add fix-ups


def test_list_without_repo_finds_images_on_attached_disks(gpt_backup: BackedUp,
                                                          tmp_path: Path) -> None:
    with loop_device(tmp_path / "usb.img", 128 * MiB) as stick:
        subprocess.run(["mkfs.ext4", "-q", "-L", "BACKUPS", stick], check=True)
        with mounted(stick, tmp_path / "m") as mnt:
            shutil.copytree(gpt_backup.repo, mnt / "rescue")
        proc = rescue_cli("list", "--include-loop", "--json", check=True)
        found = [i for i in json.loads(proc.stdout) if i["id"] == gpt_backup.image_id]
        assert found, proc.stdout
        assert found[0]["computer"] == "demo-pc"
        assert "BACKUPS" in found[0]["location"]
        human = rescue_cli("list", "--include-loop", check=True).stdout
        assert gpt_backup.image_id in human and "recommended" in human
        # the stick was mounted privately and read-only, and is unmounted again
        assert stick not in Path("/proc/mounts").read_text()
