"""GRUB's configuration in the restored root: the kernel's ``root=`` resolves on the
restored disk (source-disk device names rewritten to ``root=UUID=``). Part of the
``fstab-check`` fix-up."""

from __future__ import annotations

import re
from pathlib import Path

from rescue.engine.bootfix.rootfiles import read_in_root, write_in_root
from rescue.engine.bootfix.specs import kernel_device_partition, spec_matches
from rescue.i18n import _

CONFIG_LIMIT = 16 * 1024 * 1024  # a grub.cfg is some KiB; a bigger one is left alone
_LINUX_CMD = re.compile(r"\s*linux(16|efi)?\s")
_ROOT_ARG = re.compile(r"(?<![\w.-])root=(\S+)")


def check_boot_loader_root(root: Path, facts: dict[int, dict[str, str]],
                           source_disk: str,
                           volumes: list[dict[str, str]] | None = None) -> list[str]:
    """The kernel's ``root=`` in GRUB's config: source-disk device names are rewritten to
    ``root=UUID=``; values that resolve nowhere (not on a partition of *facts*, nor on one
    of the other *volumes*, e.g. the LVs) are reported."""
    notes: list[str] = []
    known = [*facts.values(), *(volumes or [])]
    for rel in ("boot/grub/grub.cfg", "boot/grub2/grub.cfg"):
        text = read_in_root(root, rel, CONFIG_LIMIT)
        if text is None:
            continue
        kernel_lines = [ln for ln in text.splitlines() if _LINUX_CMD.match(ln)]
        values = sorted({v for ln in kernel_lines for v in _ROOT_ARG.findall(ln)})
        changed = text
        unresolved = []
        for value in values:
            number = kernel_device_partition(value, source_disk)
            if number is not None and facts.get(number, {}).get("UUID"):
                new = f"UUID={facts[number]['UUID']}"
                changed = re.sub(rf"(?<![\w.-])root={re.escape(value)}(?=\s)", f"root={new}",
                                 changed)
                notes.append(f"/{rel}: root={value} -> root={new}")
            elif not any(spec_matches(value, f) for f in known):
                unresolved.append(value)
        if changed != text:
            write_in_root(root, rel + ".rescue-backup", text, follow_last=False)
            write_in_root(root, rel, changed)
        if unresolved:
            notes.append(_("{file} also names root={values}, not on this disk").format(
                file="/" + rel, values=", ".join(unresolved)))
        elif values:
            notes.append(_("{file}: root= resolves on the restored disk").format(file="/" + rel))
    return notes
