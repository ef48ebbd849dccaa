"""Architecture rules: the format and the planner never import textual, pyudev or parted;
the engine never imports textual; nothing touches disks at import time."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CHECK = """
import importlib, json, sys
for name in {modules!r}:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {banned!r})))
"""


def loaded(modules: list[str], banned: list[str]) -> list[str]:
    code = CHECK.format(modules=modules, banned=banned)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return list(json.loads(out.stdout))


@pytest.mark.parametrize("module", [
    "rescue.image.manifest", "rescue.image.repository", "rescue.image.chunks",
    "rescue.plan.restore", "rescue.fs.usedmap",
])
def test_pure_layers_import_no_ui_udev_or_parted(module: str) -> None:
    assert loaded([module], ["textual", "pyudev", "parted", "_ped"]) == []


@pytest.mark.parametrize("module", [
    "rescue.engine.restore", "rescue.engine.backup", "rescue.services",
    "rescue.commands.image_commands",
])
def test_engine_never_imports_textual(module: str) -> None:
    assert loaded([module], ["textual"]) == []


def test_only_the_partition_module_imports_parted() -> None:
    out = subprocess.run(["grep", "-rlE", r"^\s*(import parted|from parted)", "rescue"],
                         capture_output=True, text=True)
    assert out.stdout.split() == ["rescue/engine/partition.py"]

