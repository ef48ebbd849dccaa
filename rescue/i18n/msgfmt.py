"""A small, dependency-free ``msgfmt``: compile gettext ``.po`` sources to ``.mo``.

Supports what our catalogs use: ``msgctxt``-less entries, multi-line strings, the
standard C escapes and fuzzy flags (fuzzy entries are skipped, as GNU msgfmt does; a
fuzzy header is kept, as GNU msgfmt keeps it). Plural forms and contexts are refused
with a ValueError rather than compiled wrongly.

Why ours and not GNU msgfmt or Babel (issue 10): the compiler is needed at run time,
not only at build time. ``rescue.i18n.load_translation`` compiles a ``.po`` in memory
when its ``.mo`` is missing or older (a fresh checkout; the wheel in the live image,
which ships the ``.po`` sources and whatever ``.mo`` files the tree had, with install
times for mtimes). The live image has neither GNU gettext (its locales are even
stripped) nor Babel, and adding Babel as a runtime dependency of the live image for
these 90 lines buys nothing. ``extract.merge_po`` reads catalogs with ``parse_po`` too.
Using GNU msgfmt for ``python -m rescue.i18n compile`` only would give two compilers
whose outputs could differ between the build and the fallback; one compiler, checked
against GNU msgfmt, is simpler. tests/unit/test_msgfmt.py compiles every catalog with
this module and with GNU msgfmt (Debian's ``gettext``, in the Makefile's APT_PACKAGES)
and requires the same translation for every msgid, plus a catalog of edge cases
(escapes, multi-line strings, fuzzy entries and header, obsolete and untranslated
entries, non-ASCII); that comparison found the fuzzy-flag bug fixed in ``parse_po``
(a fuzzy entry made every later entry fuzzy too).
"""

from __future__ import annotations

import ast
import struct
from pathlib import Path


def parse_po(text: str) -> dict[str, str]:
    """Return {msgid: msgstr} for every translated, non-fuzzy entry (header included)."""
    messages: dict[str, str] = {}
    msgid: list[str] = []
    msgstr: list[str] = []
    section = ""
    fuzzy = False

    def flush() -> None:
        nonlocal msgid, msgstr, fuzzy
        if section and msgstr is not None:
            ident, trans = "".join(msgid), "".join(msgstr)
            if trans and not (fuzzy and ident):
                messages[ident] = trans
        msgid, msgstr, fuzzy = [], [], False

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("#,") and "fuzzy" in line:
            if section == "msgstr":
                flush()
                section = ""
            fuzzy = True
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("msgid "):
            if section == "msgstr":  # no flags line in between: the new entry is not fuzzy
                flush()
            section = "msgid"
            line = line[6:].strip()
        elif line.startswith("msgstr "):
            section = "msgstr"
            line = line[7:].strip()
        if not line.startswith('"'):
            raise ValueError(f"line {lineno}: cannot parse {raw!r}")
        value = ast.literal_eval(line)
        (msgid if section == "msgid" else msgstr).append(value)
    if section == "msgstr":
        flush()
    return messages


def compile_mo(messages: dict[str, str]) -> bytes:
    """The GNU .mo binary for *messages* (little endian, no hash table)."""
    keys = sorted(messages)
    ids = b""
    strs = b""
    offsets = []
    for key in keys:
        k, v = key.encode(), messages[key].encode()
        offsets.append((len(ids), len(k), len(strs), len(v)))
        ids += k + b"\0"
        strs += v + b"\0"
    n = len(keys)
    keystart = 7 * 4 + 16 * n
    valuestart = keystart + len(ids)
    koffsets: list[int] = []
    voffsets: list[int] = []
    for o1, l1, o2, l2 in offsets:
        koffsets += [l1, o1 + keystart]
        voffsets += [l2, o2 + valuestart]
    header = struct.pack("Iiiiiii", 0x950412DE, 0, n, 7 * 4, 7 * 4 + n * 8, 0, 0)
    return (
        header
        + struct.pack(f"{len(koffsets)}i", *koffsets)
        + struct.pack(f"{len(voffsets)}i", *voffsets)
        + ids
        + strs
    )


def compile_file(po: Path, mo: Path) -> None:
    mo.parent.mkdir(parents=True, exist_ok=True)
    mo.write_bytes(compile_mo(parse_po(po.read_text(encoding="utf-8"))))
