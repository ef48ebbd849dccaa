"""Fixtures of the wizard tests: English by default, blank loop devices, and a real
backed-up sample system on loop devices (session-wide, detached at the end).

Each test module imports them. This is not a conftest.py on purpose: other tests in the
suite do `from conftest import ...`, which a second conftest module would shadow."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/loopdev.py

from loopdev import loop_device  # noqa: E402

from rescue import i18n  # noqa: E402

__all__ = ["english", "loops", "real_backup"]


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    """Every test starts (and leaves the process) in English, en_US formats."""
    i18n.set_language("en")
    i18n.set_format("en_US")
    yield
    i18n.set_language("en")
    i18n.set_format("en_US")


@pytest.fixture(scope="session")
def real_backup(tmp_path_factory: pytest.TempPathFactory):
    """A sample system on a loop device, backed up once with the real engine."""
    if os.geteuid() != 0:
        pytest.skip("needs root for loop devices, mkfs and mount")
    from wizard_disks import back_up, build_source

    tmp = tmp_path_factory.mktemp("wizard-src")
    with loop_device(tmp / "source.img", 160 * 1024 * 1024) as dev:
        build_source(dev, tmp)
        yield back_up(dev, tmp / "repo")


@pytest.fixture
def loops(tmp_path: Path) -> Iterator[Callable[[int, str], str]]:
    """A factory of blank loop devices, all detached after the test."""
    with ExitStack() as stack:
        def make(size: int, name: str = "target") -> str:
            return stack.enter_context(loop_device(tmp_path / f"{name}.img", size))
        yield make
