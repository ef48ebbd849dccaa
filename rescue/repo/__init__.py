"""Where a repository lives, and the one door to open it.

    location = Location.parse("smb://tech:pw@nas/backups/rescue")   # pure: no I/O
    with open_repository(location) as repo:               # a RepositoryReader
        repo.load_manifest("latest")
    with open_repository(location, write=True) as repo:   # a RepositoryWriter
        ...                                              # (what a backup needs)

A location's kind picks its opener from :data:`OPENERS`, one module each: a folder
(:mod:`rescue.repo.folder`), a web server, read-only (:mod:`rescue.repo.http`), an SMB
or NFS share, mounted for the block and opened as a folder (:mod:`rescue.repo.share`).
A new backend (S3, say) is one more module with an ``opened(location, write, runner)``
context manager, its kind in :data:`~rescue.repo.location.KINDS` and its URL scheme in
:data:`~rescue.repo.location.SCHEMES`.

The repository format itself (:mod:`rescue.image`) sits below this package and never
mounts anything; this package may (through :mod:`rescue.sysmount` only).
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol, overload

from rescue.image.repository import RepositoryReader, RepositoryWriter
from rescue.repo import folder, http, network, share
from rescue.repo.location import FOLDER, HTTP, KINDS, NFS, SMB, Location, Share, display
from rescue.runner import CommandRunner

__all__ = [
    "FOLDER", "HTTP", "KINDS", "NFS", "OPENERS", "SMB", "Location", "RepositoryReader",
    "RepositoryWriter", "Share", "display", "open_repository",
]

LocationLike = str | os.PathLike[str] | Location


class Opener(Protocol):
    def __call__(self, location: Location, write: bool,
                 runner: CommandRunner | None) -> AbstractContextManager[Any]: ...


#: kind -> the context manager that opens a repository of that kind
OPENERS: dict[str, Opener] = {
    FOLDER: folder.opened,
    HTTP: http.opened,
    SMB: share.opened,
    NFS: share.opened,
}


@overload
def open_repository(location: LocationLike, write: Literal[False] = False,
                    runner: CommandRunner | None = None
                    ) -> AbstractContextManager[RepositoryReader]: ...


@overload
def open_repository(location: LocationLike, write: Literal[True],
                    runner: CommandRunner | None = None
                    ) -> AbstractContextManager[RepositoryWriter]: ...


@overload
def open_repository(location: LocationLike, write: bool,
                    runner: CommandRunner | None = None
                    ) -> AbstractContextManager[RepositoryReader | RepositoryWriter]: ...


def open_repository(location: LocationLike, write: bool = False,
                    runner: CommandRunner | None = None) -> AbstractContextManager[Any]:
    """The repository at *location* (text is parsed: :meth:`Location.parse`), open for
    the ``with`` block: for reading, or with *write* for a backup (created when missing).
    A share stays mounted until the block ends. Raises a RescueError with a sentence for
    the technician when the location names no repository that can be opened so."""
    where = Location.parse(location)
    if where.kind != FOLDER:
        network.wait_for_route()  # a DHCP lease may still be on its way (network.py)
    return OPENERS[where.kind](where, write, runner)
