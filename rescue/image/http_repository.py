"""A repository read over HTTP(S): restore, list and verify from a web server.

Any static web server that serves the repository folder works (nginx, Apache,
``python3 -m http.server``, a NAS's web share): the layout is plain files (docs/FORMAT.md).
Image ids come from ``images/index.json`` (written by every backup) or, for a repository
written before the index existed, from the server's directory listing of ``images/``.

Reading only: images are written to a folder. Credentials may be given in the URL
(``http://user:password@host/backups/``) and are sent as HTTP basic authentication; they
never appear in messages. HTTPS certificates are checked against the system's CAs.

Each thread keeps its own keep-alive connection; a request that fails on the network is
retried a few times with a short pause before the technician sees an error.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, unquote, urlsplit

from rescue.errors import ImageCorruptError, ImageNotFoundError, RepositoryError
from rescue.i18n import _
from rescue.image.repository import (
    IMAGE_ID_PATTERN,
    INDEX_FILE,
    REPO_FILE,
    ChunkInventory,
    RepositoryReader,
    check_marker,
)
from rescue.image.seal import MAX_SEAL_FILE, SEAL_FILE, SEALED, parse_seal
from rescue.image.signature import MAX_SIGNATURE_FILE, SIGNATURE_FILE

TIMEOUT = 30.0  # seconds without a byte before a request counts as failed
DEADLINE = 300.0  # seconds for a whole answer, however its bytes trickle in
MAX_BODY = 64 << 20  # bytes of any answer: a chunk, an index part, a listing, a header
MAX_MANIFEST = 1 << 30  # a format-1 manifest lists every chunk: ~110 MB per TB of data
READ_PIECE = 1 << 16
ATTEMPTS = 4
BACKOFF = 0.5  # seconds, doubled after each failed attempt
HEAD_WORKERS = 8
_LISTED_ID = re.compile(rf'href="(?:[^"]*/)?({IMAGE_ID_PATTERN})/?"')
_LISTED_FOLDER = re.compile(r'href="(?:[^"]*/)?([0-9a-f]{2})/"')
_LISTED_CHUNK = re.compile(r'href="(?:[^"]*/)?([0-9a-f]{64}\.zst)"')


class HttpRepository(RepositoryReader):
    """A read-only repository at an ``http://`` or ``https://`` URL."""

    parallel_reads = 4  # hide the round trip of each request

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RepositoryError(
                _("{url} is not a web address rescue can read (http://host/folder/ or "
                  "https://host/folder/).").format(url=url))
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.base = (parts.path or "/").rstrip("/") + "/"
        self.headers = {"User-Agent": "rescue", "Connection": "keep-alive"}
        if parts.username is not None:
            user, password = unquote(parts.username), unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        netloc = self.host if self.port is None else f"{self.host}:{self.port}"
        # The URL without credentials: the only form shown or logged.
        self.location = f"{self.scheme}://{netloc}{self.base}"
        self._local = threading.local()

    @classmethod
    def open(cls, url: str) -> HttpRepository:
        repo = cls(url)
        raw = repo._fetch(REPO_FILE)
        if raw is None:
            raise RepositoryError(
                _("{where} is not a rescue repository (no {marker} there). Give the URL of "
                  "the folder that holds {marker}.").format(where=repo.location,
                                                           marker=REPO_FILE))
        check_marker(raw, repo.location)
        return repo

    # -- HTTP ------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self.scheme == "https":
                conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=TIMEOUT,
                    context=ssl.create_default_context())
            else:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
            self._local.conn = conn
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _request(self, method: str, rel: str, limit: int = MAX_BODY
                 ) -> tuple[int, http.client.HTTPResponse, bytes]:
        """(status, response, body) for *rel* under the repository URL; retried on
        network errors and 5xx answers."""
        path = self.base + quote(rel)
        error = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(BACKOFF * 2 ** (attempt - 1))
            conn = self._connection()
            deadline = time.monotonic() + DEADLINE
            try:
                conn.request(method, path, headers=self.headers)
                resp = conn.getresponse()
                body = resp.read() if method == "HEAD" else self._body(resp, rel, deadline,
                                                                        limit)
            except RepositoryError:
                self._drop_connection()
                raise
            except ssl.SSLCertVerificationError as exc:
                self._drop_connection()
                raise RepositoryError(
                    _("The certificate of {host} is not trusted ({reason}); check the "
                      "address, or serve the repository over http:// on a trusted "
                      "network.").format(host=self.host, reason=exc.verify_message)
                ) from exc
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                error = str(exc) or type(exc).__name__
                continue
            if resp.will_close:
                self._drop_connection()
            if resp.status >= 500:
                error = f"HTTP {resp.status} {resp.reason}"
                continue
            return resp.status, resp, body
        raise RepositoryError(
            _("The web server {host} did not answer for {what} ({error}) after {attempts} "
              "attempts; check the network cable, the address and that the server is "
              "running.").format(host=self.host, what=rel or "/", error=error,
                                 attempts=ATTEMPTS))

    def _body(self, resp: http.client.HTTPResponse, rel: str, deadline: float,
              limit: int) -> bytes:
        """The body, refused when it is larger than *limit* (more than any file of a
        repository of that kind holds) or when the whole answer takes longer than
        :data:`DEADLINE` (a server trickling a byte at a time resets every per-read
        timeout, never this one)."""
        declared = resp.getheader("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise self._too_much(rel, limit)
        parts: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() > deadline:
                raise RepositoryError(_(
                    "The web server {host} took longer than {seconds} s to send {what}; "
                    "check the network or the server."
                ).format(host=self.host, seconds=int(DEADLINE), what=rel or "/"))
            piece = resp.read1(READ_PIECE)
            if not piece:
                return b"".join(parts)
            size += len(piece)
            if size > limit:
                raise self._too_much(rel, limit)
            parts.append(piece)

    def _too_much(self, rel: str, limit: int) -> RepositoryError:
        return RepositoryError(_(
            "The web server {host} sent more than {limit} MiB for {what}, more than any "
            "file of a repository holds; it is not a rescue repository or it is broken."
        ).format(host=self.host, limit=limit >> 20, what=rel or "/"))

    def _fetch(self, rel: str, limit: int = MAX_BODY) -> bytes | None:
        """The body of *rel*, None when the server has no such file."""
        status, resp, body = self._request("GET", rel, limit)
        if status == 200:
            return body
        if status == 404:
            return None
        raise self._refused(rel, status, resp.reason)

    def _refused(self, rel: str, status: int, reason: str) -> RepositoryError:
        if status in (401, 403):
            return RepositoryError(
                _("The web server {host} refused access to the repository (HTTP {status} "
                  "{reason}); give the user name and password in the address: "
                  "http://user:password@host/folder/.").format(
                    host=self.host, status=status, reason=reason))
        return RepositoryError(
            _("The web server {host} answered HTTP {status} {reason} for {what}.").format(
                host=self.host, status=status, reason=reason, what=rel))

    # -- images ----------------------------------------------------------------------

    def image_ids(self) -> list[str]:
        raw = self._fetch(INDEX_FILE)
        ids: set[str] = set()
        if raw is not None:
            try:
                listed = json.loads(raw).get("images", [])
            except (ValueError, AttributeError) as exc:
                raise RepositoryError(
                    _("{where} is unreadable or damaged: {error}.").format(
                        where=self.location + INDEX_FILE, error=exc)) from exc
            ids = {i for i in listed if isinstance(i, str) and re.fullmatch(IMAGE_ID_PATTERN, i)}
        else:
            listing = self._fetch("images/")
            if listing is not None:
                ids = set(_LISTED_ID.findall(listing.decode("utf-8", "replace")))
        return sorted(ids, reverse=True)

    def manifest_bytes(self, image_id: str) -> bytes:
        raw = self._fetch(f"images/{image_id}/manifest.json", MAX_MANIFEST)
        if raw is None:
            raise ImageNotFoundError(
                _("Image {id} is gone from {where}.").format(id=image_id, where=self.location))
        return raw

    def signature_bytes(self, image_id: str) -> bytes | None:
        return self._fetch(f"images/{image_id}/{SIGNATURE_FILE}", MAX_SIGNATURE_FILE)

    # -- chunks ----------------------------------------------------------------------

    @staticmethod
    def _chunk_rel(digest: str) -> str:
        return f"chunks/{digest[:2]}/{digest}.zst"

    def read_chunk(self, digest: str, where: str) -> bytes:
        raw = self._fetch(self._chunk_rel(digest))
        if raw is None:
            raise ImageCorruptError(
                _("{where}: chunk {chunk} is missing from the repository {repo}.").format(
                    where=where, chunk=digest[:16], repo=self.location))
        return raw

    def chunk_size_on_disk(self, digest: str) -> int:
        status, resp, _body = self._request("HEAD", self._chunk_rel(digest))
        if status == 404:
            return -1
        if status != 200:
            raise self._refused(self._chunk_rel(digest), status, resp.reason)
        length = resp.getheader("Content-Length")
        return int(length) if length and length.isdigit() else 1

    def chunk_inventory(self) -> ChunkInventory | None:
        """From the server's listings of chunks/xx/ (one request per folder, all at
        once); None when the server lists no folders (a static host)."""
        top = self._fetch("chunks/")
        if top is None:
            return None
        folders = sorted(set(_LISTED_FOLDER.findall(top.decode("utf-8", "replace"))))
        if not folders:
            return None

        def listing(folder: str) -> list[str]:
            if folder not in folders:
                return []
            raw = self._fetch(f"chunks/{folder}/")
            return _LISTED_CHUNK.findall(raw.decode("utf-8", "replace")) if raw else []

        inventory = ChunkInventory(listing)
        inventory.preload(folders, HEAD_WORKERS)
        return inventory

    def sealed_images(self) -> frozenset[str]:
        """What the repository's seal vouches for, as the last writer left it: a web
        server cannot show when its chunk folders last changed, so a sealed seal is
        taken at its word (the restore still samples chunks, and reads every chunk
        through its BLAKE3 before writing it)."""
        try:
            raw = self._fetch(SEAL_FILE, MAX_SEAL_FILE)
        except RepositoryError:
            return frozenset()
        seal = parse_seal(raw) if raw is not None else None
        return seal.images if seal is not None and seal.state == SEALED else frozenset()

    def missing_chunks(self, digests: list[str]) -> list[str]:
        with ThreadPoolExecutor(HEAD_WORKERS) as pool:
            sizes = list(pool.map(self.chunk_size_on_disk, digests))
        return [d for d, size in zip(digests, sizes, strict=True) if size <= 0]
