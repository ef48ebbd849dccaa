"""Translations (gettext) and regional formats for the wizard, unattended runs and the
sentences of the engine below them (refusals, errors, reasons, the hardware verdict).

Catalogs: ``po/<lang>.po`` are the sources; ``python -m rescue.i18n compile`` (run by
``make setup`` and by the ISO build before it makes the wheel) writes
``locale/<lang>/LC_MESSAGES/rescue.mo``. When a compiled catalog is missing or older
than its source, the source is compiled in memory, so a fresh checkout is translated too.

Regional formats (dates, times, numbers, sizes) come from the small tables below rather
than from the C library's locales: a live system rarely has every locale generated.
"""

from __future__ import annotations

import gettext
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rescue.i18n.msgfmt import compile_mo, parse_po

DOMAIN = "rescue"
HERE = Path(__file__).resolve().parent
PO_DIR = HERE / "po"
LOCALE_DIR = HERE / "locale"

# Language code -> its own name (shown in that language, as installers do).
LANGUAGES: dict[str, str] = {
    "en": "English",
    "de": "Deutsch",
    "fr": "Français",
    "es": "Español",
}


@dataclass(frozen=True)
class RegionFormat:
    code: str
    name: str
    date: str  # strftime pattern
    time: str
    decimal: str
    thousands: str
    currency: str  # "{amount} €" style template


FORMATS: dict[str, RegionFormat] = {
    f.code: f
    for f in (
        RegionFormat("en_US", "English (United States)", "%m/%d/%Y", "%I:%M %p", ".", ",", "${}"),
        RegionFormat("en_GB", "English (United Kingdom)", "%d/%m/%Y", "%H:%M", ".", ",", "£{}"),
        RegionFormat("de_DE", "Deutsch (Deutschland)", "%d.%m.%Y", "%H:%M", ",", ".", "{} €"),
        RegionFormat("fr_FR", "Français (France)", "%d/%m/%Y", "%H:%M", ",", "\u202f", "{} €"),
        RegionFormat("es_ES", "Español (España)", "%d/%m/%Y", "%H:%M", ",", ".", "{} €"),
    )
}

# Console keymaps (names as loadkeys / kbd knows them) -> description.
KEYMAPS: dict[str, str] = {
    "us": "English (US)",
    "uk": "English (UK)",
    "de": "Deutsch",
    "de-latin1": "Deutsch (latin1)",
    "fr": "Français (AZERTY)",
    "fr_CH": "Français (Suisse)",
    "es": "Español",
}

DEFAULT_FORMAT = {"en": "en_US", "de": "de_DE", "fr": "fr_FR", "es": "es_ES"}
DEFAULT_KEYMAP = {"en": "us", "de": "de", "fr": "fr", "es": "es"}

_translation: gettext.NullTranslations = gettext.NullTranslations()
_language = "en"
_format: RegionFormat = FORMATS["en_US"]


def mo_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.mo"


def load_translation(lang: str) -> gettext.NullTranslations:
    """The catalog for *lang* (compiled if present and fresh, else from the .po source)."""
    if lang == "en":
        return gettext.NullTranslations()
    po = PO_DIR / f"{lang}.po"
    mo = mo_path(lang)
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as f:
            return gettext.GNUTranslations(f)
    if po.exists():
        data = compile_mo(parse_po(po.read_text(encoding="utf-8")))
        return gettext.GNUTranslations(io.BytesIO(data))
    raise ValueError(f"No translation for language {lang!r}")


def set_language(lang: str) -> None:
    global _translation, _language
    if lang not in LANGUAGES:
        raise ValueError(
            f"Unknown language {lang!r}; choose one of: {', '.join(sorted(LANGUAGES))}."
        )
    _translation = load_translation(lang)
    _language = lang


def language_from_environment(environ: Mapping[str, str] | None = None) -> str:
    """The language the environment asks messages in, as gettext reads it: ``LANGUAGE``
    (a colon-separated list, ignored under the C locale), then ``LC_ALL``,
    ``LC_MESSAGES``, ``LANG``. "en" unless that names a language we translate."""
    env = os.environ if environ is None else environ
    locale = next((env[v] for v in ("LC_ALL", "LC_MESSAGES", "LANG") if env.get(v)), "")
    if locale.split(".")[0] in ("", "C", "POSIX"):
        return "en"
    for candidate in [*env.get("LANGUAGE", "").split(":"), locale]:
        code = candidate.split(".")[0].split("@")[0].split("_")[0].lower()
        if code in LANGUAGES:
            return code
    return "en"


def set_format(code: str) -> None:
    global _format
    if code not in FORMATS:
        raise ValueError(f"Unknown format {code!r}; choose one of: {', '.join(sorted(FORMATS))}.")
    _format = FORMATS[code]


def language() -> str:
    return _language


def region() -> RegionFormat:
    return _format


def _(message: str) -> str:
    """Translate *message* into the current language."""
    return _translation.gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _translation.ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark *message* for extraction; translate later with ``_``."""
    return message


# --- formatting -------------------------------------------------------------------------


def format_number(value: float, decimals: int = 0) -> str:
    text = f"{value:,.{decimals}f}"
    fmt = _format
    return text.replace(",", "\0").replace(".", fmt.decimal).replace("\0", fmt.thousands)


def format_size(nbytes: float) -> str:
    """Sizes in powers of 1000 (as disk vendors label them), with the regional separator."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    value = float(nbytes)
    for unit in units:
        if abs(value) < 1000 or unit == units[-1]:
            if unit == "B":
                return f"{int(value)} B"
            return f"{format_number(value, 1)} {unit}"
        value /= 1000
    return f"{nbytes} B"


def format_rate(bytes_per_second: float) -> str:
    return f"{format_size(bytes_per_second)}/s"


def format_date(dt: datetime) -> str:
    return dt.strftime(_format.date)


def format_time(dt: datetime) -> str:
    return dt.strftime(_format.time)


def format_datetime(dt: datetime) -> str:
    return f"{format_date(dt)} {format_time(dt)}"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    s = max(int(seconds), 0)
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60:02d}:{s % 60:02d}"
