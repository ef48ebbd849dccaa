"""Real sample systems for the wizard's end-to-end tests: a small GPT disk (ESP + ext4
root with /etc/hostname and os-release + swap) on a loop device, backed up with the real
engine into a real repository. Everything is removed in finally blocks by the callers."""

from __future__ import annotations

import hashlib
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from loopdev import MiB, mounted, partition, settle, sh

from rescue import services
from rescue.engine.backup import BackupOptions
from rescue.runner import CommandRunner

SOURCE_SIZE = 160 * MiB
LAYOUT = """label: gpt
size=16MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI"
size=112MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root"
type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name="swap"
"""
FILES = {
    "etc/hostname": b"demo-pc\n",
    "etc/os-release": b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
                      b'VERSION_ID="12"\nID=debian\n',
    "etc/timezone": b"Europe/Berlin\n",
    "home/user/notes.txt": b"restore me\n" * 2000,
    "usr/bin/tool": bytes(range(256)) * 4096,
}


@dataclass
class Backup:
    repo: Path
    image_id: str


def build_source(dev: str, workdir: Path) -> list[str]:
    """Partition *dev*, make the filesystems (ext4 populated with mkfs -d), return nodes."""
    nodes = partition(dev, LAYOUT)
    tree = workdir / "tree"
    for rel, data in FILES.items():
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    sh("mkfs.vfat", "-n", "EFI", nodes[0])
    sh("mkfs.ext4", "-q", "-F", "-L", "root", "-d", tree, nodes[1])
    sh("mkswap", "-L", "swap", nodes[2])
    settle()
    return nodes


def back_up(dev: str, repo: Path, name: str = "first") -> Backup:
    """Back up *dev* with the real engine (the same facade the wizard calls)."""
    prepared = services.prepare_backup(dev, str(repo), BackupOptions(name=name),
                                       CommandRunner())
    result = services.run_backup(prepared, cancel=threading.Event())
    return Backup(repo, result.manifest.id)


def restored_partitions(dev: str) -> list[dict]:
    out = subprocess.run(["sfdisk", "-J", dev], capture_output=True, text=True, check=True)
    import json

    return list(json.loads(out.stdout)["partitiontable"]["partitions"])


def check_restored(dev: str, workdir: Path) -> None:
    """The restored disk has the table, a clean ext4 root and the source's files."""
    from loopdev import refresh_partitions

    parts = restored_partitions(dev)
    assert [p.get("name") for p in parts] == ["EFI", "root", "swap"], parts
    nodes = refresh_partitions(dev)
    fsck = subprocess.run(["e2fsck", "-f", "-n", nodes[1]], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    with mounted(nodes[1], workdir / "check", "ro") as m:
        for rel, data in FILES.items():
            got = (m / rel).read_bytes()
            assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), rel
