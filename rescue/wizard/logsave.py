"""Save the logs on a USB stick: which filesystems can take them (probe), the checks
before writing (plan), and mounting one read-write in a private directory, writing the
file and unmounting again (execute). No textual here: :class:`EngineServices` calls it
from a worker thread.

Public API::

    writable_media(inventory, exclude=(), rw_mounts=None) -> list[LogMedium]
    rw_mountpoints(mounts) -> {"MAJ:MIN": mountpoint}   # read-write mounts only
    recheck(medium, inventory, rw_mounts) -> LogMedium   # still there, still writable
    with mounted_rw(medium, runner) as folder: ...       # unmounted on leaving, always
    gather(runner, log_file, report_file, inventory) -> str
    write_logs(folder, text, now, where) -> Path         # rescue-logs-<UTC stamp>.txt, fsynced

Offered: vfat, exfat, ext2/3/4, ntfs (ntfs-3g), xfs and btrfs filesystems (those with
read-write mount options in :mod:`rescue.fs.registry`, mounted ``noatime``) on disks (and
loop devices when the inventory includes them), removable and USB ones first. Never: the
boot medium or the disk holding the running system, read-only disks and partitions,
filesystems mounted only read-only (except the image search's own mounts, which the
caller releases first: the stick holding the images takes the logs too), members of RAID,
LVM or encryption, and the disks in *exclude* (the restore target).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from rescue import __version__, sysmount
from rescue.devices import mounts as _mounts
from rescue.devices.disks import KIND_DISK, KIND_LOOP, Inventory, devstr
from rescue.errors import DeviceError, RescueError, from_oserror
from rescue.fs import registry
from rescue.hardware.profile import collect_profile
from rescue.i18n import _
from rescue.repo.location import redact
from rescue.runner import CommandRunner
from rescue.wizard.model import LogMedium

log = logging.getLogger(__name__)

PURPOSE = "logs"  # private mount points are /run/rescue-logs-XXXX
FILES_PURPOSE = "files"  # ... and /run/rescue-files-XXXX for files copied out of an image
DMESG_LINES = 500


def rw_mountpoints(mounts: Iterable[_mounts.Mount]) -> dict[str, str]:
    """``MAJ:MIN`` -> the first read-write mountpoint of each mounted block device."""
    out: dict[str, str] = {}
    for m in mounts:
        devnum = _mounts.block_devnum(m) if m.read_write else None
        if devnum is not None:
            out.setdefault(devstr(devnum), m.mountpoint)
    return out


def writable_media(
    inventory: Inventory, exclude: Iterable[str] = (), rw_mounts: dict[str, str] | None = None,
    releasable: Iterable[str] = (),
) -> list[LogMedium]:
    """The filesystems the logs may be written to (see the module docstring); pure.
    *releasable*: read-only mount points the caller can let go of before writing (the
    image search's own), so the stick holding the images can take the logs too."""
    release = set(releasable)
    rw = rw_mounts or {}
    excluded = set()
    for ref in exclude:
        found = inventory.locate(ref)
        if found is not None:
            excluded.add(found[0].dev)
    media: list[LogMedium] = []
    for disk in inventory.disks:
        if (disk.dev in excluded or "boot-medium" in disk.roles or disk.read_only
                or disk.kind not in (KIND_DISK, KIND_LOOP) or disk.size == 0):
            continue
        filesystems: list[Any] = list(disk.partitions)
        if disk.fstype and not disk.partitions:
            filesystems = [disk]  # a stick formatted without a partition table
        for fs in filesystems:
            if fs.fstype not in registry.writable() or fs.read_only or fs.holders or fs.swap:
                continue
            mountpoint = rw.get(fs.dev, "")
            held = [m for m in fs.mountpoints if m not in release]
            if held and not mountpoint:
                continue  # mounted read-only only, by someone else
            media.append(LogMedium(
                device=fs.path, name=fs.name, fstype=fs.fstype, label=fs.label, uuid=fs.uuid,
                transport=disk.transport or disk.kind, size_bytes=fs.size,
                removable=disk.removable, mountpoint=mountpoint,
            ))
    # Removable and USB media first; otherwise the inventory's order (disk, partition).
    order = {m.device: i for i, m in enumerate(media)}
    return sorted(media, key=lambda m: (not (m.removable or m.transport == "usb"),
                                        order[m.device]))


def recheck(medium: LogMedium, inventory: Inventory, rw_mounts: dict[str, str],
            files: bool = False) -> LogMedium:
    """The chosen *medium* as it is now (its current mountpoint), or a sentence why the
    logs (*files*: files copied out of an image) cannot go there any more (pulled out,
    another stick, mounted read-only...)."""
    found = inventory.locate(medium.device)
    if found is None:
        raise DeviceError(_("{medium} is not attached any more; plug the USB stick in again "
                            "and choose it once more.").format(medium=medium.short))
    disk, part = found
    fs: Any = part or disk
    if fs.fstype != medium.fstype or (medium.uuid and fs.uuid != medium.uuid):
        raise DeviceError(_("{device} now holds another filesystem than the one chosen; "
                            "choose the USB stick again.").format(device=medium.device))
    now = next((m for m in writable_media(inventory, (), rw_mounts)
                if m.device == medium.device), None)
    if now is None:
        if files:
            raise DeviceError(_("The files cannot be copied to {medium}: it is read-only, "
                                "mounted read-only or in use.").format(medium=medium.short))
        raise DeviceError(_("The logs cannot be written to {medium}: it is read-only, "
                            "mounted read-only or in use.").format(medium=medium.short))
    return now


def _mount_is_rw(mountpoint: str) -> bool | None:
    """Whether *mountpoint* is mounted read-write (None: not a mountpoint)."""
    for m in _mounts.current_mounts():
        if m.mountpoint == mountpoint:
            return m.read_write
    return None


@contextlib.contextmanager
def mounted_rw(
    medium: LogMedium, runner: CommandRunner, base: str | None = None, files: bool = False
) -> Iterator[Path]:
    """The folder of *medium* mounted read-write: its own mountpoint when it is already
    mounted read-write (left mounted), otherwise a private directory under /run that is
    unmounted and removed on leaving the block, also after an error. *files*: for files
    copied out of an image (``/run/rescue-files-*``; the sentences say so)."""
    if medium.mountpoint:
        yield Path(medium.mountpoint)
        return
    if registry.rw_mount_argv(medium.fstype) is None:
        raise DeviceError(_("The logs cannot be saved on a {fstype} filesystem.").format(
            fstype=medium.fstype))
    with contextlib.ExitStack() as stack:
        try:
            private = stack.enter_context(sysmount.mounted(
                medium.device, medium.fstype, mode=sysmount.RW, runner=runner,
                purpose=FILES_PURPOSE if files else PURPOSE, base=base))
        except sysmount.MountError as exc:
            if files:
                raise DeviceError(_("{medium} ({fstype}) could not be mounted to copy the "
                                    "files: {why}. Try another USB stick, or type a "
                                    "folder.").format(medium=medium.short,
                                                      fstype=medium.fstype,
                                                      why=exc.detail or exc)) from exc
            raise DeviceError(_("{medium} ({fstype}) could not be mounted to save the logs: "
                                "{why}. Try another USB stick, or type a folder.").format(
                medium=medium.short, fstype=medium.fstype, why=exc.detail or exc)) from exc
        if _mount_is_rw(str(private)) is not True and files:
            raise DeviceError(_("{medium} is read-only (is the stick's write-protect switch "
                                "on?); nothing was copied.").format(medium=medium.short))
        if _mount_is_rw(str(private)) is not True:
            raise DeviceError(_("{medium} is read-only (is the stick's write-protect switch "
                                "on?); the logs were not saved.").format(medium=medium.short))
        yield private


def _section(title: str, body: str) -> str:
    return f"\n===== {title} =====\n{body.rstrip()}\n"


def _command(runner: CommandRunner, argv: list[str], tail: int | None = None) -> str:
    try:
        res = runner.run(argv, check=False)
    except RescueError as exc:  # not installed
        return f"({exc})"
    text = res.stdout if res.returncode == 0 else (res.stdout + res.stderr)
    if tail is not None:
        text = "\n".join(text.splitlines()[-tail:])
    return text or f"(no output; exit code {res.returncode})"


def gather(
    runner: CommandRunner, log_file: Path, report_file: Path, inventory: Any
) -> str:
    """The text of the log file: wizard log, restore report, journal of this boot, the
    kernel's last messages, the disks (the inventory) and the hardware profile; without
    passwords (:func:`rescue.repo.location.redact`)."""
    try:
        wizard_log = log_file.read_text(errors="replace")
    except OSError:
        wizard_log = "(no wizard log)"
    try:
        report = report_file.read_text(errors="replace")
    except OSError:
        report = "(no restore report)"
    if isinstance(inventory, BaseException):
        disks = f"(the disks could not be listed: {inventory})"
    else:
        disks = json.dumps(inventory.to_dict(), indent=2)
    try:
        hardware = json.dumps(collect_profile().to_dict(), indent=2)
    except Exception as exc:  # noqa: BLE001 - the logs are saved without it
        hardware = f"(the hardware profile could not be read: {exc})"
    # Passwords out of everything: the journal and dmesg carry the kernel command line
    # (rescue.repo=smb://user:pw@...), the wizard log and the report repository addresses.
    return redact("".join([
        f"rescue {__version__} logs, written {datetime.now().astimezone().isoformat()}\n",
        _section("wizard log", wizard_log),
        _section("restore report", report),
        _section("journal of this boot (journalctl -b)",
                 _command(runner, ["journalctl", "-b", "--no-pager"])),
        _section(f"kernel messages (dmesg, last {DMESG_LINES} lines)",
                 _command(runner, ["dmesg"], tail=DMESG_LINES)),
        _section("disks (inventory)", disks),
        _section("hardware profile", hardware),
    ]))


def log_file_name(now: datetime) -> str:
    return f"rescue-logs-{now:%Y%m%dT%H%M%SZ}.txt"


def write_logs(folder: Path, text: str, now: datetime, where: str) -> Path:
    """Write ``rescue-logs-<UTC stamp>.txt`` into *folder* and fsync it (and the folder);
    a partly written file is removed. *where* names the destination in errors."""
    path = folder / log_file_name(now)
    for n in range(1, 100):  # never overwrite logs saved the same second
        if not path.exists():
            break
        path = folder / log_file_name(now).replace(".txt", f"-{n}.txt")
    fd = -1
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600)
        data = text.encode("utf-8", errors="replace")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except OSError as exc:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
            fd = -1
            with contextlib.suppress(OSError):
                path.unlink()
        raise from_oserror(exc, _("Saving the logs to {where}").format(where=where)) from exc
    finally:
        if fd >= 0:
            os.close(fd)
    # The new directory entry too (best effort: some filesystems refuse, e.g. EINVAL;
    # unmounting writes it anyway).
    with contextlib.suppress(OSError):
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return path
