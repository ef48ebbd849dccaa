"""A web server someone else runs may answer with anything: a body far larger than any
repository file, one that never ends, or bytes trickled slowly enough to reset every
read timeout. Each is refused with a sentence, in bounded memory and time."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from rescue.errors import RepositoryError
from rescue.image import http_repository
from rescue.image.http_repository import HttpRepository

MARKER = b'{"magic": "rescue-repository", "format_version": 1}'


@contextlib.contextmanager
def hostile(answer: Callable[[socket.socket, bytes], None]) -> Iterator[str]:
    """A server on 127.0.0.1 that hands each request to *answer* (the repository marker
    is served honestly, so the repository opens)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    def handle(conn: socket.socket) -> None:
        with conn:
            while not stop.is_set():
                request = b""
                while b"\r\n\r\n" not in request:
                    data = conn.recv(4096)
                    if not data:
                        return
                    request += data
                try:
                    if b"rescue-repository.json" in request.split(b"\r\n", 1)[0]:
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                                     % (len(MARKER), MARKER))
                    else:
                        answer(conn, request)
                        return
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/repo/"
    finally:
        stop.set()
        server.close()


def huge_length(conn: socket.socket, request: bytes) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10737418240\r\n\r\n")
    block = bytes(1 << 16)
    with contextlib.suppress(OSError):
        for _ in range(200_000):
            conn.sendall(block)


def endless_chunked(conn: socket.socket, request: bytes) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b"10000\r\n" + bytes(1 << 16) + b"\r\n"
    with contextlib.suppress(OSError):
        for _ in range(200_000):
            conn.sendall(piece)


def trickle(conn: socket.socket, request: bytes) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    with contextlib.suppress(OSError):
        for _ in range(1000):
            conn.sendall(b"x")
            time.sleep(0.2)


@pytest.mark.parametrize("answer", [huge_length, endless_chunked], ids=["length", "chunked"])
def test_a_body_larger_than_any_repository_file_is_refused(answer) -> None:  # type: ignore[no-untyped-def]
    with hostile(answer) as url:
        repo = HttpRepository.open(url)
        with pytest.raises(RepositoryError, match="sent more than 64 MiB"):
            repo.read_chunk("ab" * 32, "partition 2, offset 0")


def test_a_trickling_server_meets_a_deadline_per_request(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_repository, "DEADLINE", 2.0)  # 300 s in the product
    with hostile(trickle) as url:
        repo = HttpRepository.open(url)
        with pytest.raises(RepositoryError, match="took longer than 2 s"):
            repo.read_chunk("ab" * 32, "partition 2, offset 0")
