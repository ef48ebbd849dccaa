"""Imports hidden inside functions are invisible to the layer check at import time, so
each one must be deliberate: listed here with its reason. A new function-level import
of a rescue module or of textual/pyudev/parted fails this test until it is listed (or,
better, moved to the top of its module). import-linter (`make lint`) sees them too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "rescue"
WATCHED = ("rescue", "textual", "pyudev", "parted")

# (file relative to rescue/, module imported) -> why it is imported where it is used
ALLOWED: dict[tuple[str, str], str] = {
    ("commands/wizard.py", "rescue.wizard.app"):
        "textual loads only when the wizard opens: `rescue list`, `rescue --help` and the "
        "unattended runs never import it (every command module is imported by the CLI)",
    ("commands/wizard.py", "rescue.wizard.backend"):
        "the engine loads after the wizard's first screen is drawn (built by "
        "rescue.wizard.deferred in a thread; 8 s under QEMU TCG, PERFORMANCE.md)",
    ("commands/wizard.py", "rescue.wizard"):
        "`from rescue.wizard import headless`: only an unattended run loads it (it "
        "imports the engine's services)",
    ("cli.py", "rescue.repo.location"):
        "only a crash log needs redact(); at the top it loaded the whole repository "
        "package on every command's start",
}


def deferred_imports() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        rel = str(path.relative_to(PACKAGE))
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    if name.split(".")[0] in WATCHED:
                        found.add((rel, name))
    return found


def test_every_deferred_import_is_listed_with_its_reason() -> None:
    unlisted = sorted(deferred_imports() - set(ALLOWED))
    assert unlisted == [], "function-level imports not in ALLOWED: " + repr(unlisted)


@pytest.mark.parametrize("entry", sorted(ALLOWED))
def test_listed_deferred_imports_still_exist(entry: tuple[str, str]) -> None:
    assert entry in deferred_imports(), f"{entry} is no longer imported in a function"
