"""A small, dependency-free ``msgfmt``: compile gettext ``.po`` sources to ``.mo``.

Supports what our catalogs use: ``msgctxt``-less entries, multi-line strings, the
standard C escapes and fuzzy flags (fuzzy entries are skipped, as GNU msgfmt does).
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
            if section == "msgstr":
                keep = fuzzy
                flush()
                fuzzy = keep
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
