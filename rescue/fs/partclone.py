"""Used-block maps for filesystems rescue does not parse itself (xfs, btrfs, ntfs, exfat,
f2fs, hfs+), from partclone's ddrescue "domain" log: `partclone.<fs> -D` walks the
filesystem's own allocation structures and lists the used byte ranges, without copying."""

from __future__ import annotations

import os
import re
import shutil
import tempfile

from rescue.errors import SourceRefusedError
from rescue.fs.usedmap import UsedMap
from rescue.i18n import _
from rescue.runner import CommandRunner

# blkid TYPE -> partclone program
PROGRAMS = {
    "xfs": "partclone.xfs",
    "btrfs": "partclone.btrfs",
    "ntfs": "partclone.ntfs",
    "exfat": "partclone.exfat",
    "f2fs": "partclone.f2fs",
    "hfsplus": "partclone.hfsp",
}

_LINE = re.compile(r"^\s*(0x[0-9A-Fa-f]+)\s+(0x[0-9A-Fa-f]+)\s+([+?*/\-])\s*$")


def supported(fstype: str | None) -> bool:
    return fstype in PROGRAMS and shutil.which(PROGRAMS[fstype]) is not None


def parse_domain(text: str, length: int) -> UsedMap:
    ranges = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m and m.group(3) == "+":
            start, size = int(m.group(1), 16), int(m.group(2), 16)
            ranges.append((start, start + size))
    return UsedMap.from_ranges(length, ranges)


def used_map(fstype: str, device: str, length: int, runner: CommandRunner) -> UsedMap:
    program = PROGRAMS[fstype]
    with tempfile.TemporaryDirectory(prefix="rescue-domain-") as tmp:
        domain = os.path.join(tmp, "domain.log")
        runner.run([program, "-q", "-D", "-s", device, "-o", domain],
                   what=_("Reading the {fstype} allocation map of {device} ({program})").format(
                       fstype=fstype, device=device, program=program))
        with open(domain) as f:
            text = f.read()
    used = parse_domain(text, length)
    if not used.ranges:
        raise SourceRefusedError(_("{program} found no used blocks on {device}.").format(
            program=program, device=device))
    return used
