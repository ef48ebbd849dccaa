"""Writing files of the restored system: every write, new folder and removal the fix-ups
make under the restored root goes through here.

A path is looked up inside the root as that system would look it up
(:func:`rescue.devices.inroot.open_in_root`: through open folders, a link's target taken
inside the root, ``..`` never above it), and the work is done relative to the folder found,
never by a path again: a file is replaced through a new temporary file (``O_CREAT|O_EXCL|
O_NOFOLLOW``) in that folder, renamed over the name (a rename never follows a link).

The folder must lie on the restored root's filesystem or on its /boot (when /boot is a
real folder): once /dev, /proc, /sys and /run of the live system are bound into the root
for the chroot, a link such as ``etc/initramfs-tools -> /run/x`` resolves inside the root
to a folder of the live system; such a write (or a read of a file to rewrite:
:func:`read_in_root`) is refused (:class:`OutsideRoot`)."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from rescue.devices.inroot import open_in_root, read_bytes_at
from rescue.engine.bootfix.context import StepFailed
from rescue.i18n import _

NEW_FILE_MODE = 0o644
NEW_DIR_MODE = 0o755


class OutsideRoot(StepFailed):
    """A write would land outside the restored system's own filesystems."""


def _devices(root: Path) -> set[int]:
    """The filesystems a write may land on: the root's and its /boot's (a real folder,
    perhaps a mount point; never a link)."""
    devs = {os.stat(root).st_dev}
    with contextlib.suppress(OSError):
        st = os.stat(root / "boot", follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            devs.add(st.st_dev)
    return devs


@contextlib.contextmanager
def _folder(root: Path, path: str, follow_last: bool = True) -> Iterator[tuple[int, str]]:
    """``(dir_fd, name)`` of *path* inside *root*, the folder checked to be on the restored
    system's filesystems; the descriptor is closed on leaving."""
    dir_fd, name = open_in_root(root, path, follow_last=follow_last)
    try:
        if name in (".", "..") or os.fstat(dir_fd).st_dev not in _devices(root):
            raise OutsideRoot(_(
                "{path} in the restored system leads out of it (through a symbolic link); "
                "rescue does not write there."
            ).format(path="/" + path.lstrip("/")))
        yield dir_fd, name
    finally:
        os.close(dir_fd)


def write_in_root(root: Path, path: str, data: str | bytes,
                  follow_last: bool = True) -> None:
    """Put *data* into the file *path* inside *root*, replacing it whole (its mode and
    owner kept). *follow_last*: a link at *path* is followed inside the root (a file of the
    system, such as /etc/fstab -> /usr/share/fstab); False: a link there is replaced by the
    file (a file of rescue's own, such as a backup). A folder on the way that is missing
    raises ``FileNotFoundError``."""
    raw = data.encode() if isinstance(data, str) else data
    with _folder(root, path, follow_last) as (dir_fd, name):
        mode, owner = NEW_FILE_MODE, None
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(f"/{path.lstrip('/')} is a folder")
            if stat.S_ISREG(st.st_mode):
                mode, owner = stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)
        tmp = f".{name}.rescue-{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode, dir_fd=dir_fd)
        try:
            try:
                os.fchmod(fd, mode)
                if owner is not None:
                    os.fchown(fd, *owner)
                view = memoryview(raw)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise


def remove_in_root(root: Path, path: str) -> None:
    """Remove the file (or link) *path* inside *root*, if it is there; the link itself,
    never what it points to."""
    with _folder(root, path, follow_last=False) as (dir_fd, name), \
            contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


def make_dirs_in_root(root: Path, path: str) -> None:
    """The folder *path* inside *root* and the folders above it, made where missing (a
    link on the way is followed inside the root)."""
    parts = [c for c in path.split("/") if c and c != "."]
    for i in range(1, len(parts) + 1):
        with _folder(root, "/".join(parts[:i])) as (dir_fd, name), \
                contextlib.suppress(FileExistsError):
            os.mkdir(name, NEW_DIR_MODE, dir_fd=dir_fd)


def read_in_root(root: Path, path: str, limit: int) -> str | None:
    """The whole text of the regular file *path* inside *root*, found as a write would be
    (on the restored system's filesystems: else :class:`OutsideRoot`), never a FIFO or a
    device (:func:`rescue.devices.inroot.read_bytes_at`); None when it is not there or no
    regular file. A file longer than *limit* bytes is refused (:class:`StepFailed`): it
    would be rewritten cut short."""
    try:
        with _folder(root, path) as (dir_fd, name):
            data = read_bytes_at(dir_fd, name, limit + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if data is None:
        return None
    if len(data) > limit:
        raise StepFailed(_("{path} in the restored system is larger than {size} bytes; "
                           "rescue does not change it.").format(
                               path="/" + path.lstrip("/"), size=limit))
    return data.decode("utf-8", errors="replace")
