"""``python -m rescue.i18n compile``: build the .mo catalogs from the .po sources (with
rescue.i18n.msgfmt; its docstring says why ours rather than GNU msgfmt or Babel).
``python -m rescue.i18n update``: rewrite ``po/rescue.pot`` from the sources and bring
every ``po/<lang>.po`` in line with it (new strings untranslated, unused ones dropped)."""

from __future__ import annotations

import sys

from rescue.i18n import PO_DIR, mo_path
from rescue.i18n.extract import merge_po, messages, pot
from rescue.i18n.msgfmt import compile_file


def update() -> int:
    found = messages()
    (PO_DIR / "rescue.pot").write_text(pot(found), encoding="utf-8")
    for po in sorted(PO_DIR.glob("*.po")):
        po.write_text(merge_po(po.read_text(encoding="utf-8"), found), encoding="utf-8")
        print(f"{po.name}: {len(found)} strings")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["update"]:
        return update()
    if argv[:1] != ["compile"]:
        print("usage: python -m rescue.i18n compile|update", file=sys.stderr)
        return 2
    for po in sorted(PO_DIR.glob("*.po")):
        mo = mo_path(po.stem)
        compile_file(po, mo)
        print(f"{po.name} -> {mo}")
    return 0


raise SystemExit(main(sys.argv[1:]))
