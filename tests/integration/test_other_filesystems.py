"""xfs, btrfs and ntfs: used blocks from partclone's allocation maps, restored and grown."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from loopdev import loop_device, mounted, partition, refresh_partitions
from realdisk import MiB, blkid, rescue_cli, sfdisk_json

from rescue.demo.sample_system import populate_tree, tree_digest
from rescue.image.repository import Repository

pytestmark = pytest.mark.root

MKFS = {
    "xfs": ["mkfs.xfs", "-q", "-L", "data-xfs"],
    "btrfs": ["mkfs.btrfs", "-q", "-L", "data-btrfs"],
    "ntfs": ["mkfs.ntfs", "-q", "-F", "-f", "-L", "data-ntfs"],
}


def _digest(node: str, fstype: str, where: Path) -> dict:
    opts = "ro" if fstype != "xfs" else "ro,norecovery"
    if fstype == "ntfs":
        where.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ntfs-3g", "-o", "ro", node, str(where)], check=True)
        try:
            digest = tree_digest(where)
        finally:
            subprocess.run(["umount", str(where)], check=True)
    else:
        with mounted(node, where, opts) as m:
            digest = tree_digest(m)
    # ntfs-3g maps owners and modes; compare what NTFS stores
    return {k: (v[3], v[9]) for k, v in digest.items()} if fstype == "ntfs" else digest


def test_xfs_btrfs_ntfs_used_blocks_restore_and_grow(tmp_path: Path, blank_disk) -> None:
    order = ["ntfs", "btrfs", "xfs"]  # xfs last and largest: it is the one that grows
    with loop_device(tmp_path / "src.img", 1024 * MiB) as src:
        nodes = partition(src, "label: gpt\nsize=150M\nsize=200M\nsize=600M\n")
        digests = {}
        for node, fstype in zip(nodes, order, strict=True):
            subprocess.run([*MKFS[fstype], node], check=True, capture_output=True)
            mnt = tmp_path / f"m-{fstype}"
            if fstype == "ntfs":
                mnt.mkdir()
                subprocess.run(["ntfs-3g", node, str(mnt)], check=True)
                try:
                    populate_tree(mnt, files=150, data_bytes=3 * MiB, seed=11)
                except OSError:
                    pass  # ntfs-3g refuses some names/modes of the generic tree; keep what fit
                finally:
                    subprocess.run(["umount", str(mnt)], check=True)
            else:
                with mounted(node, mnt) as m:
                    populate_tree(m, files=300, data_bytes=8 * MiB, seed=12)
            digests[fstype] = _digest(node, fstype, tmp_path / f"d-{fstype}")
        repo = tmp_path / "repo"
        rescue_cli("backup", "--disk", src, "--repo", str(repo), check=True)
        m = Repository.open(repo).load_manifest("latest")
        for part, fstype in zip(m.disks[0].partitions, order, strict=True):
            assert part.filesystem == fstype
            assert part.method == "used-blocks"
            assert 0 < part.used_bytes < part.size * 512 // 2, (fstype, part.used_bytes)
        identities = {n: blkid(node) for n, node in enumerate(nodes, start=1)}
    target = blank_disk(1280 * MiB)
    rescue_cli("restore", "--repo", str(repo), "--disk", target, "--yes", "--verify",
               check=True)
    parts = sfdisk_json(target)["partitions"]
    assert parts[2]["size"] > 600 * MiB // 512 + 200 * MiB // 512  # xfs partition grew
    for n, fstype in enumerate(order, start=1):
        node = f"{target}p{n}"
        got = blkid(node)
        for key in ("TYPE", "UUID", "LABEL"):
            assert got.get(key) == identities[n].get(key), (fstype, key)
        assert _digest(node, fstype, tmp_path / f"r-{fstype}") == digests[fstype]
    with mounted(f"{target}p3", tmp_path / "grown") as mnt:
        stat = subprocess.run(["df", "-B1", "--output=size", str(mnt)], capture_output=True,
                              text=True, check=True).stdout.split()[-1]
    assert int(stat) > 700 * MiB  # the xfs filesystem itself was grown


def test_btrfs_with_a_read_only_snapshot_restores_whole(tmp_path: Path, blank_disk) -> None:
    """Found in issue 13's work: partclone.btrfs 0.3.23 leaves out the tree blocks a
    read-only snapshot shares with its subvolume, and the restored btrfs would not mount
    ("bad tree block start ... have 0"). The map now comes from btrfs-progs' extent and
    chunk trees (rescue/fs/btrfs.py): the restore mounts, checks clean, and every
    subvolume, snapshot and file is there."""
    with loop_device(tmp_path / "src.img", 700 * MiB) as dev:
        node = partition(dev, "label: gpt\nsize=600M, type=L\n")[0]
        subprocess.run([*MKFS["btrfs"], node], check=True, capture_output=True)
        with mounted(node, tmp_path / "w", "rw") as m:
            for sub in ("@", "@home"):
                subprocess.run(["btrfs", "subvolume", "create", str(m / sub)], check=True,
                               capture_output=True)
            populate_tree(m / "@", files=300, data_bytes=10 * MiB, seed=6)
            populate_tree(m / "@home", files=200, data_bytes=8 * MiB, seed=7)
            subprocess.run(["btrfs", "subvolume", "snapshot", "-r", str(m / "@"),
                            str(m / "@snap")], check=True, capture_output=True)
            subprocess.run(["btrfs", "subvolume", "set-default", str(m / "@")], check=True,
                           capture_output=True)
        with mounted(node, tmp_path / "r", "ro,subvolid=5") as m:
            before = tree_digest(m)
        rescue_cli("backup", "--disk", dev, "--repo", str(tmp_path / "repo"), check=True)
    target = blank_disk(700 * MiB)
    proc = rescue_cli("restore", "--repo", str(tmp_path / "repo"), "--image", "latest",
                      "--disk", target, "--yes", "--no-grow", "--firmware", "uefi")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    restored = refresh_partitions(target)[0]
    check = subprocess.run(["btrfs", "check", "--readonly", restored], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    with mounted(restored, tmp_path / "n", "ro,subvolid=5") as m:
        assert tree_digest(m) == before
