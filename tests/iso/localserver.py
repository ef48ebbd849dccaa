"""Run a server program for a test: in its own session (its signal handlers may signal
their process group), until it answers on a TCP port of 127.0.0.1; stopped by its PID."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def serving(argv: list[str], port: int, name: str, logs: Callable[[], str],
            cwd: Path | None = None, timeout: float = 30.0) -> Iterator[None]:
    """Start *argv*, wait until 127.0.0.1:*port* accepts connections (*logs* says why
    not), stop it on leaving."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, cwd=cwd)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start: {logs()}") from None
                time.sleep(0.2)
        yield
    finally:
        proc.terminate()  # by its PID
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
