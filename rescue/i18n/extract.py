"""Find every translatable string: the literal arguments of ``_()`` and ``N_()`` in the
wizard, the unattended runner and the engine below them (refusals, error sentences,
eligibility reasons, the hardware verdict, plan and backup summaries). Used to write
``po/rescue.pot`` (``python -m rescue.i18n update``) and by the test that checks every
language translates every string."""

from __future__ import annotations

import ast
from pathlib import Path

from rescue.i18n.msgfmt import parse_po

PACKAGE = Path(__file__).resolve().parents[1]
# Packages (directories, walked recursively) and single modules, relative to rescue/.
SOURCES = (
    "wizard", "i18n",
    "engine", "plan", "devices", "net", "hardware", "fs", "image", "repo",
    "errors.py", "runner.py", "services.py", "unattended.py", "sysmount.py",
)


def source_files(root: Path = PACKAGE) -> list[Path]:
    """The Python files of SOURCES, in a stable order."""
    files: list[Path] = []
    for sub in SOURCES:
        path = root / sub
        files.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return files


def messages(root: Path = PACKAGE) -> dict[str, list[str]]:
    """{msgid: ["wizard/screens/start.py:12", ...]} in source order."""
    found: dict[str, list[str]] = {}
    for path in source_files(root):
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


def merge_po(po_text: str, found: dict[str, list[str]]) -> str:
    """*po_text* brought in line with *found*: its header kept, entries in source order
    with their translations (empty for new strings), strings no longer used dropped."""
    header = po_text[: po_text.index("\n\n")] if "\n\n" in po_text else po_text.rstrip("\n")
    catalog = parse_po(po_text)
    out = [header, ""]
    for msgid, where in found.items():
        out.append("#: " + " ".join(where))
        out.append(f'msgid "{po_escape(msgid)}"')
        out.append(f'msgstr "{po_escape(catalog.get(msgid, ""))}"')
        out.append("")
    return "\n".join(out)
