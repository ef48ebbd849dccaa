"""Geometry on real disks (issue 9): layouts whose last partition runs to the end of the
disk, as installers leave them, restored with the CLI onto a disk of exactly the same size
(and one sector more). A GPT partition made by `sgdisk -n1:1MiB:0` ends at the last usable
LBA (sectors-34 at 512-byte sectors, sectors-6 at 4096); an MBR partition made by sfdisk's
default ends in the very last sector. The restored table must match the source's exactly,
the filesystem check must be clean and the files must read back."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from loopdev import MiB, loop_device, mounted, refresh_partitions, sh
from realdisk import rescue_cli, sfdisk_json

pytestmark = pytest.mark.root

SIZE = 64 * MiB


def _rows(table: dict) -> list[tuple]:
    """Number, start, size, type, GUID/PARTUUID of every partition (sfdisk -J)."""
    return [(p["node"][len(p["node"].rstrip("0123456789")):], p["start"], p["size"],
             p["type"].upper(), p.get("uuid", "").upper()) for p in table["partitions"]]


def _populate(node: str, where: Path, seed: int) -> dict[str, str]:
    """Write a few files (one spanning many blocks) and return name -> sha256."""
    digests = {}
    with mounted(node, where) as m:
        for i in range(4):
            data = hashlib.sha256(f"{seed}-{i}".encode()).digest() * (4096 * (i + 1) + i)
            (m / f"file{i}").write_bytes(data)
            digests[f"file{i}"] = hashlib.sha256(data).hexdigest()
    return digests


def _read_back(node: str, where: Path) -> dict[str, str]:
    with mounted(node, where, "ro") as m:
        return {f.name: hashlib.sha256(f.read_bytes()).hexdigest()
                for f in sorted(m.iterdir()) if f.is_file()}


def _fsck_clean(node: str) -> None:
    proc = subprocess.run(["e2fsck", "-fn", node], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _fs_fills(node: str, partition_bytes: int) -> bool:
    """The ext4 filesystem on *node* fills its partition (resize2fs stops at the last
    whole 4 KiB page)."""
    fields = dict(line.split(":", 1) for line in sh("dumpe2fs", "-h", node).splitlines()
                  if ":" in line)
    count, block = int(fields["Block count"]), int(fields["Block size"])
    page = max(block, 4096)
    return count * block == partition_bytes // page * page


def _restore(repo: Path, target: str, *extra: str) -> None:
    rescue_cli("restore", "--repo", str(repo), "--disk", target, "--yes", "--verify",
               "--firmware", "bios", "--skip-fixup", "fstab-check", *extra, check=True)


@pytest.mark.parametrize("sector_size", [512, 4096])
def test_sgdisk_default_end_restores_onto_the_same_size(tmp_path: Path,
                                                         sector_size: int) -> None:
    sectors = SIZE // sector_size
    with loop_device(tmp_path / "src.img", SIZE, sector_size) as src:
        sh("sgdisk", "-n1:1MiB:0", "-t1:8300", "-c1:data", src)
        (node,) = refresh_partitions(src)
        source = sfdisk_json(src)
        (part,) = source["partitions"]
        # what the issue is about: the partition ends at the last usable LBA
        last_usable = sectors - (34 if sector_size == 512 else 6)
        assert source["sectorsize"] == sector_size
        assert part["start"] + part["size"] - 1 == last_usable == source["lastlba"]
        sh("mkfs.ext4", "-q", "-L", "data", node)
        digests = _populate(node, tmp_path / "w", sector_size)
        repo = tmp_path / "repo"
        rescue_cli("backup", "--disk", src, "--repo", str(repo), check=True)

    with loop_device(tmp_path / "same.img", SIZE, sector_size) as target:
        _restore(repo, target)
        restored = sfdisk_json(target)
        assert restored["sectorsize"] == sector_size
        assert _rows(restored) == _rows(source)
        assert restored["id"].upper() == source["id"].upper()
        assert restored["lastlba"] == source["lastlba"]
        (node,) = refresh_partitions(target)
        _fsck_clean(node)
        assert _read_back(node, tmp_path / "r") == digests
        # the GPT on the target is valid: its backup header sits in the last sector
        check = subprocess.run(["sgdisk", "-v", target], capture_output=True, text=True)
        assert check.returncode == 0 and "No problems found" in check.stdout, check.stdout

    # a larger disk: the partition grows in whole MiB up to the last usable sector
    extra = 32 * MiB + 5 * sector_size
    with loop_device(tmp_path / "larger.img", SIZE + extra, sector_size) as target:
        _restore(repo, target)
        restored = sfdisk_json(target)
        ((number, start, length, ptype, uuid),) = _rows(restored)
        (was,) = _rows(source)
        assert (number, start, ptype, uuid) == (was[0], was[1], was[3], was[4])
        assert length - part["size"] == 32 * MiB // sector_size  # 5 sectors: less than 1 MiB
        assert start + length - 1 <= restored["lastlba"]
        (node,) = refresh_partitions(target)
        _fsck_clean(node)
        assert _fs_fills(node, length * sector_size)  # the filesystem grew with it
        assert _read_back(node, tmp_path / "rl") == digests

    if sector_size == 512:
        # one sector more: nothing to grow into, the layout is kept exactly
        with loop_device(tmp_path / "plus1.img", SIZE + sector_size, sector_size) as target:
            _restore(repo, target)
            restored = sfdisk_json(target)
            assert _rows(restored) == _rows(source)
            assert restored["lastlba"] == source["lastlba"] + 1
            (node,) = refresh_partitions(target)
            _fsck_clean(node)
            assert _read_back(node, tmp_path / "r1") == digests


@pytest.mark.parametrize("sector_size", [512, 4096])
def test_mbr_logical_partition_to_the_very_last_sector(tmp_path: Path, sector_size: int) -> None:
    size = SIZE + 3 * sector_size  # not a whole number of MiB: the last sector is odd
    sectors = size // sector_size
    mib = MiB // sector_size
    with loop_device(tmp_path / "src.img", size, sector_size) as src:
        # sfdisk's default size: to the end of the disk (extended) and of the extended one
        sh("sfdisk", "-q", "--no-reread", "--no-tell-kernel", src, input=(
            "label: dos\n"
            f"start={mib}, size={16 * mib}, type=83\n"
            f"start={17 * mib}, type=5\n"
            f"start={18 * mib}, type=83\n"))
        nodes = refresh_partitions(src)
        assert {f"{src}p1", f"{src}p5"} <= set(nodes)
        source = sfdisk_json(src)
        assert source["sectorsize"] == sector_size
        by_number = {r[0]: r for r in _rows(source)}
        for key in ("2", "5"):
            assert by_number[key][1] + by_number[key][2] == sectors  # ends in the last sector
        digests = {}
        for n in (1, 5):
            sh("mkfs.ext4", "-q", "-L", f"part{n}", f"{src}p{n}")
            digests[n] = _populate(f"{src}p{n}", tmp_path / f"w{n}", n)
        repo = tmp_path / "repo"
        rescue_cli("backup", "--disk", src, "--repo", str(repo), check=True)

    with loop_device(tmp_path / "same.img", size, sector_size) as target:
        _restore(repo, target, "--skip-fixup", "bios-boot-code")
        restored = sfdisk_json(target)
        assert _rows(restored) == _rows(source)
        assert restored["id"] == source["id"]
        refresh_partitions(target)
        for n in (1, 5):
            _fsck_clean(f"{target}p{n}")
            assert _read_back(f"{target}p{n}", tmp_path / f"r{n}") == digests[n]

    # a larger disk: the logical partition grows inside the extended one, which grows too
    with loop_device(tmp_path / "larger.img", size + 16 * MiB, sector_size) as target:
        _restore(repo, target, "--skip-fixup", "bios-boot-code")
        restored = {r[0]: r for r in _rows(sfdisk_json(target))}
        grown = 16 * MiB // sector_size
        assert restored["1"] == by_number["1"]
        for key in ("2", "5"):
            was = by_number[key]
            assert restored[key] == (key, was[1], was[2] + grown, was[3], was[4])
        refresh_partitions(target)
        assert _fs_fills(f"{target}p5", restored["5"][2] * sector_size)
        for n in (1, 5):
            _fsck_clean(f"{target}p{n}")
            assert _read_back(f"{target}p{n}", tmp_path / f"l{n}") == digests[n]
