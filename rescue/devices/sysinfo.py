"""Who the source system is: computer name, OS and time zone, read from its own root
filesystem without writing to it (debugfs in read-only catastrophic mode for ext*,
otherwise a private read-only mount that never replays a journal).

The root is the filesystem holding /etc/os-release, wherever it lives:

* plain on a partition (ext*, xfs, btrfs...);
* in a btrfs subvolume: the top level is mounted read-only (``subvolid=5``) and the
  default subvolume (``btrfs subvolume get-default``), ``root`` (Fedora), ``@`` (Ubuntu,
  openSUSE), the top level itself and then any other subvolume are looked at, in that
  order, as directories of that one mount;
* in a linear LVM logical volume on a PV partition (blkid ``LVM2_member``): the LVM
  metadata is read with ``lvm pvs/lvs --readonly --devices NODE`` under a private,
  temporary ``LVM_SYSTEM_DIR`` (no devices file, no hints, no backups: the host's LVM state
  is neither read nor written), and each LV made of contiguous linear extents on that PV
  is opened through a read-only loop device (``losetup -r --offset --sizelimit``), so no
  device-mapper is needed. The loop device is always detached again.

:class:`SourceIdentity` is who the backed-up system says it is; the hardware it ran on is
:class:`rescue.hardware.profile.HardwareProfile` (whose ``SystemInfo`` is the DMI board)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rescue import sysmount
from rescue.devices.blockdev import blkid_probe
from rescue.devices.inroot import READ_LIMIT, read_text_in_root, resolve_in_root
from rescue.fs import registry
from rescue.fs.ext import EXT_TYPES
from rescue.fs.lvm import LVM_PV, lv_loop, read_linear_lvs
from rescue.image.manifest import Disk
from rescue.runner import CommandRunner

BTRFS_TOP_LEVEL = 5
# Where distributions put the root subvolume, after the default subvolume.
BTRFS_ROOT_NAMES = ("root", "@")



@dataclass
class SourceIdentity:
    computer: str = ""
    os_name: str = ""
    os_id: str = ""
    os_version: str = ""
    timezone: str = ""
    root_partition: int | None = None


def parse_os_release(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Z_]+)=(.*)$", line.strip())
        if m:
            out[m.group(1)] = m.group(2).strip().strip('"').strip("'")
    return out


@dataclass
class _Reader:
    """Reads a system's files by their path inside that system."""

    read: Callable[[str], str | None]  # a regular file's text (symlinks followed)
    link: Callable[[str], str | None]  # a symlink's target


# --------------------------------------------------------------------------- ext: debugfs


def _debugfs_reader(node: str, runner: CommandRunner) -> _Reader:
    def stat(path: str) -> str:
        return runner.run(["debugfs", "-c", "-R", f"stat {path}", node],
                          check=False).stdout

    def link(path: str) -> str | None:
        m = re.search(r'Fast link dest: "([^"]*)"', stat(path))
        return m.group(1) if m else None

    def read(path: str) -> str | None:
        for _ in range(8):  # follow a few symlinks
            info = stat(path)
            target = re.search(r'Fast link dest: "([^"]*)"', info)
            if target:
                dest = target.group(1)
                path = dest if dest.startswith("/") else os.path.normpath(
                    os.path.join(os.path.dirname(path), dest)
                )
                continue
            if "Type: regular" not in info:
                return None
            size = re.search(r"\bSize:\s+(\d+)", info)
            if size is None or int(size.group(1)) > READ_LIMIT:
                return None  # identity files are small; a huge one is not read whole
            return runner.run(["debugfs", "-c", "-R", f"cat {path}", node],
                              check=False).stdout
        return None

    return _Reader(read, link)


# --------------------------------------------------------------------------- mounted trees


def _tree_reader(root: str) -> _Reader:
    """Reads below the directory *root* as if it were "/": symlinks, absolute or
    relative, never lead out of it."""

    def read(path: str) -> str | None:
        return read_text_in_root(root, path)

    def link(path: str) -> str | None:
        real = resolve_in_root(root, path, follow_last=False)
        try:
            return os.readlink(real) if real else None
        except OSError:
            return None

    return _Reader(read, link)


@contextlib.contextmanager
def _mounted(
    node: str, fstype: str, runner: CommandRunner, extra: str = ""
) -> Iterator[str | None]:
    """A private read-only mount of *node* (None when it does not mount)."""
    with sysmount.probed(node, fstype, runner=runner, options=(extra,) if extra else (),
                         twin=True, purpose="src") as mnt:
        yield str(mnt) if mnt is not None else None


# --------------------------------------------------------------------------- btrfs


def _subvolume_path(line: str) -> str | None:
    m = re.search(r"\bpath (.+)$", line.strip())
    return m.group(1).strip().lstrip("/") if m else None


def btrfs_root_candidates(default: str, listing: str) -> list[str]:
    """Subvolume paths (relative to the top level, "" for the top level itself) where a
    root may be, most likely first, from ``btrfs subvolume get-default`` and ``btrfs
    subvolume list`` run on the mounted top level."""
    listed = [p for p in map(_subvolume_path, listing.splitlines()) if p]
    order: list[str] = []
    default_path = _subvolume_path(default)
    if default_path:
        order.append(default_path)
    order += [n for n in BTRFS_ROOT_NAMES if n in listed]
    order.append("")
    order += sorted(listed, key=lambda p: (p.count("/"), p))
    return list(dict.fromkeys(order))


def _identity_in_btrfs(node: str, runner: CommandRunner) -> SourceIdentity | None:
    if shutil.which("btrfs") is None:  # btrfs-progs absent: no subvolume listing
        with _mounted(node, "btrfs", runner) as mnt:
            return None if mnt is None else _identity(_tree_reader(mnt))
    with _mounted(node, "btrfs", runner, f"subvolid={BTRFS_TOP_LEVEL}") as top:
        if top is None:
            return None
        default = runner.run(["btrfs", "subvolume", "get-default", top], check=False)
        listing = runner.run(["btrfs", "subvolume", "list", top], check=False)
        for path in btrfs_root_candidates(default.stdout, listing.stdout):
            where = os.path.join(top, path)
            if not os.path.isdir(where) or os.path.islink(where):
                continue
            info = _identity(_tree_reader(where))
            if info is not None:
                return info
    return None


# --------------------------------------------------------------------------- LVM


def _identity_in_lvm(node: str, runner: CommandRunner) -> SourceIdentity | None:
    for lv in read_linear_lvs(node, runner):
        with lv_loop(node, lv, runner) as dev:
            if dev is None:
                continue
            fstype = blkid_probe(dev, runner).get("TYPE", "")
            info = _identity_of_volume(dev, fstype, runner)
            if info is not None:
                return info
    return None


# --------------------------------------------------------------------------- the root


def _identity_of_volume(node: str, fstype: str, runner: CommandRunner) -> SourceIdentity | None:
    if fstype in EXT_TYPES:
        return _identity(_debugfs_reader(node, runner))
    if fstype == "btrfs":
        return _identity_in_btrfs(node, runner)
    if fstype in registry.linux_root_types():
        with _mounted(node, fstype, runner) as mnt:
            return None if mnt is None else _identity(_tree_reader(mnt))
    return None


def read_source_identity(
    disk: Disk, nodes: dict[int, str], runner: CommandRunner
) -> SourceIdentity:
    """Find the filesystem holding /etc/os-release (on a partition, in a btrfs
    subvolume or in a linear LVM logical volume) and read the identity from it."""
    kinds = registry.root_container_types()
    candidates = sorted((p for p in disk.partitions if p.filesystem in kinds),
                        key=lambda p: -p.size)
    for part in candidates:
        node = nodes[part.number]
        fstype = part.filesystem or ""
        if fstype == LVM_PV:
            info = _identity_in_lvm(node, runner)
        else:
            info = _identity_of_volume(node, fstype, runner)
        if info is not None:
            info.root_partition = part.number
            return info
    return SourceIdentity()


def _identity(reader: _Reader) -> SourceIdentity | None:
    osr = reader.read("/etc/os-release") or reader.read("/usr/lib/os-release")
    if osr is None:
        return None
    fields = parse_os_release(osr)
    hostname = (reader.read("/etc/hostname") or "").strip().splitlines()
    tz = (reader.read("/etc/timezone") or "").strip()
    if not tz:
        m = re.search(r"zoneinfo/(.+)$", reader.link("/etc/localtime") or "")
        tz = m.group(1) if m else ""
    return SourceIdentity(
        computer=hostname[0].strip() if hostname else "",
        os_name=fields.get("PRETTY_NAME", fields.get("NAME", "")),
        os_id=fields.get("ID", ""),
        os_version=fields.get("VERSION_ID", ""),
        timezone=tz,
    )
