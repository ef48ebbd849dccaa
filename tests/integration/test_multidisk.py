"""A machine with two disks: one image holds both; each restores onto its own target."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from loopdev import loop_device, mounted, partition, sh
from realdisk import MiB, blkid, rescue_cli, sfdisk_json, source_digest

from rescue.demo.sample_system import build_gpt_system, populate_tree, tree_digest

pytestmark = pytest.mark.root

SYSTEM_SIZE = 512 * MiB
DATA_SIZE = 192 * MiB


@dataclass
class TwoDisks:
    repo: Path
    image_id: str
    system_dev: str
    data_dev: str
    system_digest: dict
    data_digest: dict
    data_node: str


@pytest.fixture(scope="module")
def two_disk_backup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoDisks]:
    tmp = tmp_path_factory.mktemp("two-disks")
    with loop_device(tmp / "system.img", SYSTEM_SIZE) as sys_dev, \
            loop_device(tmp / "data.img", DATA_SIZE) as data_dev:
        system = build_gpt_system(sys_dev, hostname="two-disk-pc", files=300,
                                  data_bytes=8 * MiB)
        (node,) = partition(data_dev, "label: gpt\nsize=160MiB, type=L, name=data\n")
        sh("mkfs.ext4", "-q", "-L", "data", node)
        with mounted(node, tmp / "data-rw") as m:
            populate_tree(m, files=200, data_bytes=12 * MiB, seed=9)
        data_digest = source_digest(node, tmp / "data-mnt")
        system_digest = source_digest(system.nodes["root"], tmp / "sys-mnt")
        repo = tmp / "repo"
        rescue_cli("backup", "--disk", sys_dev, "--disk", data_dev, "--repo", str(repo),
                   "--name", "both disks", check=True)
        image = json.loads(rescue_cli("list", "--repo", str(repo), "--json",
                                      check=True).stdout)[0]
        assert image["disks"] == 2 and image["computer"] == "two-disk-pc"
        yield TwoDisks(repo, image["id"], sys_dev, data_dev, system_digest, data_digest, node)


def test_image_records_both_disks(two_disk_backup: TwoDisks) -> None:
    m = json.loads(rescue_cli("inspect", "--repo", str(two_disk_backup.repo), "--json",
                              check=True).stdout)
    assert [d["size_bytes"] for d in m["disks"]] == [SYSTEM_SIZE, DATA_SIZE]
    assert [p["fs_label"] for p in m["disks"][1]["partitions"]] == ["data"]
    assert m["firmware"] == "uefi"  # the system disk has an ESP
    verified = rescue_cli("verify", "--repo", str(two_disk_backup.repo), check=True)
    assert "is intact" in verified.stdout


def test_restore_both_disks(two_disk_backup: TwoDisks, blank_disk, tmp_path: Path) -> None:
    b = two_disk_backup
    sys_target = blank_disk(SYSTEM_SIZE, "sys-target")
    data_target = blank_disk(DATA_SIZE + 64 * MiB, "data-target")  # larger: data grows
    dry = json.loads(rescue_cli("restore", "--repo", str(b.repo), "--disk", sys_target,
                                "--disk", data_target, "--dry-run", "--json",
                                "--firmware", "uefi", check=True).stdout)
    assert [d["target"]["path"] for d in dry["disks"]] == [sys_target, data_target]
    assert [d["disk_index"] for d in dry["disks"]] == [0, 1]
    assert not any(s["name"].startswith("uefi") for s in dry["disks"][1]["fixups"])
    report_file = tmp_path / "report.json"
    rescue_cli("restore", "--repo", str(b.repo), "--disk", sys_target, "--disk", data_target,
               "--yes", "--verify", "--firmware", "uefi", "--skip-fixup", "uefi-nvram-entry",
               "--report", str(report_file), check=True)
    report = json.loads(report_file.read_text())
    assert report["result"] == "ok" and report["verified"] is True
    assert [d["target"] for d in report["disks"]] == [data_target, sys_target]  # system last
    for src, dst in ((b.system_dev, sys_target), (b.data_dev, data_target)):
        s, d = sfdisk_json(src), sfdisk_json(dst)
        assert d["id"] == s["id"]
        assert [p["uuid"] for p in d["partitions"]] == [p["uuid"] for p in s["partitions"]]
    assert source_digest(f"{sys_target}p2", tmp_path / "sys") == b.system_digest
    data = f"{data_target}p1"
    assert blkid(data)["UUID"] == blkid(b.data_node)["UUID"]
    fsck = subprocess.run(["e2fsck", "-fn", data], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    with mounted(data, tmp_path / "data", "ro") as m:
        assert tree_digest(m) == b.data_digest
    grown = sfdisk_json(data_target)["partitions"][0]["size"]
    assert grown > sfdisk_json(b.data_dev)["partitions"][0]["size"]


def _head(dev: str) -> bytes:
    with open(dev, "rb") as f:
        return f.read(2 * MiB)


def test_every_disk_is_checked_before_anything_is_written(
        two_disk_backup: TwoDisks, blank_disk) -> None:
    b = two_disk_backup
    sys_target = blank_disk(SYSTEM_SIZE, "sys-target")
    small = blank_disk(16 * MiB, "small")  # too small even with shrinking
    args = ("restore", "--repo", str(b.repo), "--yes", "--firmware", "uefi")
    one = rescue_cli(*args, "--disk", sys_target)
    assert one.returncode == 2 and "holds 2 disk(s)" in one.stderr, one.stderr
    same = rescue_cli(*args, "--disk", sys_target, "--disk", sys_target)
    assert same.returncode == 2 and "more than one" in same.stderr, same.stderr
    too_small = rescue_cli(*args, "--disk", sys_target, "--disk", small)
    assert too_small.returncode == 22 and small in too_small.stderr, too_small.stderr
    # the first target would have been fine; it was not touched either
    assert _head(sys_target) == bytes(2 * MiB) and _head(small) == bytes(2 * MiB)


def test_backup_refuses_the_same_disk_twice(two_disk_backup: TwoDisks, tmp_path: Path) -> None:
    res = rescue_cli("backup", "--disk", two_disk_backup.data_dev, "--disk",
                     two_disk_backup.data_dev, "--repo", str(tmp_path / "r"))
    assert res.returncode == 20 and "more than once" in res.stderr, res.stderr


def test_unattended_wizard_restores_both_disks(two_disk_backup: TwoDisks, blank_disk,
                                               tmp_path: Path) -> None:
    b = two_disk_backup
    sys_target = blank_disk(SYSTEM_SIZE, "sys-target")
    data_target = blank_disk(DATA_SIZE, "data-target")
    common = ("--include-loop", "--disk", sys_target, "--disk", data_target,
              "--no-media-search", "--simulate-power", "--log", str(tmp_path / "log"))
    base = f"rescue.action=restore rescue.repo={b.repo} rescue.after=poweroff rescue.force=yes"
    one = rescue_cli("wizard", "--cmdline", f"{base} rescue.target={sys_target}", *common)
    assert one.returncode == 2 and "holds 2 disk(s)" in one.stderr, one.stderr
    done = rescue_cli("wizard", "--cmdline",
                      f"{base} rescue.target={sys_target},{data_target}", *common)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("Target: ") == 2
    assert source_digest(f"{sys_target}p2", tmp_path / "sys") == b.system_digest
    with mounted(f"{data_target}p1", tmp_path / "data", "ro") as m:
        assert tree_digest(m) == b.data_digest
