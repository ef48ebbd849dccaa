"""The live ISO checks run only from `make iso-test` (RESCUE_ISO_TESTS=1).

They need a built ISO (`make iso`: root, the network, ~5 minutes) and boot it in QEMU
under TCG (minutes per boot), so `make test` skips them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ENABLED = os.environ.get("RESCUE_ISO_TESTS") == "1"
REPO_ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    skip = pytest.mark.skip(
        reason="live ISO checks (build + QEMU boots, many minutes) run only from "
        "`make iso-test`, which sets RESCUE_ISO_TESTS=1"
    )
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def iso_path() -> Path:
    path = Path(os.environ.get("RESCUE_ISO", REPO_ROOT / "iso/out/rescue.iso")).resolve()
    if not path.is_file():
        pytest.fail(f"no ISO at {path}: run `make iso` first (make iso-test does)")
    return path


@pytest.fixture(scope="session")
def iso_out() -> Path:
    return Path(os.environ.get("RESCUE_ISO_OUT", REPO_ROOT / "iso/out")).resolve()


SERIAL = "console=ttyS0,115200n8"


@pytest.fixture(scope="session")
def serial_iso(iso_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ISO with a custom default entry that adds the serial console (the mechanism
    users use: rescue make-usb --iso-only --append), so the shipped menus boot."""
    from rescue.engine.usbstick import UsbJob, UsbWriter
    from rescue.runner import CommandRunner

    out = tmp_path_factory.mktemp("serial") / "rescue-serial.iso"
    UsbWriter(CommandRunner(), say=lambda _m: None).write(
        UsbJob(iso=str(iso_path), target=out, append=SERIAL, title="Rescue (serial)",
               iso_only=True))
    return out
