"""A real Samba server (smbd) sharing a folder as guest-accessible `backups` on the host's
127.0.0.1:445, which a QEMU guest on the user network reaches as 10.0.2.2. Stopped by its
PID; everything it writes stays in the test's temporary directory."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from localserver import serving

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

    def logs() -> str:
        return "".join(p.read_text(errors="replace")[-2000:] for p in work.glob("log.*"))

    with serving([smbd, "--foreground", "--no-process-group", "-s", str(conf)], 445, "smbd",
                 logs):
        yield work
