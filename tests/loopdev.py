"""Real loop devices on sparse files for the integration tests.

The kernel on the test machines has no partition parser for loop devices, so after a
partition table is written the nodes are created with ``partx -u`` (as the product does).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

MiB = 1024 * 1024


def sh(*argv: str | os.PathLike[str], input: str | None = None, env: dict | None = None) -> str:
    proc = subprocess.run(
        [str(a) for a in argv], input=input, capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{argv!r} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def settle() -> None:
    subprocess.run(["udevadm", "settle", "--timeout=10"], capture_output=True)


@contextlib.contextmanager
def loop_device(backing: Path, size: int | None = None,
                sector_size: int = 512) -> Iterator[str]:
    """Attach *backing* (created sparse with *size* if given), with the given logical
    sector size, and always detach it."""
    if size is not None:
        with open(backing, "wb") as f:
            f.truncate(size)
    sectors = ["--sector-size", str(sector_size)] if sector_size != 512 else []
    dev = sh("losetup", "-f", "--show", *sectors, backing).strip()
    # A loop device reused from an earlier user may still carry partitions it added.
    subprocess.run(["partx", "-d", dev], capture_output=True)
    try:
        yield dev
    finally:
        subprocess.run(["partx", "-d", dev], capture_output=True)
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def partition(dev: str, sfdisk_script: str) -> list[str]:
    """Write a table with sfdisk, make the kernel see it, return the partition nodes."""
    sh("sfdisk", "--no-reread", "-q", dev, input=sfdisk_script)
    return refresh_partitions(dev)


def refresh_partitions(dev: str) -> list[str]:
    subprocess.run(["partx", "-u", dev], capture_output=True)
    subprocess.run(["partx", "-a", dev], capture_output=True)  # logical partitions
    settle()
    name = Path(dev).name
    parts = sorted(
        (p for p in Path("/sys/class/block").glob(f"{name}p*")),
        key=lambda p: int(p.name[len(name) + 1 :]),
    )
    return [f"/dev/{p.name}" for p in parts]


@contextlib.contextmanager
def mounted(dev: str, mountpoint: Path, options: str = "") -> Iterator[Path]:
    mountpoint.mkdir(parents=True, exist_ok=True)
    argv = ["mount", dev, str(mountpoint)]
    if options:
        argv[1:1] = ["-o", options]
    sh(*argv)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], capture_output=True)
