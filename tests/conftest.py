from __future__ import annotations

import os

import pytest

IS_ROOT = os.geteuid() == 0
# CI sets this: the root/loop tests must run there; not being root is an error, not a skip.
REQUIRE_ROOT = os.environ.get("RESCUE_REQUIRE_ROOT_TESTS") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IS_ROOT:
        return
    if REQUIRE_ROOT:
        raise pytest.UsageError("RESCUE_REQUIRE_ROOT_TESTS=1 but the tests are not run as root")
    skip = pytest.mark.skip(reason="needs root for loop devices, mkfs and mount")
    for item in items:
        if "root" in item.keywords or "qemu" in item.keywords:
            item.add_marker(skip)
