"""Where a repository lives, parsed once from what the technician typed.

A technician gives a repository the way they know it::

    /media/usb/rescue                 a folder (a USB disk, a mounted filesystem)
    http://server/backups/            a folder a web server shares (read-only)
    https://user:password@server/backups/
    smb://nas/backups/rescue          smb://user:password@nas/backups/rescue
    //nas/backups/rescue              \\\\nas\\backups\\rescue      (SMB, UNC style)
    nfs://server/export/rescue        server:/export/rescue         (NFS)

:meth:`Location.parse` turns that text into a :class:`Location`: its kind (the backend
that opens it, :data:`KINDS`), what that backend needs (:attr:`Location.address`, which
may hold a password) and what is shown and logged (:attr:`Location.display`, never a
password). Parsing is pure: nothing is looked up, mounted or read. Text that names no
repository rescue can open is a :class:`~rescue.errors.UsageError` with a sentence saying
what to type instead.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from rescue.errors import UsageError
from rescue.i18n import _

FOLDER, HTTP, SMB, NFS = "folder", "http", "smb", "nfs"
#: every kind of location; each has one opener (rescue.repo.OPENERS)
KINDS = (FOLDER, HTTP, SMB, NFS)
#: URL schemes and the kind each names
SCHEMES = {"http": HTTP, "https": HTTP, "smb": SMB, "cifs": SMB, "nfs": NFS}

_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://")
_NFS_COLON = re.compile(r"^(?P<host>[A-Za-z0-9][A-Za-z0-9.\-]*|\[[0-9A-Fa-f:]+\]):(?P<path>/.*)$")


@dataclass(frozen=True)
class Share:
    """An SMB or NFS share and the repository's folder inside it."""

    kind: str  # SMB | NFS
    host: str
    share: str  # SMB: the share name; NFS: the exported path
    subpath: str  # the repository's folder inside the share ("" for its top)
    user: str = ""
    password: str = field(default="", repr=False)

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


@dataclass(frozen=True)
class Location:
    """A repository's location: which backend opens it, and with what."""

    kind: str  # one of KINDS
    #: what the backend opens: the folder's path, the URL (with its login), the share's
    #: text; may hold a password, so it is never shown
    address: str = field(repr=False)
    #: the location as shown and logged: never a password
    display: str
    share: Share | None = None  # SMB and NFS: the share and the folder inside it

    def __str__(self) -> str:
        return self.display

    @classmethod
    def parse(cls, text: str | os.PathLike[str] | Location) -> Location:
        """The location *text* names (see the module docstring); a UsageError saying what
        to type when it names none."""
        if isinstance(text, Location):
            return text
        if not isinstance(text, str):
            path = os.fspath(text)
            return cls(FOLDER, path, path)
        given = text.strip()
        if not given:
            raise UsageError(_("No repository was given: name a folder, an SMB or NFS share "
                               "or a web address."))
        share = parse_share(given)
        if share is not None:
            return cls(share.kind, given, share.display, share)
        scheme = _SCHEME.match(given)
        if scheme is None:
            return cls(FOLDER, given, given)
        if SCHEMES.get(scheme["scheme"].lower()) == HTTP:
            if not _host(given):
                raise UsageError(
                    _("{url} is not a web address rescue can read (http://host/folder/ or "
                      "https://host/folder/).").format(url=_hidden(given)))
            return cls(HTTP, given, _web_display(given))
        raise UsageError(
            _("{location}: rescue reads images from a folder, an SMB or NFS share "
              "(smb://server/share, nfs://server/export) or an http:// or https:// "
              "address.").format(location=_hidden(given)))


def parse_share(location: str) -> Share | None:
    """The share *location* names, or None when it is no network share; a UsageError
    when it is a share written with a part missing."""
    text = location.strip()
    if text.startswith("\\\\"):
        text = "//" + text[2:].replace("\\", "/")
    scheme = _SCHEME.match(text)
    kind = SCHEMES.get(scheme["scheme"].lower()) if scheme else None
    if kind == SMB or (text.startswith("//") and scheme is None):
        parts = urlsplit(text if scheme else "smb:" + text) if _host(text, "smb:") else None
        segments = [unquote(s) for s in parts.path.split("/") if s] if parts else []
        if parts is None or not parts.hostname or not segments:
            raise UsageError(_(
                "{location}: an SMB share needs a server and a share name, for example "
                "smb://nas/backups or //nas/backups/rescue."
            ).format(location=_hidden(location)))
        return Share(SMB, parts.hostname, segments[0], "/".join(segments[1:]),
                     unquote(parts.username or ""), unquote(parts.password or ""))
    if kind == NFS:
        parts = urlsplit(text) if _host(text) else None
        if parts is None or not parts.hostname or not parts.path.strip("/"):
            raise UsageError(_(
                "{location}: an NFS share needs a server and an exported path, for example "
                "nfs://server/export/rescue."
            ).format(location=_hidden(location)))
        return _nfs(parts.hostname, unquote(parts.path))
    m = _NFS_COLON.match(text)
    if m and scheme is None:
        return _nfs(m["host"].strip("[]"), m["path"])
    return None


def _host(text: str, scheme: str = "") -> str:
    """The host a URL names; "" when it names none or cannot be read (a bracket left
    open, a port that is no number)."""
    try:
        parts = urlsplit(text if _SCHEME.match(text) else scheme + text)
        _port = parts.port
        return parts.hostname or ""
    except ValueError:
        return ""


def _nfs(host: str, path: str) -> Share:
    # The export and the folder inside it cannot be told apart from the text; the whole
    # path is mounted (an NFS server lets a client mount below an export).
    return Share(NFS, host, "/" + path.strip("/"), "")


def _web_display(text: str) -> str:
    """A URL without the password of its login (the user name stays)."""
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:  # e.g. a port that is no number: drop the login by hand
        scheme = _SCHEME.match(text)
        head = scheme.group(0) if scheme else ""
        netloc, slash, path = text[len(head):].partition("/")
        return head + netloc.rsplit("@", 1)[-1] + slash + path
    if password is None:
        return text
    host = parts.netloc.rsplit("@", 1)[-1]
    user = f"{parts.username}@" if parts.username else ""
    return parts._replace(netloc=user + host).geturl()


def _hidden(text: str) -> str:
    """*text* without a password, whatever it is (no parsing that can fail)."""
    stripped = text.strip()
    if _SCHEME.match(stripped):
        return _web_display(stripped)
    if "@" in stripped and stripped.startswith(("//", "\\\\")):
        return stripped.split("@")[-1]
    return text


def display(text: str) -> str:
    """*text* as shown and logged, also when it names no location rescue can open: a
    share or web address without its password."""
    try:
        return Location.parse(text).display
    except UsageError:
        return _hidden(text)
