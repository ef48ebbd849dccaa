"""A real HTTP server (the standard library's) sharing a folder on 127.0.0.1, for tests
of repositories read over HTTP. Options reproduce what real servers do: no directory
listings (static hosting), basic authentication, a few 503 answers (an overloaded NAS)."""

from __future__ import annotations

import base64
import contextlib
import functools
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    listing = True
    auth: str | None = None
    unavailable = 0  # answer this many requests with 503 first
    lock = threading.Lock()
    requests: list[str]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    def _allowed(self) -> bool:
        self.requests.append(f"{self.command} {self.path}")
        with self.lock:
            if type(self).unavailable > 0:
                type(self).unavailable -= 1
                self.send_error(503, "Busy")
                return False
        if self.auth and self.headers.get("Authorization") != f"Basic {self.auth}":
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="backups"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False
        if not self.listing and self.path.endswith("/"):
            self.send_error(404, "No listings here")
            return False
        return True

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self._allowed():
            super().do_GET()

    def do_HEAD(self) -> None:  # noqa: N802
        if self._allowed():
            super().do_HEAD()


def free_port() -> int:
    """A port nothing listens on now (for a server that starts later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(folder: Path, listing: bool = True, user: str | None = None,
          password: str = "", unavailable: int = 0,
          port: int = 0) -> Iterator[tuple[str, list[str]]]:
    """Yield (base URL ending in '/', log of requests) while *folder* is served."""
    auth = base64.b64encode(f"{user}:{password}".encode()).decode() if user else None
    handler = type("Handler", (_Handler,), {
        "listing": listing, "auth": auth, "unavailable": unavailable, "requests": [],
        "lock": threading.Lock()})
    server = ThreadingHTTPServer(("127.0.0.1", port),
                                 functools.partial(handler, directory=str(folder)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", handler.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
