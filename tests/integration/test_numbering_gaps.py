"""Partitions numbered with gaps come back with the same numbers: a GPT disk with 1, 3, 6
(partitions deleted on the source) and an MBR disk with primaries 1 and 3 and an extended
4 holding 5 and 6. Geometry, identities and filesystems are kept; fstab entries like
/dev/sda3 and boot entries naming partition 3 stay right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from loopdev import MiB, loop_device, mounted, refresh_partitions, sh
from realdisk import blkid, rescue_cli, sfdisk_json, source_digest

from rescue.demo.sample_system import populate_tree

pytestmark = pytest.mark.root

SIZE = 256 * MiB


def _rows(table: dict) -> list[tuple]:
    return [(p["node"][len(p["node"].rstrip("0123456789")):], p["start"], p["size"], p["type"],
             p["uuid"], p.get("name")) for p in table["partitions"]]


def test_gaps_in_gpt_numbering_are_restored(blank_disk, tmp_path: Path) -> None:
    with loop_device(tmp_path / "src.img", SIZE) as src:
        sh("sfdisk", "-q", "--no-reread", "--no-tell-kernel", src, input=(
            "label: gpt\n"
            f"{src}p1 : start=2048, size=65536, type=L, name=alpha\n"
            f"{src}p3 : start=67584, size=131072, type=L, name=gamma\n"
            f"{src}p6 : start=198656, size=65536, type=S, name=swap\n"))
        refresh_partitions(src)
        nodes = {n: f"{src}p{n}" for n in (1, 3, 6)}
        sh("mkfs.ext4", "-q", "-L", "alpha", nodes[1])
        sh("mkfs.ext4", "-q", "-L", "gamma", nodes[3])
        sh("mkswap", "-L", "swap6", nodes[6])
        digests = {}
        for n, seed in ((1, 5), (3, 6)):
            with mounted(nodes[n], tmp_path / f"w{n}") as m:
                populate_tree(m, files=120, data_bytes=4 * MiB, seed=seed)
            digests[n] = source_digest(nodes[n], tmp_path / f"s{n}")
        identities = {n: blkid(node) for n, node in nodes.items()}
        source = sfdisk_json(src)
        repo = tmp_path / "repo"
        rescue_cli("backup", "--disk", src, "--repo", str(repo), check=True)

    m = json.loads(rescue_cli("inspect", "--repo", str(repo), "--json", check=True).stdout)
    assert [p["number"] for p in m["disks"][0]["partitions"]] == [1, 3, 6]
    for size in (SIZE, SIZE + 64 * MiB):
        target = blank_disk(size, f"target{size}")
        rescue_cli("restore", "--repo", str(repo), "--disk", target, "--yes", "--verify",
                   "--no-grow", "--skip-fixup", "fstab-check", check=True)
        restored = sfdisk_json(target)
        assert _rows(restored) == _rows(source)
        assert restored["id"] == source["id"]
        for n in (1, 3, 6):
            got = blkid(f"{target}p{n}")
            for key in ("TYPE", "UUID", "LABEL", "PART_ENTRY_UUID", "PART_ENTRY_NAME"):
                assert got.get(key) == identities[n].get(key), (n, key)
        for n in (1, 3):
            assert source_digest(f"{target}p{n}", tmp_path / f"d{n}-{size}") == digests[n]


def _mbr_rows(table: dict) -> list[tuple]:
    return [(p["node"][len(p["node"].rstrip("0123456789")):], p["start"], p["size"], p["type"],
             p.get("bootable", False)) for p in table["partitions"]]


def test_free_primary_slots_in_an_mbr_are_restored(blank_disk, tmp_path: Path) -> None:
    with loop_device(tmp_path / "src.img", SIZE) as src:
        sh("sfdisk", "-q", "--no-reread", "--no-tell-kernel", src, input=(
            "label: dos\n"
            f"{src}p1 : start=2048, size=65536, type=83, bootable\n"
            f"{src}p3 : start=67584, size=65536, type=83\n"
            f"{src}p4 : start=133120, size=131072, type=5\n"
            f"{src}p5 : start=135168, size=65536, type=83\n"
            f"{src}p6 : start=202752, size=59392, type=82\n"))
        refresh_partitions(src)
        nodes = {n: f"{src}p{n}" for n in (1, 3, 5, 6)}
        for n in (1, 3, 5):
            sh("mkfs.ext4", "-q", "-L", f"part{n}", nodes[n])
        sh("mkswap", "-L", "swap6", nodes[6])
        digests = {}
        for n in (1, 3, 5):
            with mounted(nodes[n], tmp_path / f"w{n}") as m:
                populate_tree(m, files=60, data_bytes=2 * MiB, seed=n)
            digests[n] = source_digest(nodes[n], tmp_path / f"s{n}")
        source = sfdisk_json(src)
        repo = tmp_path / "repo"
        rescue_cli("backup", "--disk", src, "--repo", str(repo), check=True)

    target = blank_disk(SIZE, "mbr-target")
    rescue_cli("restore", "--repo", str(repo), "--disk", target, "--yes", "--verify",
               "--firmware", "bios", "--skip-fixup", "fstab-check", "--skip-fixup",
               "bios-boot-code", check=True)
    restored = sfdisk_json(target)
    assert _mbr_rows(restored) == _mbr_rows(source)
    assert restored["id"] == source["id"]
    for n in (1, 3, 5):
        assert blkid(f"{target}p{n}")["LABEL"] == f"part{n}"
        assert source_digest(f"{target}p{n}", tmp_path / f"d{n}") == digests[n]
    assert blkid(f"{target}p6")["LABEL"] == "swap6"
