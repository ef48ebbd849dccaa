"""Paths inside a mounted system's tree, resolved as that system would resolve them.

A restored or backed-up system is mounted somewhere below the rescue system's own tree;
its symlinks (``/etc/fstab -> /usr/share/fstab``, ``/boot -> /``) mean paths of *that*
system. Followed naively they lead out of its tree, into the rescue system or a disk
mounted beside it, so every read, write and mount point inside such a tree goes through
:func:`resolve_in_root` (chroot semantics: an absolute link starts again at the tree's
top, ``..`` never climbs above it)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

MAX_LINKS = 40  # as the kernel's own limit on symlinks in one lookup
READ_LIMIT = 64 * 1024  # identity and configuration files are small


def resolve_in_root(root: str | os.PathLike[str], path: str,
                    follow_last: bool = True) -> Path | None:
    """*path* (absolute or relative, as the system inside *root* names it) as a real path
    below *root* with no symlink left in it (the last component too, unless
    *follow_last* is False). None when the links loop."""
    top = os.fspath(root)
    pending = [c for c in path.split("/") if c]
    done: list[str] = []
    hops = 0
    while pending:
        name = pending.pop(0)
        if name == ".":
            continue
        if name == "..":
            if done:
                done.pop()
            continue
        here = os.path.join(top, *done, name)
        if os.path.islink(here) and (pending or follow_last):
            hops += 1
            if hops > MAX_LINKS:
                return None
            try:
                target = os.readlink(here)
            except OSError:
                return None
            if target.startswith("/"):
                done = []
            pending[:0] = [c for c in target.split("/") if c]
            continue
        done.append(name)
    return Path(top, *done)


def in_root(root: str | os.PathLike[str], path: str) -> Path:
    """Like :func:`resolve_in_root`; a looping path becomes one that does not exist."""
    found = resolve_in_root(root, path)
    return found if found is not None else Path(root, ".rescue-unresolvable-link")


def read_text_in_root(root: str | os.PathLike[str], path: str,
                      limit: int = READ_LIMIT) -> str | None:
    """The first *limit* bytes of a regular file inside *root* as text; None when it is
    not there, not a regular file, or unreadable (see :func:`read_bytes_in_root`)."""
    data = read_bytes_in_root(root, path, limit)
    return None if data is None else data.decode("utf-8", errors="replace")


def open_in_root(root: str | os.PathLike[str], path: str,
                 follow_last: bool = True) -> tuple[int, str]:
    """The directory holding *path* inside *root*, and the name in it, reached as
    :func:`resolve_in_root` would, but through open directories: every component is
    opened relative to the one before it without following a link (``O_NOFOLLOW``), a link
    is read and its target looked up again inside *root*, ``..`` never climbs above it.
    No later change of the tree moves the returned descriptor elsewhere.

    Returns ``(dir_fd, name)``: *dir_fd* an ``O_PATH`` descriptor of a real directory
    (the caller closes it), *name* the last component, no link (unless *follow_last* is
    False) and perhaps absent; ``"."`` for *root* itself. Raises ``FileNotFoundError``
    when a folder on the way is missing, ``NotADirectoryError`` when one is no folder,
    ``OSError(ELOOP)`` when the links loop."""
    top = os.open(root, os.O_PATH | os.O_DIRECTORY)
    stack = [top]  # the open folders from *root* down; stack[0] is *root*
    pending = [c for c in path.split("/") if c]
    hops = 0
    try:
        while pending:
            name = pending.pop(0)
            if name == ".":
                continue
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            last = not pending
            try:
                st = os.stat(name, dir_fd=stack[-1], follow_symlinks=False)
            except FileNotFoundError:
                if last:
                    return os.dup(stack[-1]), name
                raise
            if stat.S_ISLNK(st.st_mode) and (follow_last or not last):
                hops += 1
                if hops > MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(name, dir_fd=stack[-1])
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                pending[:0] = [c for c in target.split("/") if c]
                continue
            if last:
                return os.dup(stack[-1]), name
            fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW,
                         dir_fd=stack[-1])
            stack.append(fd)
        return os.dup(stack[-1]), "."
    finally:
        for fd in stack:
            os.close(fd)


def read_bytes_in_root(root: str | os.PathLike[str], path: str,
                       limit: int = READ_LIMIT) -> bytes | None:
    """The first *limit* bytes of a regular file inside *root* (found through
    :func:`open_in_root`, read by :func:`read_bytes_at`); None when it is not there, not a
    regular file, or unreadable."""
    try:
        dir_fd, name = open_in_root(root, path)
    except OSError:
        return None
    try:
        return read_bytes_at(dir_fd, name, limit)
    finally:
        os.close(dir_fd)


def read_bytes_at(dir_fd: int, name: str, limit: int = READ_LIMIT) -> bytes | None:
    """The first *limit* bytes of the regular file *name* in the folder *dir_fd*, opened
    without following a link and without waiting (a FIFO), checked to be a regular file
    (no device); None otherwise, or when it is missing or unreadable."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit)
    except OSError:
        return None
    finally:
        os.close(fd)
