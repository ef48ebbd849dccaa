"""Network shares as repository locations: SMB (Windows shares, NAS) and NFS.

A technician gives a share the way they know it::

    smb://nas/backups/rescue          smb://user:password@nas/backups/rescue
    //nas/backups/rescue              \\\\nas\\backups\\rescue      (SMB, UNC style)
    nfs://server/export/rescue        server:/export/rescue         (NFS)

:func:`reachable` mounts the share (read-only unless writing a backup) in a private
directory under /run, yields the local folder of the repository inside it and unmounts
on leaving, also after an error. SMB logins go through a credentials file (mode 0600,
deleted after the mount), never the command line; a share without a login is mounted as
guest. Messages show the share without its password.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from rescue import sysmount
from rescue.errors import RepositoryError, UsageError
from rescue.i18n import _
from rescue.runner import CommandRunner

SMB, NFS = "smb", "nfs"
_NFS_COLON = re.compile(r"^(?P<host>[A-Za-z0-9][A-Za-z0-9.\-]*|\[[0-9A-Fa-f:]+\]):(?P<path>/.*)$")


@dataclass(frozen=True)
class Share:
    kind: str  # "smb" | "nfs"
    host: str
    share: str  # SMB: the share name; NFS: the exported path
    subpath: str  # the repository's folder inside the share ("" for its top)
    user: str = ""
    password: str = ""

    @property
    def display(self) -> str:
        """The share as shown and logged: no password."""
        who = f"{self.user}@" if self.user else ""
        if self.kind == SMB:
            base = f"smb://{who}{self.host}/{self.share}"
        else:
            base = f"nfs://{self.host}{self.share}"
        return base + (f"/{self.subpath}" if self.subpath else "")

    @property
    def source(self) -> str:
        """What mount(8) is given."""
        if self.kind == SMB:
            return f"//{self.host}/{self.share}"
        return f"{self.host}:{self.share}"


def parse_share(location: str) -> Share | None:
    """The share *location* names, or None when it is no network share."""
    text = location.strip()
    if text.startswith("\\\\"):
        text = "//" + text[2:].replace("\\", "/")
    lower = text.lower()
    if lower.startswith(("smb://", "cifs://")) or (text.startswith("//") and "://" not in text):
        parts = urlsplit(text if "://" in text else "smb:" + text)
        segments = [unquote(s) for s in parts.path.split("/") if s]
        if not parts.hostname or not segments:
            raise UsageError(_(
                "{location}: an SMB share needs a server and a share name, for example "
                "smb://nas/backups or //nas/backups/rescue."
            ).format(location=location))
        return Share(SMB, parts.hostname, segments[0], "/".join(segments[1:]),
                     unquote(parts.username or ""), unquote(parts.password or ""))
    if lower.startswith("nfs://"):
        parts = urlsplit(text)
        if not parts.hostname or not parts.path.strip("/"):
            raise UsageError(_(
                "{location}: an NFS share needs a server and an exported path, for example "
                "nfs://server/export/rescue."
            ).format(location=location))
        return _nfs(parts.hostname, unquote(parts.path))
    m = _NFS_COLON.match(text)
    if m and "://" not in text:
        return _nfs(m["host"].strip("[]"), m["path"])
    return None


def _nfs(host: str, path: str) -> Share:
    # The export and the folder inside it cannot be told apart from the text; the whole
    # path is mounted (an NFS server lets a client mount below an export).
    return Share(NFS, host, "/" + path.strip("/"), "")


def location_display(location: str) -> str:
    """*location* as shown and logged: a share or web address without its password."""
    try:
        share = parse_share(location)
    except UsageError:
        share = None
    if share is not None:
        return share.display
    parts = urlsplit(location) if "://" in location else None
    if parts is not None and parts.password is not None:
        host = parts.netloc.rsplit("@", 1)[-1]
        user = f"{parts.username}@" if parts.username else ""
        return parts._replace(netloc=user + host).geturl()
    if parts is None and "@" in location and location.startswith(("//", "\\\\")):
        return location.split("@")[-1]
    return location


def is_share(location: str) -> bool:
    try:
        return parse_share(location) is not None
    except UsageError:
        return True  # a share, written wrongly: reachable() says what is missing


def mount_argv(share: Share, mountpoint: str, write: bool, credentials: str = "") -> list[str]:
    mode = "rw" if write else "ro"
    if share.kind == SMB:
        login = f"credentials={credentials}" if credentials else "guest"
        return ["mount", "-t", "cifs", share.source, mountpoint, "-o",
                f"{mode},{login},noperm,iocharset=utf8"]
    return ["mount", "-t", "nfs", share.source, mountpoint, "-o",
            f"{mode},nolock,soft,timeo=150,retrans=3"]


@contextlib.contextmanager
def reachable(location: str, runner: CommandRunner | None = None,
              write: bool = False) -> Iterator[str]:
    """A local folder for *location*: the location itself, or the repository folder in
    the share it names, mounted for the duration of the block."""
    share = parse_share(location)
    if share is None:
        yield location
        return
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
        folder = str(mountpoint / share.subpath) if share.subpath else str(mountpoint)
        if write and not os.path.isdir(folder):
            try:  # a new repository in the share: its folder is made by the backup
                os.makedirs(folder)
            except OSError as exc:
                raise RepositoryError(_(
                    "{share}: the folder {folder} cannot be created in the share ({error})."
                ).format(share=share.display, folder=share.subpath,
                         error=exc.strerror or exc)) from exc
        if not os.path.isdir(folder):
            raise RepositoryError(_("{share}: there is no folder {folder} in the share.").format(
                share=share.display, folder=share.subpath))
        yield folder


def _unlink_quiet(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
