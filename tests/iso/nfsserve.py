"""A real NFS server (nfs-ganesha, userspace: this host's kernel has no nfsd) exporting a
folder read-only over NFSv4 as /export on the host's 127.0.0.1:2049, which a QEMU guest
on the user network reaches as 10.0.2.2. Stopped by its PID; its files stay in the
test's temporary directory."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from localserver import serving

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
    argv = ["ganesha.nfsd", "-F", "-f", str(conf), "-L", str(log), "-p",
            str(work / "ganesha.pid"), "-N", "NIV_WARN"]

    def logs() -> str:
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""

    with serving(argv, 2049, "ganesha.nfsd", logs, cwd=work):
        yield work
