"""Find every translatable string: the literal arguments of ``_()`` and ``N_()`` in the
wizard and the unattended runner. Used to write ``po/rescue.pot`` and by the test that
checks every language translates every string."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
SOURCES = ("wizard", "i18n")


def messages(root: Path = PACKAGE) -> dict[str, list[str]]:
    """{msgid: ["wizard/screens/start.py:12", ...]} in source order."""
    found: dict[str, list[str]] = {}
    for sub in SOURCES:
        for path in sorted((root / sub).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id in ("_", "N_")
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                ):
                    where = f"{path.relative_to(root)}:{node.lineno}"
                    found.setdefault(node.args[0].value, []).append(where)
    return found


def po_escape(text: str) -> str:
    return (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            .replace("\t", "\\t"))


def pot(found: dict[str, list[str]]) -> str:
    out = ['msgid ""', 'msgstr ""', '"Content-Type: text/plain; charset=UTF-8\\n"', ""]
    for msgid, where in found.items():
        out.append("#: " + " ".join(where))
        out.append(f'msgid "{po_escape(msgid)}"')
        out.append('msgstr ""')
        out.append("")
    return "\n".join(out)
