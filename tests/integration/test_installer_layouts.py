"""Disks laid out the way real installers leave them (installer_layouts.py), each backed
up with the CLI and restored onto a disk of the same size and onto a larger one.

Checked on every target: the partition table (starts, sizes, types, GUIDs, names,
attributes, disk id) is the source's except for what grew or moved; every filesystem's
own read-only check is clean; every file reads back; the filesystems keep their UUIDs and
labels. On the larger disk the partition a user expects grows (Windows, the btrfs, the
xfs root, the LVM PV: never /boot) and its filesystem fills it; the Windows recovery
partition moves to the end of the disk with its size kept, its NTFS still clean and its
boot sector's "hidden sectors" field naming its new start."""

from __future__ import annotations

import os
import struct
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from installer_layouts import (
    BUILDERS,
    SECTOR,
    Layout,
    Volume,
    existing_pv,
    mount,
    read_vfat,
)
from loopdev import MiB, loop_device
from realdisk import blkid, rescue_cli, sfdisk_json

from rescue.fs import registry

pytestmark = pytest.mark.root

GROW = 512 * MiB  # the larger target: this much more than the source
FIXUPS = ("bios-boot-code", "uefi-fallback-loader", "uefi-nvram-entry", "initramfs-drivers",
          "fstab-check")
IDENTITY_KEYS = ("TYPE", "UUID", "LABEL", "PART_ENTRY_TYPE", "PART_ENTRY_UUID",
                 "PART_ENTRY_NAME", "PART_ENTRY_FLAGS")
# The kind of NTFS/FAT whose boot sector records its own start (offset 0x1C)
START_FIELD = {"ntfs", "vfat"}


@dataclass
class Source:
    layout: Layout
    repo: Path
    table: dict
    identities: dict[int, dict[str, str]]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Source]]:
    """Each layout built and backed up once (the source disk is detached afterwards, so
    no two disks with the same filesystem UUIDs are attached while a target is checked)."""
    if os.geteuid() != 0:
        pytest.skip("needs root for loop devices, mkfs and mount")
    made: dict[str, Source] = {}

    def get(name: str) -> Source:
        if name not in made:
            build, size = BUILDERS[name]
            tmp = tmp_path_factory.mktemp(name)
            with loop_device(tmp / "src.img", size) as dev:
                layout = build(dev, size, tmp)
                for vol in layout.volumes:  # a failure after restore is the restore's
                    if registry.check_command(vol.fstype) and not vol.lv:
                        _fsck(f"{dev}p{vol.number}", vol.fstype)
                table = sfdisk_json(dev)
                identities = {n: blkid(f"{dev}p{n}") for n in _numbers(table)}
                repo = tmp / "repo"
                rescue_cli("backup", "--disk", dev, "--repo", str(repo), check=True)
            (tmp / "src.img").unlink()
            made[name] = Source(layout, repo, table, identities)
        return made[name]

    yield get


def _numbers(table: dict) -> list[int]:
    return [_number(p["node"]) for p in table["partitions"]]


def _number(node: str) -> int:
    return int(node[len(node.rstrip("0123456789")):])


def _rows(table: dict) -> dict[int, dict]:
    keys = ("start", "size", "type", "uuid", "name", "attrs", "bootable")
    return {_number(p["node"]): {k: p.get(k) for k in keys} for p in table["partitions"]}


def _expected_rows(src: Source, extra: int) -> dict[int, dict]:
    rows = _rows(src.table)
    if extra and src.layout.grows is not None:
        rows[src.layout.grows]["size"] += extra
        for n in src.layout.moves:
            rows[n]["start"] += extra
        if src.layout.container is not None:
            rows[src.layout.container]["size"] += extra
    return rows


def _run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True)


def _fsck(node: str, fstype: str) -> None:
    argv = registry.check_command(fstype)  # the filesystem's own read-only check
    assert argv is not None, fstype
    proc = _run(*argv, node)
    assert proc.returncode == 0, f"{' '.join(argv)} {node}: {proc.stdout}{proc.stderr}"


def _read_back(node: str, vol: Volume, where: Path) -> None:
    if vol.fstype == "vfat":
        for rel, data in vol.files.items():
            assert read_vfat(node, rel, where) == data, (node, rel)
        return
    fstype, options = {"ntfs": ("ntfs-3g", "ro"), "ext4": ("ext4", "ro,noload"),
                       "xfs": ("xfs", "ro,norecovery"), "btrfs": ("btrfs", "ro")}[vol.fstype]
    if vol.subvol:
        options += f",subvol={vol.subvol}"
    with mount(node, where, fstype, options) as m:
        for rel, data in vol.files.items():
            assert (m / rel).read_bytes() == data, (node, rel)


def _read(node: str, offset: int, length: int) -> bytes:
    with open(node, "rb") as f:
        f.seek(offset)
        return f.read(length)


def _fs_bytes(node: str, fstype: str) -> int:
    """The size the filesystem (or PV) on *node* believes it has."""
    if fstype == "ntfs":
        boot = _read(node, 0, 512)
        return int(struct.unpack_from("<Q", boot, 0x28)[0] * struct.unpack_from(
            "<H", boot, 0x0B)[0])
    if fstype == "ext4":
        out = _run("dumpe2fs", "-h", node).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        return int(fields["Block count"]) * int(fields["Block size"])
    if fstype == "xfs":
        out = _run("xfs_db", "-r", "-c", "sb 0", "-c", "print dblocks blocksize", node).stdout
        fields = dict(line.split(" = ", 1) for line in out.splitlines() if " = " in line)
        return int(fields["dblocks"]) * int(fields["blocksize"])
    if fstype == "btrfs":
        out = _run("btrfs", "inspect-internal", "dump-super", node).stdout
        return int(next(line.split()[1] for line in out.splitlines()
                        if line.startswith("total_bytes")))
    if fstype == "LVM2_member":
        with existing_pv(node, "") as pv:
            return int(pv.report("pvs", "-o", "pv_size", node)[0]["pv_size"])
    raise AssertionError(f"no size reader for {fstype}")


def _hidden_sectors(node: str) -> list[int]:
    """The 0x1C field of the boot sector and, for NTFS, of its backup copy. The backup is
    the partition's last sector (where ntfs-3g and Windows look): after ntfsresize the
    volume's sector count (0x28) is rounded down to whole clusters and no longer points
    at it."""
    boot = _read(node, 0, 512)
    found = [struct.unpack_from("<I", boot, 0x1C)[0]]
    if boot[3:11] == b"NTFS    ":
        with open(node, "rb") as f:
            end = f.seek(0, os.SEEK_END)
        backup = _read(node, end - SECTOR, SECTOR)
        found.append(struct.unpack_from("<I", backup, 0x1C)[0])
    return found


def _restore(src: Source, target: str) -> None:
    skip = [a for f in FIXUPS for a in ("--skip-fixup", f)]
    rescue_cli("restore", "--repo", str(src.repo), "--disk", target, "--yes", "--verify",
               "--firmware", src.layout.firmware, *skip, check=True)


def _check_volumes(src: Source, target: str, where: Path) -> list[str]:
    """fsck, identities and files of every volume; returns the failures (so that one
    broken filesystem does not hide the state of the others)."""
    failures = []
    for i, vol in enumerate(src.layout.volumes):
        node = f"{target}p{vol.number}"
        try:
            if vol.lv:
                vg, lv = vol.lv.split("/")
                with existing_pv(node, vg) as pv, pv.lv_loop(lv, readonly=True) as loop:
                    _fsck(loop, vol.fstype)
                    _read_back(loop, vol, where / f"v{i}")
                continue
            got = blkid(node)
            for key in IDENTITY_KEYS:
                assert got.get(key) == src.identities[vol.number].get(key), (node, key)
            if vol.label:
                assert got.get("LABEL") == vol.label, node
            if vol.fstype == "LVM2_member":
                with existing_pv(node, "") as pv:
                    pv.lvm("vgck", vol_vg(src.layout))
                    found = pv.report("pvs", "-o", "vg_name", node)[0]["vg_name"]
                assert found == vol_vg(src.layout), node
            elif vol.fstype != "swap":
                _fsck(node, vol.fstype)
                _read_back(node, vol, where / f"v{i}")
        except (AssertionError, RuntimeError) as exc:
            failures.append(f"partition {vol.number} ({vol.fstype}{' ' + vol.lv if vol.lv else ''}"
                            f"{' ' + vol.subvol if vol.subvol else ''}): {exc}")
    return failures


def vol_vg(layout: Layout) -> str:
    return next(v.lv.split("/")[0] for v in layout.volumes if v.lv)


@pytest.mark.parametrize("larger", [False, True], ids=["equal", "larger"])
@pytest.mark.parametrize("name", list(BUILDERS))
def test_installer_layout_restores(name: str, larger: bool, sources, blank_disk,
                                   tmp_path: Path) -> None:
    src = sources(name)
    extra = GROW // SECTOR if larger else 0
    target = blank_disk(src.layout.size + extra * SECTOR, f"{name}-target")
    _restore(src, target)

    restored = sfdisk_json(target)
    assert restored["id"] == src.table["id"]
    assert _rows(restored) == _expected_rows(src, extra)

    failures = _check_volumes(src, target, tmp_path)
    if larger and src.layout.grows is not None:
        n = src.layout.grows
        fstype = src.identities[n]["TYPE"]
        before = _rows(src.table)[n]["size"] * SECTOR
        grown = _fs_bytes(f"{target}p{n}", fstype)
        if grown <= before + GROW - 8 * MiB:
            failures.append(f"partition {n} ({fstype}) did not grow: {grown} bytes, "
                            f"partition was {before}, now {before + GROW}")
    for n in src.layout.moves:
        row = _rows(restored)[n]
        if larger:
            last = restored.get("lastlba", src.layout.size // SECTOR + extra - 1)
            assert row["start"] + row["size"] - 1 == last, \
                "the moved partition is not at the end of the disk"
    for vol in src.layout.volumes:
        if vol.fstype in START_FIELD and not vol.lv:
            start = _rows(restored)[vol.number]["start"]
            fields = _hidden_sectors(f"{target}p{vol.number}")
            if any(f != start for f in fields):
                failures.append(f"partition {vol.number} ({vol.fstype}) starts at {start}; "
                                f"its boot sector says {fields} (hidden sectors, 0x1C)")
    assert not failures, "\n".join(failures)

