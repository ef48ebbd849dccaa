"""Unattended mode: every wizard answer from the kernel command line or a job file.

Pure: text in, an :class:`Answers` model out (no I/O beyond reading the job file the
caller names). The kernel command line uses ``rescue.<key>=<value>`` words::

    rescue.lang=de rescue.keymap=de rescue.action=restore rescue.repo=/media/usb/rescue
    rescue.image=latest rescue.target=/dev/disk/by-id/ata-X rescue.confirm=yes
    rescue.after=reboot

A job file (TOML) uses the same keys, without the ``rescue.`` prefix, at the top level or
in a ``[rescue]`` table::

    action = "restore"
    lang = "de"
    repo = ["/media/usb/rescue"]
    image = "latest"
    target = "/dev/disk/by-id/ata-X"
    confirm = true
    after = "poweroff"

:func:`validate` stops with one clear sentence (a UsageError) when an answer is missing,
unknown or ambiguous. A restore target is never guessed: it must be named.
"""

from __future__ import annotations

import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rescue import i18n
from rescue.errors import UsageError
from rescue.i18n import _

ACTIONS = ("restore", "backup")
AFTER = ("reboot", "poweroff", "none")
TRUE = {"1", "yes", "y", "true", "on"}
FALSE = {"0", "no", "n", "false", "off"}

KEYS = {
    "lang": "language of messages (en, de, fr, es)",
    "format": "time and currency format (en_US, de_DE, ...)",
    "keymap": "console keyboard layout (us, de, fr, ...)",
    "action": "restore or backup",
    "repo": "repository folder(s) to read images from (only there: images on attached disks "
            "are then not used) or write the backup to",
    "image": "image to restore: latest (default), an id or a unique id prefix",
    "target": "disk to restore onto (a /dev path, preferably /dev/disk/by-id/...); an image "
              "of several disks: one per disk, in the image's order, separated by commas",
    "source": "disk to back up; several disks (one image): separated by commas, system "
              "disk first",
    "name": "name of the new image (backup)",
    "confirm": "yes: erase a target that holds data without asking",
    "verify": "read back and compare after restore (default yes)",
    "grow": "grow the largest partition to fill a larger disk (default yes)",
    "force": "yes: restore even when the hardware verdict says the system will not start",
    "after": "reboot, poweroff or none (default none)",
}
ALIASES = {"language": "lang", "keyboard": "keymap", "destination": "repo", "dest": "repo",
           "disk": "target", "locale": "format"}


@dataclass
class Answers:
    action: str = ""
    lang: str = "en"
    format: str = ""
    keymap: str = ""
    repos: list[str] = field(default_factory=list)
    image: str = "latest"
    target: str = ""
    source: str = ""
    name: str = ""
    confirm: bool = False
    verify: bool = True
    grow: bool = True
    force: bool = False
    after: str = "none"
    origin: str = ""  # "kernel command line" | "job file X"

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _bool(key: str, value: Any, origin: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise UsageError(_("{origin}: {key}={value!r} is not yes or no.").format(
        origin=origin, key=key, value=value))


def from_mapping(values: dict[str, Any], origin: str) -> Answers:
    """Answers from key/value pairs (both sources end here)."""
    answers = Answers(origin=origin)
    for raw_key, value in values.items():
        key = ALIASES.get(raw_key, raw_key)
        if key not in KEYS:
            known = ", ".join(sorted(KEYS))
            raise UsageError(_("{origin}: unknown answer '{key}'; known answers: {known}."
                               ).format(origin=origin, key=raw_key, known=known))
        if key in ("confirm", "verify", "grow", "force"):
            setattr(answers, key, _bool(key, value, origin))
        elif key == "repo":
            items = value if isinstance(value, list) else str(value).split(",")
            answers.repos += [str(v).strip() for v in items if str(v).strip()]
        elif key in ("target", "source") and isinstance(value, list):
            # a multi-disk image: one disk per disk of the image, in its order
            setattr(answers, key, ",".join(str(v).strip() for v in value if str(v).strip()))
        elif isinstance(value, list | dict):
            raise UsageError(_("{origin}: '{key}' takes one value.").format(
                origin=origin, key=raw_key))
        else:
            setattr(answers, key, str(value).strip())
    return answers


def parse_cmdline(text: str) -> Answers | None:
    """Answers from a kernel command line; None when it holds no ``rescue.`` word."""
    values: dict[str, Any] = {}
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise UsageError(_("kernel command line: cannot be split into words ({error})."
                           ).format(error=exc)) from None
    for word in words:
        if not word.startswith("rescue."):
            continue
        key, sep, value = word[len("rescue."):].partition("=")
        if not sep:
            value = "yes"  # a bare flag such as rescue.confirm
        if key in ("repo", "destination", "dest") and key in values:
            values[key] = f"{values[key]},{value}"
        else:
            values[key] = value
    if not values:
        return None
    return from_mapping(values, "kernel command line")


def parse_job(text: str, origin: str = "job file") -> Answers:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(_("{origin} is not valid TOML: {error}.").format(
            origin=origin, error=exc)) from None
    if isinstance(data.get("rescue"), dict):
        data = {**{k: v for k, v in data.items() if k != "rescue"}, **data["rescue"]}
    return from_mapping(data, origin)


def load_job(path: str | Path) -> Answers:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(_("Cannot read the job file {path}: {error}.").format(
            path=path, error=exc.strerror)) from None
    return parse_job(text, f"job file {path}")


def validate(answers: Answers) -> Answers:
    """Stop with a clear sentence when an answer is missing or impossible."""
    o = answers.origin or "unattended answers"
    prefix = "rescue." if o == "kernel command line" else ""
    if answers.action not in ACTIONS:
        if not answers.action:
            raise UsageError(_(
                "{origin}: say what to do with {prefix}action=restore or {prefix}action=backup."
            ).format(origin=o, prefix=prefix))
        raise UsageError(_(
            "{origin}: {prefix}action={action} is unknown; use restore or backup."
        ).format(origin=o, prefix=prefix, action=answers.action))
    if answers.lang not in i18n.LANGUAGES:
        raise UsageError(_(
            "{origin}: {prefix}lang={lang} is not available; use one of {languages}."
        ).format(origin=o, prefix=prefix, lang=answers.lang,
                 languages=", ".join(i18n.LANGUAGES)))
    if answers.format and answers.format not in i18n.FORMATS:
        raise UsageError(_(
            "{origin}: {prefix}format={format} is unknown; use one of {formats}."
        ).format(origin=o, prefix=prefix, format=answers.format,
                 formats=", ".join(i18n.FORMATS)))
    if answers.after not in AFTER:
        raise UsageError(_(
            "{origin}: {prefix}after={after} is unknown; use reboot, poweroff or none."
        ).format(origin=o, prefix=prefix, after=answers.after))
    if answers.action == "restore":
        if not answers.target:
            raise UsageError(_(
                "{origin}: no target disk given. Name it with {prefix}target=/dev/disk/by-id/"
                "...; an unattended restore never picks a disk by itself."
            ).format(origin=o, prefix=prefix))
        if not answers.image:
            raise UsageError(_(
                "{origin}: {prefix}image is empty; use latest or an image id."
            ).format(origin=o, prefix=prefix))
    else:
        if not answers.source:
            raise UsageError(_(
                "{origin}: no disk to back up given; name it with {prefix}source=."
            ).format(origin=o, prefix=prefix))
        if len(answers.repos) != 1:
            raise UsageError(_(
                "{origin}: a backup needs exactly one repository ({prefix}repo=...); {count} "
                "given."
            ).format(origin=o, prefix=prefix, count=len(answers.repos)))
    return answers
