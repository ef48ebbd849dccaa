"""Translations and regional formats."""

from __future__ import annotations

import string
import subprocess
from datetime import datetime

import pytest
from wizard_fixtures import english  # noqa: F401 (fixtures)

from rescue import i18n
from rescue.i18n import _
from rescue.i18n.extract import messages
from rescue.i18n.msgfmt import parse_po

LANGS = ("de", "fr", "es")


@pytest.mark.parametrize("lang", LANGS)
def test_every_string_is_translated(lang):
    catalog = parse_po((i18n.PO_DIR / f"{lang}.po").read_text(encoding="utf-8"))
    found = messages()
    assert len(found) > 100
    missing = [m for m in found if not catalog.get(m)]
    assert not missing, f"{lang}: untranslated: {missing[:5]}"


def placeholders(text: str) -> list[tuple[str, str | None, str]]:
    """Every {field!conversion:spec} of *text*, sorted (a stray brace raises)."""
    return sorted((f, conv, spec) for _lit, f, spec, conv in string.Formatter().parse(text)
                  if f is not None)


@pytest.mark.parametrize("lang", LANGS)
def test_translations_keep_the_placeholders(lang):
    """A translation with a missing, misspelt or extra {placeholder} (or a stray brace)
    would crash .format() at the worst time: while refusing a restore."""
    catalog = parse_po((i18n.PO_DIR / f"{lang}.po").read_text(encoding="utf-8"))
    wrong = []
    for msgid in messages():
        translation = catalog.get(msgid, msgid)
        try:
            same = placeholders(msgid) == placeholders(translation)
            values = {f: "x" for f, _conv, _spec in placeholders(msgid)}
            if same and values and not any(spec for _f, _conv, spec in placeholders(msgid)):
                translation.format(**values)
        except (ValueError, KeyError, IndexError) as exc:
            same = False
            translation += f"  ({exc})"
        if not same:
            wrong.append(f"{msgid!r} -> {translation!r}")
    assert not wrong, f"{lang}: placeholders differ:\n" + "\n".join(wrong)


def test_compile_writes_mo_files_that_are_used(tmp_path, monkeypatch):
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    subprocess.run  # noqa: B018 - the module entry point is exercised below
    import runpy
    import sys

    monkeypatch.setattr(sys, "argv", ["rescue.i18n", "compile"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("rescue.i18n", run_name="__main__")
    assert done.value.code == 0
    assert (tmp_path / "de" / "LC_MESSAGES" / "rescue.mo").stat().st_size > 1000


def test_switching_language():
    i18n.set_language("de")
    assert _("Repair your computer") == "Computerreparaturoptionen"
    i18n.set_language("fr")
    assert _("Next") == "Suivant"
    i18n.set_language("es")
    assert _("Restore a system image") == "Restaurar una imagen del sistema"
    i18n.set_language("en")
    assert _("Next") == "Next"
    with pytest.raises(ValueError, match="Unknown language"):
        i18n.set_language("xx")


def test_regional_formats():
    when = datetime(2026, 10, 31, 14, 5)
    i18n.set_format("en_US")
    assert i18n.format_datetime(when) == "10/31/2026 02:05 PM"
    assert i18n.format_size(1_234_567_890) == "1.2 GB"
    i18n.set_format("de_DE")
    assert i18n.format_datetime(when) == "31.10.2026 14:05"
    assert i18n.format_size(1_234_567_890) == "1,2 GB"
    assert i18n.format_number(1234567.5, 1) == "1.234.567,5"
    i18n.set_format("fr_FR")
    assert i18n.format_datetime(when) == "31/10/2026 14:05"
    assert i18n.format_number(1234567, 0) == "1\u202f234\u202f567"
    assert i18n.format_duration(3725) == "1:02:05"
    assert i18n.format_duration(None) == "--:--"
