"""Paths inside a mounted system's tree, resolved as that system would resolve them.

A restored or backed-up system is mounted somewhere below the rescue system's own tree;
its symlinks (``/etc/fstab -> /usr/share/fstab``, ``/boot -> /``) mean paths of *that*
system. Followed naively they lead out of its tree, into the rescue system or a disk
mounted beside it, so every read, write and mount point inside such a tree goes through
:func:`resolve_in_root` (chroot semantics: an absolute link starts again at the tree's
top, ``..`` never climbs above it)."""

from __future__ import annotations

import os
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
    not there, not a regular file, or unreadable."""
    real = resolve_in_root(root, path)
    if real is None or real.is_symlink() or not real.is_file():
        return None
    try:
        with open(real, "rb") as f:
            return f.read(limit).decode("utf-8", errors="replace")
    except OSError:
        return None
