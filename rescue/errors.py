"""One error hierarchy for the whole product.

Every error carries a sentence a technician can act on and an exit code. The CLI
prints ``str(error)`` and exits with ``error.exit_code``; no traceback reaches the user.
Low-level ``OSError``s are turned into domain errors at the I/O edge with
:func:`from_oserror`.
"""

from __future__ import annotations

import errno as _errno

from rescue.i18n import _


class RescueError(Exception):
    """Base of every error the product reports to a user."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(RescueError):
    """The command line or a job file asks for something impossible."""

    exit_code = 2


class ExternalCommandError(RescueError):
    """A system tool (sfdisk, mkfs, e2fsck, ...) failed."""

    exit_code = 3


class RepositoryError(RescueError):
    """The repository is missing, unreadable or not a rescue repository."""

    exit_code = 10


class RepositoryLockedError(RepositoryError):
    """Another backup, delete or prune holds the repository's writer lock."""


class ImageNotFoundError(RepositoryError):
    exit_code = 11


class ImageCorruptError(RepositoryError):
    """A manifest or chunk does not match its hash, is truncated or missing."""

    exit_code = 12


class SignatureRefusedError(RepositoryError):
    """The image's signature does not match it, or the image is not signed by a key this
    system trusts (docs/SECURITY.md); nothing was written."""

    exit_code = 12


class KeyFileError(UsageError):
    """A signing key or trusted key file is missing, unreadable or not a key."""


class UnsupportedFormatError(RepositoryError):
    """The image was written by a newer rescue than this one."""

    exit_code = 13


class SourceRefusedError(RescueError):
    """The disk to back up cannot be read consistently."""

    exit_code = 20


class TargetRefusedError(RescueError):
    """A restore target failed a safety check; nothing was written to it."""

    exit_code = 21


class TargetTooSmallError(TargetRefusedError):
    exit_code = 22


class IncompatibleImageError(RescueError):
    """The image cannot boot on this hardware (use --force to restore anyway)."""

    exit_code = 23


class DeviceError(RescueError):
    """Reading from or writing to a disk failed."""

    exit_code = 30


class NoSpaceError(RepositoryError):
    exit_code = 31


class Cancelled(RescueError):
    exit_code = 130


def from_oserror(exc: OSError, what: str) -> RescueError:
    """Translate an ``OSError`` raised while doing *what* into a domain error."""
    code = exc.errno
    if code in (_errno.ENOSPC, _errno.EDQUOT):
        return NoSpaceError(_("{what}: the destination is full ({reason}).").format(
            what=what, reason=exc.strerror))
    if code == _errno.EIO:
        return DeviceError(_("{what}: input/output error; the disk may be failing.").format(
            what=what))
    if code in (_errno.EACCES, _errno.EPERM):
        return DeviceError(_("{what}: permission denied; run rescue as root.").format(what=what))
    if code == _errno.EROFS:
        return DeviceError(_("{what}: the device or filesystem is read-only.").format(what=what))
    if code == _errno.EBUSY:
        return DeviceError(_(
            "{what}: the device is busy (mounted or in use by another program)."
        ).format(what=what))
    if code == _errno.ENOENT:
        if exc.filename:
            return DeviceError(_("{what}: {path} does not exist.").format(
                what=what, path=exc.filename))
        return DeviceError(_("{what}: file does not exist.").format(what=what))
    return DeviceError(_("{what}: {reason}.").format(what=what, reason=exc.strerror or exc))
