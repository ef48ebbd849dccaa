"""Used-block maps for filesystems rescue does not parse itself (xfs, ntfs, exfat,
f2fs, hfs+), from partclone's ddrescue "domain" log: `partclone.<fs> -D` walks the
filesystem's own allocation structures and lists the used byte ranges, without copying."""

from __future__ import annotations

import os
import re
import shutil
import tempfile

from rescue.errors import SourceRefusedError
from rescue.fs import registry
from rescue.fs.usedmap import UsedMap
from rescue.i18n import _
from rescue.runner import CommandRunner

# blkid TYPE -> partclone program
PROGRAMS = registry.partclone_programs()

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


def _read_tail(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return ""
    # partclone's own closing line only points at its log, which is gone with the tmp dir
    said = [line for line in lines if not line.startswith(("Partclone", "Starting to"))]
    return " ".join(said[-3:])


def _refusal(fstype: str, device: str, program: str, said: str) -> SourceRefusedError:
    if fstype == "ntfs" and ("scheduled for a check" in said or "uncleanly" in said):
        return SourceRefusedError(_(
            "The NTFS volume on {device} is marked as needing a check: Windows was not shut "
            "down fully (hibernation or Fast Startup), or the volume was just resized. Start "
            "Windows and shut it down fully (hold Shift while choosing Shut down), then back "
            "up again."
        ).format(device=device))
    return SourceRefusedError(_(
        "{program} could not read the {fstype} allocation map of {device}: {said}"
    ).format(program=program, fstype=fstype, device=device, said=said.strip() or "?"))


def used_map(fstype: str, device: str, length: int, runner: CommandRunner) -> UsedMap:
    program = PROGRAMS[fstype]
    with tempfile.TemporaryDirectory(prefix="rescue-domain-") as tmp:
        domain = os.path.join(tmp, "domain.log")
        log = os.path.join(tmp, "partclone.log")
        result = runner.run([program, "-q", "-D", "-s", device, "-o", domain, "-L", log],
                            check=False)
        if result.returncode != 0:
            raise _refusal(fstype, device, program, _read_tail(log) or result.stderr)
        with open(domain) as f:
            text = f.read()
    used = parse_domain(text, length)
    if not used.ranges:
        raise SourceRefusedError(_("{program} found no used blocks on {device}.").format(
            program=program, device=device))
    return used
