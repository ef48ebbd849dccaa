"""Shared real-disk fixtures: sample systems on loop devices, backed up once per session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from loopdev import loop_device, mounted

from rescue.demo.sample_system import (
    SampleSystem,
    build_gpt_system,
    build_mbr_system,
    tree_digest,
)

MiB = 1024 * 1024
SRC_SIZE = 512 * MiB


def rescue_cli(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "rescue", *args], capture_output=True,
                          text=True)
    assert "Traceback" not in proc.stderr, proc.stderr
    if check and proc.returncode != 0:
        raise AssertionError(f"rescue {' '.join(args)} failed: {proc.stderr}")
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


@pytest.fixture(scope="session")
def gpt_backup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackedUp]:
    if os.geteuid() != 0:
        pytest.skip("needs root for loop devices, mkfs and mount")
    tmp = tmp_path_factory.mktemp("gpt")
    with loop_device(tmp / "src.img", SRC_SIZE) as dev:
        system = build_gpt_system(dev)
        digest = source_digest(system.nodes["root"], tmp / "mnt")
        repo = tmp / "repo"
        proc = rescue_cli("backup", "--disk", dev, "--repo", str(repo), "--name", "first",
                          check=True)
        assert "written to" in proc.stdout
        images = json.loads(rescue_cli("list", "--repo", str(repo), "--json",
                                       check=True).stdout)
        yield BackedUp(system, repo, images[0]["id"], digest, tmp / "src.img")


@pytest.fixture(scope="session")
def mbr_backup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackedUp]:
    if os.geteuid() != 0:
        pytest.skip("needs root for loop devices, mkfs and mount")
    tmp = tmp_path_factory.mktemp("mbr")
    with loop_device(tmp / "src.img", 256 * MiB) as dev:
        system = build_mbr_system(dev)
        digest = source_digest(system.nodes["root"], tmp / "mnt")
        repo = tmp / "repo"
        rescue_cli("backup", "--disk", dev, "--repo", str(repo), check=True)
        images = json.loads(rescue_cli("list", "--repo", str(repo), "--json",
                                       check=True).stdout)
        yield BackedUp(system, repo, images[0]["id"], digest, tmp / "src.img")


@pytest.fixture
def blank_disk(tmp_path: Path) -> Iterator:
    """A factory for blank loop devices of a given size, all detached afterwards."""
    with ExitStack() as stack:
        def make(size: int, name: str = "target") -> str:
            return stack.enter_context(loop_device(tmp_path / f"{name}.img", size))
        yield make


def sfdisk_json(dev: str) -> dict:
    out = subprocess.run(["sfdisk", "-J", dev], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout)["partitiontable"])


def blkid(node: str) -> dict[str, str]:
    out = subprocess.run(["blkid", "-p", "-o", "export", node], capture_output=True,
                         text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def file_is_zero(path: Path) -> bool:
    """True when a (sparse) backing file holds only zeros."""
    zero = bytes(MiB)
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            if chunk != zero[: len(chunk)]:
                return False
    return True
