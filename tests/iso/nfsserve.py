"""A real NFS server (nfs-ganesha, userspace: this host's kernel has no nfsd) exporting a
folder read-only over NFSv4 as /export on the host's 127.0.0.1:2049, which a QEMU guest
on the user network reaches as 10.0.2.2. Stopped by its PID; its files stay in the
test's temporary directory."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

CONF = """NFS_CORE_PARAM {{
    Protocols = 4;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Bind_addr = 127.0.0.1;
    NFS_Port = 2049;
}}
NFSV4 {{
    Graceless = true;
    Allow_Numeric_Owners = true;
    Only_Numeric_Owners = true;
}}
NFS_KRB5 {{ Active_krb5 = false; }}
EXPORT {{
    Export_Id = 1;
    Path = {share};
    Pseudo = /export;
    Access_Type = RO;
    Squash = No_Root_Squash;
    SecType = sys;
    Protocols = 4;
    Transports = TCP;
    FSAL {{ Name = VFS; }}
}}
LOG {{ Default_Log_Level = WARN; }}
"""


@contextlib.contextmanager
def nfs_export(share: Path, work: Path) -> Iterator[Path]:
    """Export *share* as 127.0.0.1:/export until the block ends; yields the work dir."""
    work.mkdir(parents=True, exist_ok=True)
    conf = work / "ganesha.conf"
    conf.write_text(CONF.format(share=share))
    log = work / "ganesha.log"
    proc = subprocess.Popen(["ganesha.nfsd", "-F", "-f", str(conf), "-L", str(log),
                             "-p", str(work / "ganesha.pid"), "-N", "NIV_WARN"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, cwd=work)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", 2049), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                    raise RuntimeError(f"ganesha.nfsd did not start: {text}") from None
                time.sleep(0.2)
        yield work
    finally:
        proc.terminate()  # by its PID
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
