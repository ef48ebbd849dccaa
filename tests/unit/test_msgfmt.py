"""rescue.i18n.msgfmt (our .po compiler, kept for the reason in its docstring) against GNU
gettext's msgfmt: every catalog and a catalog of edge cases give the same translation for
every msgid. GNU msgfmt is required, not optional: `make setup` installs it (Debian's
`gettext` is in the Makefile's APT_PACKAGES)."""

from __future__ import annotations

import gettext
import shutil
import subprocess
from pathlib import Path

import pytest

from rescue import i18n
from rescue.i18n.extract import messages
from rescue.i18n.msgfmt import compile_file, parse_po

CATALOGS = sorted(i18n.PO_DIR.glob("*.po"))

EDGE_CASES = r'''# Edge cases of the .po format.
#, fuzzy
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"
"Language: de\n"

#: a.py:1
msgid "Plain"
msgstr "Schlicht"

#: a.py:2
#, fuzzy, python-brace-format
msgid "Fuzzy {one}"
msgstr "Unscharf {one}"

#, python-brace-format
msgid ""
"Multi "
"line {x}"
msgstr ""
"Mehr"
"zeilig {x}"

msgid "Escapes \"quoted\"\ttab\\back\nnewline"
msgstr "Maskiert \"zitiert\"\tTab\\zurück\nZeile"

msgid "Untranslated"
msgstr ""

#, fuzzy
msgid "Fuzzy and untranslated"
msgstr ""

msgid "After the fuzzy ones"
msgstr "Nach den unscharfen"

#| msgid "Umlaut"
msgid "Umlaut ä"
msgstr "Ümlaut ß €"

#~ msgid "Obsolete"
#~ msgstr "Veraltet"
'''


def gnu_msgfmt() -> str:
    path = shutil.which("msgfmt")
    assert path, "GNU msgfmt is missing: run `make setup` (apt-get install gettext)"
    return path


def both(po: Path, tmp_path: Path) -> tuple[gettext.GNUTranslations, gettext.GNUTranslations]:
    """*po* compiled by ours (as `python -m rescue.i18n compile` does) and by GNU msgfmt."""
    ours, gnu = tmp_path / "ours.mo", tmp_path / "gnu.mo"
    compile_file(po, ours)
    subprocess.run([gnu_msgfmt(), "--check-format", "-o", str(gnu), str(po)], check=True,
                   capture_output=True)
    with ours.open("rb") as a, gnu.open("rb") as b:
        return gettext.GNUTranslations(a), gettext.GNUTranslations(b)


def test_there_are_catalogs() -> None:
    assert {po.stem for po in CATALOGS} >= {"de", "fr", "es"}


@pytest.mark.parametrize("po", CATALOGS, ids=[po.stem for po in CATALOGS])
def test_every_catalog_compiles_to_the_same_translations_as_gnu_msgfmt(
        po: Path, tmp_path: Path) -> None:
    ours, gnu = both(po, tmp_path)
    msgids = set(parse_po(po.read_text(encoding="utf-8"))) | set(messages())
    assert len(msgids) > 100
    for msgid in sorted(msgids):
        assert ours.gettext(msgid) == gnu.gettext(msgid), msgid
    assert ours._catalog == gnu._catalog  # type: ignore[attr-defined]  # nothing more, nothing less


def test_edge_cases_compile_like_gnu_msgfmt(tmp_path: Path) -> None:
    po = tmp_path / "edge.po"
    po.write_text(EDGE_CASES, encoding="utf-8")
    ours, gnu = both(po, tmp_path)
    assert ours._catalog == gnu._catalog  # type: ignore[attr-defined]
    assert ours.gettext("After the fuzzy ones") == "Nach den unscharfen"
    assert ours.gettext("Fuzzy {one}") == "Fuzzy {one}"  # fuzzy: not used
    assert ours.gettext("Multi line {x}") == "Mehrzeilig {x}"
    assert ours.gettext("Umlaut ä") == "Ümlaut ß €"
    assert ours.info()["language"] == "de"


def test_plural_forms_are_refused_not_miscompiled() -> None:
    with pytest.raises(ValueError):
        parse_po('msgid "one file"\nmsgid_plural "{n} files"\nmsgstr[0] "eine Datei"\n')
