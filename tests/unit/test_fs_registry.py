"""rescue.fs.registry: one record per filesystem type, consistent with itself and with the
modules that act on it; and no other module keeps a per-type mount-options table."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rescue.engine import grow, rebuild
from rescue.fs import regions, registry
from rescue.fs.registry import RECORDS, FsTraits, traits

RESCUE = Path(__file__).resolve().parents[2] / "rescue"


@pytest.mark.parametrize("t", RECORDS, ids=lambda t: t.type)
def test_record_is_consistent(t: FsTraits) -> None:
    # a partclone program is partclone.<x>, and is the used-block source exactly then
    assert (t.partclone is not None) == (t.used_blocks == registry.PARTCLONE)
    if t.partclone:
        assert re.fullmatch(r"partclone\.[a-z0-9]+", t.partclone)
    assert t.used_blocks in (None, registry.DUMPE2FS, registry.FAT, registry.PARTCLONE,
                             registry.BTRFS_PROGS)
    # a rebuild (restore onto a smaller disk) names a function that exists, with a size
    if t.rebuild is not None:
        assert callable(rebuild.BUILDERS[t.rebuild]) and t.rebuild in rebuild.PROGRAMS
        assert t.min_bytes > 0
    assert not (t.recreate and t.used_blocks), "recreated or copied, not both"
    # grow / outside-map methods name functions that exist
    if t.grow is not None:
        assert t.grow in grow.METHODS and callable(getattr(grow, t.grow))
    assert t.shrink is None  # nothing shrinks today; a method would be named like grow's
    if t.outside_map is not None:
        assert t.outside_map in regions.READERS and callable(getattr(regions, t.outside_map))
    # a type that can hold a root is mounted read-only without replaying a log, and its
    # root is looked for; ext3/4 have a journal (noload), xfs a log (norecovery), btrfs a
    # log tree (nologreplay); ext2 has none
    if t.linux_root:
        assert t.root_container and t.ro_options is not None and t.check
        assert t.ro_options[0] == "ro"
        assert t.type == "ext2" or set(t.ro_options) & set(registry.NO_LOG_REPLAY)
    for options in (t.ro_options, t.rw_options):
        assert options is None or all(o and "," not in o for o in options)
    if t.ro_options is not None and not t.helper:
        assert t.ro_options[0] == "ro"
    assert not (t.twin_options and t.ro_options is None)
    assert not (t.kernel_fs and not t.helper), "only a FUSE helper mounts under another name"
    if t.check:
        assert t.check[0] and not any(a in ("-y", "-p", "-a", "--repair") for a in t.check)


def test_names_are_unique_and_resolve() -> None:
    names = [n for t in RECORDS for n in t.names]
    assert len(names) == len(set(names))
    for t in RECORDS:
        for n in t.names:
            assert traits(n) is t
    assert traits(None) is None and traits("") is None and traits("zfs_member") is None


def test_derived_sets_match_the_modules_that_use_them() -> None:
    from rescue.fs import bootsector, ext, fat, lvm, partclone
    from rescue.plan import fixups

    assert {"ext2", "ext3", "ext4"} == ext.EXT_TYPES
    assert {"vfat", "fat", "msdos"} == fat.FAT_TYPES
    assert fat.FAT_TYPES | {"ntfs", "exfat"} == bootsector.START_FIELD_TYPES
    assert ext.EXT_TYPES | {"xfs", "btrfs", "ntfs", lvm.LVM_PV} == grow.GROWABLE
    assert set(fixups.LINUX_ROOT_FILESYSTEMS) == {"ext2", "ext3", "ext4", "xfs", "btrfs"}
    assert set(fixups.ROOT_CONTAINERS) == {*fixups.LINUX_ROOT_FILESYSTEMS, lvm.LVM_PV}
    assert partclone.PROGRAMS["hfsplus"] == "partclone.hfsp"
    assert set(regions.TRAITS) == {"ntfs", "hfsplus", "btrfs", "exfat", "xfs"}


def test_mount_command_lines() -> None:
    assert registry.ro_mount_argv("ext4") == ["mount", "-t", "ext4", "-o", "ro,noload"]
    assert registry.ro_mount_argv("xfs") == ["mount", "-t", "xfs", "-o", "ro,norecovery"]
    assert registry.ro_mount_options("xfs", twin=True) == "ro,norecovery,nouuid"
    assert registry.ro_mount_argv("ntfs") == ["ntfs-3g", "-o", "ro"]
    assert registry.kernel_filesystem("ntfs") == "fuseblk"
    assert registry.ro_mount_argv("swap") is None and registry.ro_mount_argv("f2fs") is None
    assert registry.ro_mount_options("unknown") == "ro"
    assert registry.rw_mount_argv("vfat") == ["mount", "-w", "-t", "vfat", "-o", "noatime"]
    assert registry.rw_mount_argv("ntfs") == ["ntfs-3g", "-o", "rw"]
    assert registry.rw_mount_argv("iso9660") is None


def test_choose_method_asks_the_registry() -> None:
    from rescue.devices.layout import choose_method
    from rescue.image.manifest import (
        METHOD_NONE,
        METHOD_RECREATE,
        METHOD_USED_BLOCKS,
        METHOD_WHOLE,
        Partition,
    )

    def method(fstype: str, kind: str = "") -> str:
        p = Partition(number=1, start=2048, size=2048, type="83", filesystem=fstype)
        if kind:
            p.kind = kind
        return choose_method(p)

    assert method("ext4") == method("vfat") == method("msdos") == METHOD_USED_BLOCKS
    assert method("swap") == METHOD_RECREATE
    assert method("crypto_LUKS") == method("BitLocker") == method("LVM2_member") == \
        method("iso9660") == METHOD_WHOLE
    assert method("ext4", kind="extended") == METHOD_NONE


def test_registry_is_pure_and_cheap() -> None:
    code = ("import sys; import rescue.fs.registry; "
            "print(sorted(m for m in sys.modules if m.startswith('rescue')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert ast.literal_eval(out) == ["rescue", "rescue.fs", "rescue.fs.registry"]


# Mount options that only a per-type table needs; they belong in the registry.
_PER_TYPE_OPTIONS = {"noload", "norecovery", "rescue=nologreplay", "nouuid", "noatime"}


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                ids.add(id(body[0].value))
    return ids


def test_no_mount_option_table_outside_the_registry() -> None:
    found = []
    for path in sorted(RESCUE.rglob("*.py")):
        if path == RESCUE / "fs" / "registry.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        docs = _docstring_nodes(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in docs
                    and set(node.value.split(",")) & _PER_TYPE_OPTIONS):
                found.append(f"{path.relative_to(RESCUE.parent)}:{node.lineno}: {node.value!r}")
    assert not found, "per-type mount options outside rescue/fs/registry.py:\n" + "\n".join(found)


def test_kernel_modules_are_what_modprobe_can_load() -> None:
    # /proc/filesystems names are no module names: fs-<name> aliases are; FUSE is "fuse"
    assert registry.kernel_module("vfat") == "fs-vfat"
    assert registry.kernel_module("msdos") == "fs-vfat"
    assert registry.kernel_module("ext3") == "fs-ext3"
    assert registry.kernel_module("ntfs") == "fuse"
    assert registry.kernel_filesystem("ntfs") == "fuseblk"
    assert registry.kernel_module("zonefs") == "fs-zonefs"
