"""Who the source system is: computer name, OS and time zone, read from its own root
filesystem without writing to it (debugfs in read-only catastrophic mode for ext*,
otherwise a private read-only mount that never replays a journal).

:class:`SourceIdentity` is who the backed-up system says it is; the hardware it ran on is
:class:`rescue.hardware.profile.HardwareProfile` (whose ``SystemInfo`` is the DMI board)."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rescue.fs.ext import EXT_TYPES
from rescue.image.manifest import Disk
from rescue.runner import CommandRunner

RO_MOUNT_OPTIONS = {
    "xfs": "ro,norecovery",
    "btrfs": "ro,rescue=nologreplay",
    "ext2": "ro",
    "ext3": "ro,noload",
    "ext4": "ro,noload",
}


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


Reader = Callable[[str], str | None]


def _debugfs_reader(node: str, runner: CommandRunner) -> Reader:
    def read(path: str) -> str | None:
        for _ in range(8):  # follow a few symlinks
            stat = runner.run(["debugfs", "-c", "-R", f"stat {path}", node], check=False)
            link = re.search(r'Fast link dest: "([^"]*)"', stat.stdout)
            if link:
                target = link.group(1)
                path = target if target.startswith("/") else os.path.normpath(
                    os.path.join(os.path.dirname(path), target)
                )
                continue
            if "Type: regular" not in stat.stdout:
                return None
            return runner.run(["debugfs", "-c", "-R", f"cat {path}", node], check=False).stdout
        return None

    return read


def _localtime_target(read_link: Callable[[str], str | None]) -> str:
    target = read_link("/etc/localtime") or ""
    m = re.search(r"zoneinfo/(.+)$", target)
    return m.group(1) if m else ""


@contextlib.contextmanager
def _mounted_reader(node: str, fstype: str, runner: CommandRunner) -> Iterator[Reader]:
    options = RO_MOUNT_OPTIONS.get(fstype, "ro")
    with tempfile.TemporaryDirectory(prefix="rescue-src-") as mnt:
        result = runner.run(["mount", "-t", fstype, "-o", options, node, mnt], check=False)
        if result.returncode != 0:
            yield lambda path: None
            return
        try:
            def read(path: str) -> str | None:
                full = os.path.join(mnt, path.lstrip("/"))
                real = os.path.realpath(full)
                if not real.startswith(os.path.realpath(mnt)):
                    # an absolute symlink: resolve inside the mount
                    real = os.path.join(mnt, os.path.relpath(real, "/"))
                try:
                    with open(real, errors="replace") as f:
                        return f.read()
                except OSError:
                    return None

            yield read
        finally:
            runner.run(["umount", mnt], check=False)


def read_source_identity(
    disk: Disk, nodes: dict[int, str], runner: CommandRunner
) -> SourceIdentity:
    """Find the partition holding /etc/os-release and read the identity from it."""
    candidates = sorted(
        (p for p in disk.partitions if p.filesystem in EXT_TYPES | set(RO_MOUNT_OPTIONS)),
        key=lambda p: -p.size,
    )
    for part in candidates:
        node = nodes[part.number]
        fstype = part.filesystem or ""
        if fstype in EXT_TYPES:
            info = _identity(_debugfs_reader(node, runner), node, runner, debugfs=True)
        else:
            with _mounted_reader(node, fstype, runner) as reader:
                info = _identity(reader, node, runner, debugfs=False)
        if info is not None:
            info.root_partition = part.number
            return info
    return SourceIdentity()


def _identity(
    read: Reader, node: str, runner: CommandRunner, debugfs: bool
) -> SourceIdentity | None:
    osr = read("/etc/os-release") or read("/usr/lib/os-release")
    if osr is None:
        return None
    fields = parse_os_release(osr)
    hostname = (read("/etc/hostname") or "").strip().splitlines()
    tz = (read("/etc/timezone") or "").strip()
    if not tz and debugfs:
        stat = runner.run(["debugfs", "-c", "-R", "stat /etc/localtime", node], check=False)
        m = re.search(r'Fast link dest: "([^"]*)"', stat.stdout)
        tz = _localtime_target(lambda _p: m.group(1) if m else None)
    return SourceIdentity(
        computer=hostname[0].strip() if hostname else "",
        os_name=fields.get("PRETTY_NAME", fields.get("NAME", "")),
        os_id=fields.get("ID", ""),
        os_version=fields.get("VERSION_ID", ""),
        timezone=tz,
    )
