"""``python -m rescue.i18n compile``: build the .mo catalogs from the .po sources."""

from __future__ import annotations

import sys

from rescue.i18n import PO_DIR, mo_path
from rescue.i18n.msgfmt import compile_file


def main(argv: list[str]) -> int:
    if argv[:1] != ["compile"]:
        print("usage: python -m rescue.i18n compile", file=sys.stderr)
        return 2
    for po in sorted(PO_DIR.glob("*.po")):
        mo = mo_path(po.stem)
        compile_file(po, mo)
        print(f"{po.name} -> {mo}")
    return 0


raise SystemExit(main(sys.argv[1:]))
