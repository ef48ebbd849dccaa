"""A folder a web server shares (``http://``, ``https://``): read only. The reader is
:class:`rescue.image.http_repository.HttpRepository`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rescue.errors import UsageError
from rescue.i18n import _
from rescue.image.http_repository import HttpRepository
from rescue.repo.location import Location
from rescue.runner import CommandRunner


@contextlib.contextmanager
def opened(location: Location, write: bool,
           runner: CommandRunner | None) -> Iterator[HttpRepository]:
    """The repository at the URL, for reading; writing is refused with a sentence."""
    if write:
        raise UsageError(
            _("{where}: a repository on a web server is read-only; write the backup to a "
              "folder or to an SMB or NFS share (smb://server/share/folder, "
              "nfs://server/export/folder).").format(where=location.display))
    yield HttpRepository.open(location.address)
