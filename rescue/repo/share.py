"""SMB and NFS shares: mounted, then opened as a folder.

:func:`opened` mounts the share (read-only unless writing a backup) in a private
directory under /run through :mod:`rescue.sysmount`, opens the repository folder inside
it with the folder backend and unmounts on leaving, also after an error. SMB logins go
through a credentials file (mode 0600, deleted right after the mount), never the command
line; a share without a login is mounted as guest. Messages show the share without its
password. A share is checked again before mounting (:func:`~rescue.repo.location.check_share`:
no option smuggled in, no line added to the credentials file), and the repository's folder
must stay inside the mounted share (a link on the server leads nowhere else).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator

from rescue import sysmount
from rescue.errors import RepositoryError
from rescue.i18n import _
from rescue.image.repository import REPO_FILE, Repository
from rescue.repo import folder
from rescue.repo.location import FOLDER, SMB, Location, Share, check_share
from rescue.runner import CommandRunner


@contextlib.contextmanager
def opened(location: Location, write: bool,
           runner: CommandRunner | None) -> Iterator[Repository]:
    """The repository in the share *location* names, mounted for the block."""
    assert location.share is not None, location.kind
    with mounted_share(location.share, runner, write) as path:
        if not write and not Repository.is_repository(path):
            raise RepositoryError(
                _("{where} is not a rescue repository (no {marker}).").format(
                    where=location.display, marker=REPO_FILE))
        inside = Location(FOLDER, path, location.display)
        with folder.opened(inside, write, runner) as repo:
            yield repo


def mount_argv(share: Share, mountpoint: str, write: bool, credentials: str = "") -> list[str]:
    mode = "rw" if write else "ro"
    if share.kind == SMB:
        login = f"credentials={credentials}" if credentials else "guest"
        return ["mount", "-t", "cifs", share.source, mountpoint, "-o",
                f"{mode},{login},noperm,iocharset=utf8"]
    return ["mount", "-t", "nfs", share.source, mountpoint, "-o",
            f"{mode},nolock,soft,timeo=150,retrans=3"]


@contextlib.contextmanager
def mounted_share(share: Share, runner: CommandRunner | None = None,
                  write: bool = False) -> Iterator[str]:
    """The local folder of the repository in *share*, mounted for the duration of the
    block (its folder made when *write* and missing)."""
    check_share(share, share.display)  # also a Share not made by Location.parse
    runner = runner or CommandRunner()
    helper = "mount.cifs" if share.kind == SMB else "mount.nfs"
    if shutil.which(helper) is None:
        package = "cifs-utils" if share.kind == SMB else "nfs-common"
        raise RepositoryError(_(
            "{share}: {helper} is not installed (Debian package {package}); the rescue live "
            "system has it."
        ).format(share=share.display, helper=helper, package=package))
    with contextlib.ExitStack() as stack:
        top = stack.enter_context(sysmount.private_dir("share"))
        mountpoint = top / "mnt"
        mountpoint.mkdir(0o700)
        stack.callback(sysmount.remove_empty_dir, mountpoint)
        credentials = ""
        if share.kind == SMB and share.user:
            credentials = str(top / "credentials")
            stack.callback(_unlink_quiet, credentials)
            fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"username={share.user}\npassword={share.password}\n")
        try:
            stack.enter_context(sysmount.mounted(
                share.source, runner=runner, where=mountpoint,
                argv=lambda _node, mp: mount_argv(share, mp, write, credentials)))
        except sysmount.MountError as exc:
            raise RepositoryError(_(
                "{share} could not be mounted ({detail}); check the server's name, the share "
                "name, the login and that this computer is on the network."
            ).format(share=share.display, detail=exc.detail or exc)) from exc
        finally:
            if credentials:
                _unlink_quiet(credentials)  # read by the mount; never left in /run
        path = str(mountpoint / share.subpath) if share.subpath else str(mountpoint)
        _refuse_outside(path, mountpoint, share)
        if write and not os.path.isdir(path) and folder.may_create():
            try:  # a new repository in the share: its folder is made by the backup
                os.makedirs(path)
            except OSError as exc:
                raise RepositoryError(_(
                    "{share}: the folder {folder} cannot be created in the share ({error})."
                ).format(share=share.display, folder=share.subpath,
                         error=exc.strerror or exc)) from exc
        if not os.path.isdir(path):
            raise RepositoryError(_("{share}: there is no folder {folder} in the share.").format(
                share=share.display, folder=share.subpath))
        yield path


def _refuse_outside(path: str, mountpoint: os.PathLike[str], share: Share) -> None:
    """A RepositoryError when the repository's folder in the share (or the part of it
    that exists) leads out of the mounted share, through a link the server shows."""
    top = os.path.realpath(mountpoint)
    real = os.path.realpath(path)
    if real != top and not real.startswith(top + os.sep):
        raise RepositoryError(_(
            "{share}: the folder {folder} leads out of the share (a link on the server); "
            "name a folder inside the share."
        ).format(share=share.display, folder=share.subpath))


def _unlink_quiet(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
