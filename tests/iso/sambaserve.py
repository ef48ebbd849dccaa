"""A real Samba server (smbd) sharing a folder as guest-accessible `backups` on the host's
127.0.0.1:445, which a QEMU guest on the user network reaches as 10.0.2.2. Stopped by its
PID; everything it writes stays in the test's temporary directory."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

CONF = """[global]
  server role = standalone server
  map to guest = Bad User
  guest account = root
  interfaces = lo
  bind interfaces only = yes
  smb ports = 445
  disable netbios = yes
  load printers = no
  pid directory = {work}/run
  lock directory = {work}/lock
  state directory = {work}/state
  cache directory = {work}/cache
  private dir = {work}/private
  ncalrpc dir = {work}/ncalrpc
  log file = {work}/log.%m
  server min protocol = SMB2

[backups]
  path = {share}
  read only = {read_only}
  guest ok = yes
  force user = root
"""


@contextlib.contextmanager
def samba(share: Path, work: Path, writable: bool = False) -> Iterator[Path]:
    """Serve *share* as //127.0.0.1/backups (guests may write when *writable*) until the
    block ends; yields the log dir."""
    smbd = shutil.which("smbd") or "/usr/sbin/smbd"
    for sub in ("run", "lock", "state", "cache", "private", "ncalrpc"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    conf = work / "smb.conf"
    conf.write_text(CONF.format(work=work, share=share, read_only="no" if writable else "yes"))
    proc = subprocess.Popen([smbd, "--foreground", "--no-process-group", "-s", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # its SIGTERM handler signals its group
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", 445), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    logs = "".join(p.read_text(errors="replace")[-2000:]
                                   for p in work.glob("log.*"))
                    raise RuntimeError(f"smbd did not start: {logs}") from None
                time.sleep(0.2)
        yield work
    finally:
        proc.terminate()  # by its PID
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
