"""Fixtures of the system (QEMU boot) tests: the cached test systems and their backups.

Test modules import them by name. (Not a conftest.py: tests elsewhere do
``from conftest import ...``, and a second conftest module would shadow theirs.)

The full boot matrix runs with ``RESCUE_BOOT_MATRIX=1`` (``make boot-matrix``); ``make test``
runs a representative subset and skips the other cells with a reason.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import testsystem


def _tools_or_skip() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for loop devices, mounts and chroot")
    testsystem.ensure_host_packages()
    for tool in ("qemu-system-x86_64", "debootstrap", "mcopy"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing even after installing the host packages")


@pytest.fixture(scope="session")
def test_systems() -> dict[str, testsystem.TestSystem]:
    """All three layouts, built once and cached under /var/cache/rescue-tests."""
    _tools_or_skip()
    return {layout: testsystem.test_system(layout) for layout in testsystem.LAYOUTS}


@pytest.fixture(scope="session")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch directory on a real filesystem for disk images and repositories.

    /tmp may be a small tmpfs elsewhere; the cache filesystem has room for sparse images."""
    base = testsystem.CACHE_ROOT / "scratch"
    base.mkdir(parents=True, exist_ok=True)
    path = Path(
        __import__("tempfile").mkdtemp(prefix=f"run-{os.getpid()}-", dir=base)
    )
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def backups(test_systems: dict[str, testsystem.TestSystem], scratch: Path) -> dict[str, tuple]:
    """layout -> (TestSystem, repository path, image id): one real backup per layout."""
    import bootcell

    out = {}
    for layout, ts in test_systems.items():
        repo = scratch / f"repo-{layout}"
        out[layout] = (ts, repo, bootcell.backup(ts, repo))
    return out
