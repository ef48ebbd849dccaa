"""Helpers for the real-disk integration tests (imported by name; fixtures are in
conftest.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from loopdev import mounted

from rescue.demo.sample_system import SampleSystem, tree_digest

MiB = 1024 * 1024
SRC_SIZE = 512 * MiB

def rescue_cli(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "rescue", *args], capture_output=True,
                          text=True)
    assert "Traceback" not in proc.stderr, proc.stderr
    if check and proc.returncode != 0:
        raise AssertionError(f"rescue {' '.join(args)} failed ({proc.returncode}): "
                             f"{proc.stderr}\n{proc.stdout}")
    return proc


@dataclass
class BackedUp:
    system: SampleSystem
    repo: Path
    image_id: str
    digest: dict  # tree digest of the source root filesystem
    source_file: Path


def source_digest(node: str, where: Path) -> dict:
    with mounted(node, where, "ro,noload") as m:
        return tree_digest(m)


def sfdisk_json(dev: str) -> dict:
    out = subprocess.run(["sfdisk", "-J", dev], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout)["partitiontable"])


def blkid(node: str) -> dict[str, str]:
    """blkid's fields of *node*, its shell escapes undone ("System\\ Reserved")."""
    out = subprocess.run(["blkid", "-p", "-o", "export", node], capture_output=True,
                         text=True).stdout
    return {k: re.sub(r"\\(.)", r"\1", v)
            for k, v in (line.split("=", 1) for line in out.splitlines() if "=" in line)}


def file_is_zero(path: Path) -> bool:
    """True when a (sparse) backing file holds only zeros."""
    zero = bytes(MiB)
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            if chunk != zero[: len(chunk)]:
                return False
    return True
