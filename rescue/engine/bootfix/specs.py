"""Naming a filesystem: /etc/fstab's lines, and whether a spec (``UUID=``, ``LABEL=``,
``/dev/disk/by-*/``, a device or LV name) names a given volume. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass
class FstabEntry:
    line_no: int
    spec: str
    mountpoint: str
    fstype: str
    options: str

    @property
    def optional(self) -> bool:
        opts = self.options.split(",")
        return "nofail" in opts or "noauto" in opts


FSTAB_LIMIT = 1024 * 1024  # a real fstab is a few KiB; a huge one is not read whole


def read_fstab(path: Path) -> list[FstabEntry]:
    with open(path, "rb") as fh:
        return parse_fstab(fh.read(FSTAB_LIMIT).decode("utf-8", errors="replace"))


def parse_fstab(text: str) -> list[FstabEntry]:
    entries = []
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        f = line.split()
        if len(f) < 3:
            continue
        entries.append(FstabEntry(no, f[0], f[1], f[2], f[3] if len(f) > 3 else "defaults"))
    return entries


_TAGS = {
    "UUID": "UUID",
    "PARTUUID": "PARTUUID",
    "LABEL": "LABEL",
    "PARTLABEL": "PARTLABEL",
}
_BY = {
    "/dev/disk/by-uuid/": "UUID",
    "/dev/disk/by-partuuid/": "PARTUUID",
    "/dev/disk/by-label/": "LABEL",
    "/dev/disk/by-partlabel/": "PARTLABEL",
}


def spec_key(spec: str) -> tuple[str, str] | None:
    """``UUID=x`` or ``/dev/disk/by-uuid/x`` -> ("UUID", "x"); None for other specs."""
    tag, sep, value = spec.partition("=")
    if sep and tag.upper() in _TAGS:
        return _TAGS[tag.upper()], value.strip('"')
    for prefix, key in _BY.items():
        if spec.startswith(prefix):
            return key, spec[len(prefix) :]
    return None


def spec_matches(spec: str, facts: dict[str, str]) -> bool:
    key = spec_key(spec)
    if key is None:
        return spec == facts.get("DEVNAME") or spec in facts.get("ALIASES", "").split()
    tag, value = key
    have = facts.get(tag, "")
    if tag in ("UUID", "PARTUUID"):
        return have.lower() == value.lower() and bool(have)
    return have == value and bool(have)


def kernel_device_partition(spec: str, source_disk: str) -> int | None:
    """``/dev/sda2`` on source disk ``/dev/sda`` -> 2 (also nvme0n1p2, mmcblk0p2)."""
    if not source_disk or not spec.startswith(source_disk):
        return None
    m = re.fullmatch(r"p?(\d+)", spec[len(source_disk) :])
    return int(m.group(1)) if m else None
