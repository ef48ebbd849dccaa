"""A folder on this machine: a USB disk, a mounted filesystem, a share's folder once
mounted. The repository itself is :class:`rescue.image.repository.Repository` (the
format's reference reader and writer); this opens it.

A repository opened for writing is locked for one writer for the ``with`` block
(:func:`rescue.image.repository.writer_lock`): a second backup, delete or prune of the
same repository, from this machine or another one on the share, is refused with a
sentence naming the holder. Inside :func:`breaking_lock` a lock is taken whoever holds
it (``--break-lock``)."""

from __future__ import annotations

import contextlib
import contextvars
import shutil
from collections.abc import Iterator
from pathlib import Path

from rescue.errors import RepositoryError
from rescue.i18n import _
from rescue.image.repository import REPO_FILE, Repository, writer_lock
from rescue.image.seal import SEAL_FILE
from rescue.repo.location import Location
from rescue.runner import CommandRunner

_BREAK_LOCK: contextvars.ContextVar[bool] = contextvars.ContextVar("break_lock", default=False)
_EXISTING: contextvars.ContextVar[bool] = contextvars.ContextVar("existing", default=False)


@contextlib.contextmanager
def breaking_lock(enabled: bool = True) -> Iterator[None]:
    """Repositories opened for writing in the block take the writer lock even when
    another writer holds it (the technician said that writer is gone)."""
    token = _BREAK_LOCK.set(enabled)
    try:
        yield
    finally:
        _BREAK_LOCK.reset(token)


@contextlib.contextmanager
def existing_only() -> Iterator[None]:
    """Repositories opened for writing in the block must exist already (a delete or a
    prune creates none)."""
    token = _EXISTING.set(True)
    try:
        yield
    finally:
        _EXISTING.reset(token)


def may_create() -> bool:
    """Whether a writer opened now may create its repository (not in a delete or prune:
    see :func:`existing_only`)."""
    return not _EXISTING.get()


@contextlib.contextmanager
def opened(location: Location, write: bool,
           runner: CommandRunner | None) -> Iterator[Repository]:
    """The repository in the folder: read, or (*write*) created when missing, locked
    for this writer and written. A repository this call created is taken away again
    when the work in the block fails before any image was written (a refused backup
    leaves nothing behind)."""
    if not write:
        yield Repository.open(location.address, shown=location.display)
        return
    root = Path(location.address)
    if _EXISTING.get() and not Repository.is_repository(root):
        raise RepositoryError(_("{where} is not a rescue repository (no {marker}).").format(
            where=location.display, marker=REPO_FILE))
    made_root = not root.exists()
    fresh = not Repository.is_repository(root)
    repo = Repository.create(root, shown=location.display)
    # a lock held by someone else leaves the repository as it is (theirs too)
    with writer_lock(root, repo.location, _BREAK_LOCK.get()) as lock:
        try:
            yield repo
        except BaseException:
            if fresh and not repo.image_ids():
                lock.release()
                _unmake(root, made_root)
            raise


def _unmake(root: Path, made_root: bool) -> None:
    """Remove what Repository.create made (and chunks a failed first backup stored)."""
    with contextlib.suppress(OSError):
        (root / REPO_FILE).unlink()
        (root / SEAL_FILE).unlink(missing_ok=True)
        for sub in ("chunks", "images", "tmp"):
            path = root / sub
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
        if made_root:
            root.rmdir()
