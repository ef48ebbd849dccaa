"""Only rescue/wizard imports textual; the CLI, unattended mode and the engine never load
it; nothing touches disks at import time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from wizard_fixtures import english  # noqa: F401 (fixtures)

import rescue

PACKAGE = Path(rescue.__file__).resolve().parent


def test_only_the_wizard_imports_textual():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "wizard" in path.relative_to(PACKAGE).parts[:1]:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "textual" or n.startswith("textual.") for n in names):
                offenders.append(str(path.relative_to(PACKAGE)))
    assert not offenders


def test_cli_and_unattended_mode_do_not_load_textual():
    code = (
        "import sys\n"
        "import rescue.cli, rescue.unattended, rescue.wizard.headless, rescue.wizard.backend\n"
        "rescue.cli.build_parser()\n"
        "assert 'textual' not in sys.modules, sorted(m for m in sys.modules if 'textual' in m)\n"
        "import rescue.wizard.app\n"
        "assert 'textual' in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_wizard_subcommand_is_registered():
    proc = subprocess.run([sys.executable, "-m", "rescue", "wizard", "--help"],
                          capture_output=True, text=True)
    assert proc.returncode == 0
    for option in ("--include-loop", "--repo", "--job", "--cmdline"):
        assert option in proc.stdout
