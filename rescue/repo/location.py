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

What reaches mount(8) and the SMB credentials file is checked here, before any mount:
no control character anywhere (a line break would add a line to the credentials file,
a NUL breaks every system call), no comma in an SMB server, share or folder (mount.cifs
would read what follows as options), no server starting with ``-`` (an option), no
``.`` or ``..`` folder (out of the share), a port from 1 to 65535, and no ``#`` or ``?``
typed as is (they end the address: the rest of a password would be lost).

:func:`redact` is the one place passwords are taken out of free text (logs, reports,
the kernel command line in the journal) before it is written anywhere.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import SplitResult, unquote, urlsplit

from rescue.errors import UsageError
from rescue.i18n import _

FOLDER, HTTP, SMB, NFS = "folder", "http", "smb", "nfs"
#: every kind of location; each has one opener (rescue.repo.OPENERS)
KINDS = (FOLDER, HTTP, SMB, NFS)
#: URL schemes and the kind each names
SCHEMES = {"http": HTTP, "https": HTTP, "smb": SMB, "cifs": SMB, "nfs": NFS}

_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://")
_NFS_COLON = re.compile(r"^(?P<host>[A-Za-z0-9][A-Za-z0-9.\-]*|\[[0-9A-Fa-f:]+\]):(?P<path>/.*)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: a server name or address as mount(8) may be given it (IPv6 without its brackets)
_SERVER = re.compile(r"^(?:[^\W_][\w.\-]*|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:%[\w.\-]+)?)$")


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
        _refuse_control(given, given)
        share = parse_share(given)
        if share is not None:
            return cls(share.kind, given, share.display, share)
        scheme = _SCHEME.match(given)
        if scheme is None:
            return cls(FOLDER, given, given)
        if SCHEMES.get(scheme["scheme"].lower()) == HTTP:
            _refuse_cut(given, "#")
            parts = _split(given, given)
            if parts is None or not parts.hostname:
                raise UsageError(
                    _("{url} is not a web address rescue can read (http://host/folder/ or "
                      "https://host/folder/).").format(url=_shown(given)))
            return cls(HTTP, given, _web_display(given))
        raise UsageError(
            _("{location}: rescue reads images from a folder, an SMB or NFS share "
              "(smb://server/share, nfs://server/export) or an http:// or https:// "
              "address.").format(location=_shown(given)))


def parse_share(location: str) -> Share | None:
    """The share *location* names, or None when it is no network share; a UsageError
    when it is a share written with a part missing, or with a part mount(8) would read
    as something else (see the module docstring)."""
    text = location.strip()
    if text.startswith("\\\\"):
        text = "//" + text[2:].replace("\\", "/")
    scheme = _SCHEME.match(text)
    kind = SCHEMES.get(scheme["scheme"].lower()) if scheme else None
    if kind == SMB or (text.startswith("//") and scheme is None):
        _refuse_control(location, location)
        _refuse_cut(location, "#", "?")
        parts = _split(text if scheme else "smb:" + text, location)
        segments = _segments(unquote(parts.path), location, "/\\") if parts else []
        if parts is None or not parts.hostname or not segments:
            raise UsageError(_(
                "{location}: an SMB share needs a server and a share name, for example "
                "smb://nas/backups or //nas/backups/rescue."
            ).format(location=_shown(location)))
        return check_share(Share(SMB, parts.hostname, segments[0], "/".join(segments[1:]),
                              unquote(parts.username or ""), unquote(parts.password or "")),
                        location)
    if kind == NFS:
        _refuse_control(location, location)
        _refuse_cut(location, "#", "?")
        parts = _split(text, location)
        if parts is None or not parts.hostname or not parts.path.strip("/"):
            raise UsageError(_(
                "{location}: an NFS share needs a server and an exported path, for example "
                "nfs://server/export/rescue."
            ).format(location=_shown(location)))
        return check_share(_nfs(parts.hostname, unquote(parts.path), location), location)
    m = _NFS_COLON.match(text)
    if m and scheme is None:
        return check_share(_nfs(m["host"].strip("[]"), m["path"], location), location)
    return None


def _split(text: str, location: str) -> SplitResult | None:
    """*text* as a URL; None when it cannot be read (a bracket left open); a UsageError
    for a port that is no number from 1 to 65535."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise UsageError(_("{location}: the port must be a number from 1 to 65535.").format(
            location=_shown(location)))
    return parts


def _segments(path: str, location: str, separators: str = "/") -> list[str]:
    """The folders of a share's path (decoded: %2F is a slash too; SMB also separates
    with a backslash); no . or .."""
    segments = [s for s in re.split(f"[{re.escape(separators)}]", path) if s]
    if any(s in (".", "..") for s in segments):
        raise UsageError(_(
            "{location}: '.' and '..' cannot be folders in a share's location (they lead "
            "out of the share); name the folder itself."
        ).format(location=_shown(location)))
    return segments


def check_share(share: Share, location: str) -> Share:
    """*share* when mount(8) and the credentials file read it as meant (see the module
    docstring); a UsageError saying what to change otherwise."""
    for part in (share.host, share.share, share.subpath, share.user, share.password):
        _refuse_control(part, location)
    if share.kind == SMB and any("," in p for p in (share.host, share.share, share.subpath)):
        raise UsageError(_(
            "{location}: a comma cannot be part of an SMB server, share or folder name "
            "(mount would read what follows as options); rename the share or the folder."
        ).format(location=_shown(location)))
    if share.host.startswith("-"):
        raise UsageError(_(
            "{location}: a server name cannot start with '-'; type the server's name or "
            "address."
        ).format(location=_shown(location)))
    if not _SERVER.match(share.host):
        raise UsageError(_(
            "{location}: {server} is not a server name; type its name (letters, digits, "
            "dots and hyphens) or its IP address."
        ).format(location=_shown(location), server=_shown(share.host)))
    return share


def _refuse_control(part: str, location: str) -> None:
    if _CONTROL.search(part):
        raise UsageError(_(
            "{location} holds a control character (a line break, a tab or a NUL); type "
            "the location again without it."
        ).format(location=_shown(location)))


def _refuse_cut(location: str, *marks: str) -> None:
    """A UsageError when *location* holds one of *marks* as typed: in a URL, # and ?
    end the address, and the rest (of a password, say) would be lost."""
    for mark in marks:
        if mark in location:
            raise UsageError(_(
                "{location}: {mark} cannot be typed as it is in an address; in a password, "
                "a user name or a folder write it as {code}."
            ).format(location=_shown(location), mark=mark,
                     code="%" + format(ord(mark), "02X")))


def _nfs(host: str, path: str, location: str) -> Share:
    # The export and the folder inside it cannot be told apart from the text; the whole
    # path is mounted (an NFS server lets a client mount below an export).
    return Share(NFS, host, "/" + "/".join(_segments(path, location)), "")


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


def _shown(text: str) -> str:
    """*text* as a message may show it: no password, control characters as \\xNN."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", redact(text.strip()))


# A login in a URL or UNC path: scheme://user:password@ //user:password@ \\user:password@
# (the password runs to the last @ before the host: it may hold @ typed as is)
_URL_LOGIN = re.compile(
    r"(?P<head>(?:\b[A-Za-z][A-Za-z0-9+.\-]*:)?//|\\\\)(?P<user>[^\s:/@\\]*):[^\s/\\]*@")
# user:password@host at the start of a word (after a space, =, a quote or a bracket)
_BARE_LOGIN = re.compile(
    r"(?<![^\s=(\"'<\[,;])(?P<user>[\w.\-]+):[^\s/]+@(?=[\w\[])")
# password=... (mount options, credentials files)
_KEY_PASSWORD = re.compile(r"(?i)\b(?P<key>password|passwd|pass|pwd)=[^\s,;\"']+")
HIDDEN = "***"


def redact(text: str) -> str:
    """*text* with every password it may hold replaced by ``***``: logins in URLs and
    shares (``smb://user:pw@nas``, ``//user:pw@nas``, ``rescue.repo=user:pw@host``) and
    ``password=`` options; the user name stays. The one place free text (logs, reports,
    the journal with the kernel command line) loses its passwords before it is
    written."""
    text = _KEY_PASSWORD.sub(lambda m: f"{m['key']}={HIDDEN}", text)
    text = _URL_LOGIN.sub(lambda m: f"{m['head']}{m['user']}:{HIDDEN}@", text)
    return _BARE_LOGIN.sub(lambda m: f"{m['user']}:{HIDDEN}@", text)


def display(text: str) -> str:
    """*text* as shown and logged, also when it names no location rescue can open: a
    share or web address without its password."""
    try:
        return Location.parse(text).display
    except UsageError:
        return _shown(text)
