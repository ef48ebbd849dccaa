"""Shared real-disk fixtures: sample systems on loop devices, backed up once per session."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from loopdev import loop_device
from realdisk import SRC_SIZE, BackedUp, MiB, rescue_cli, source_digest

from rescue.demo.sample_system import build_gpt_system, build_mbr_system


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
