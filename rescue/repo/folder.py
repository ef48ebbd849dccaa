"""A folder on this machine: a USB disk, a mounted filesystem, a share's folder once
mounted. The repository itself is :class:`rescue.image.repository.Repository` (the
format's reference reader and writer); this opens it."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from rescue.image.repository import REPO_FILE, Repository
from rescue.repo.location import Location
from rescue.runner import CommandRunner


@contextlib.contextmanager
def opened(location: Location, write: bool,
           runner: CommandRunner | None) -> Iterator[Repository]:
    """The repository in the folder: read, or (*write*) created when missing and
    written. A repository this call created is taken away again when the work in the
    block fails before any image was written (a refused backup leaves nothing behind)."""
    if not write:
        yield Repository.open(location.address, shown=location.display)
        return
    root = Path(location.address)
    made_root = not root.exists()
    fresh = not Repository.is_repository(root)
    repo = Repository.create(root, shown=location.display)
    try:
        yield repo
    except BaseException:
        if fresh and not repo.image_ids():
            _unmake(root, made_root)
        raise


def _unmake(root: Path, made_root: bool) -> None:
    """Remove what Repository.create made (and chunks a failed first backup stored)."""
    with contextlib.suppress(OSError):
        (root / REPO_FILE).unlink()
        for sub in ("chunks", "images", "tmp"):
            path = root / sub
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
        if made_root:
            root.rmdir()
