"""ext2/3/4: the used-block map from the block bitmaps (via dumpe2fs, which understands
every feature: flex_bg, uninitialised groups, meta_bg, bigalloc) and growing."""

from __future__ import annotations

import re

from rescue.errors import SourceRefusedError
from rescue.fs import registry
from rescue.fs.usedmap import UsedMap, blocks_to_ranges
from rescue.i18n import _
from rescue.runner import CommandRunner

EXT_TYPES = registry.EXT_TYPES  # the blkid TYPEs read with dumpe2fs

_RANGE = re.compile(r"(\d+)(?:-(\d+))?")


def parse_dumpe2fs(text: str, length: int,
                   free_extra: list[tuple[int, int]] | None = None) -> UsedMap:
    block_size = total = None
    free: list[tuple[int, int]] = list(free_extra or [])
    for line in text.splitlines():
        stripped = line.strip()
        if line.startswith("Block size:"):
            block_size = int(line.split(":")[1])
        elif line.startswith("Block count:"):
            total = int(line.split(":")[1])
        elif stripped.startswith("Free blocks:") and not line.startswith("Free blocks:"):
            runs = stripped[len("Free blocks:"):].strip()
            for item in runs.split(","):
                m = _RANGE.fullmatch(item.strip())
                if m:
                    a = int(m.group(1))
                    b = int(m.group(2)) if m.group(2) else a
                    free.append((a, b))
    if block_size is None or total is None:
        raise SourceRefusedError(_("dumpe2fs printed no block size or block count."))
    return blocks_to_ranges(free, total, block_size, length)


_EXTENT = re.compile(r"\((\d+)(?:-(\d+))?\):(\d+)(?:-(\d+))?")


def header_fields(dumpe2fs_text: str) -> dict[str, str]:
    fields = {}
    for line in dumpe2fs_text.splitlines():
        if not line.strip():
            break
        if ":" in line:
            key, value = line.split(":", 1)
            fields[key.strip()] = value.strip()
    return fields


def journal_log_blocks(stat_text: str) -> list[tuple[int, int]]:
    """Physical block runs of the journal's log area: every data extent of the journal
    inode except its first logical block (the journal superblock, which stays)."""
    runs = []
    for m in _EXTENT.finditer(stat_text):
        lfirst = int(m.group(1))
        plast = int(m.group(4) or m.group(3))
        pfirst = int(m.group(3))
        if lfirst == 0:
            pfirst += 1
        if pfirst <= plast:
            runs.append((pfirst, plast))
    return runs


def empty_journal(fields: dict[str, str]) -> bool:
    """True when the internal journal holds nothing to replay (clean unmount)."""
    return (
        fields.get("Journal inode") == "8"
        and fields.get("Journal start") == "0"
        and "needs_recovery" not in fields.get("Filesystem features", "")
        and fields.get("Filesystem state", "").startswith("clean")
    )


def used_map(device: str, length: int, runner: CommandRunner) -> UsedMap:
    """Blocks in use, less the log area of an empty journal: after a clean unmount the
    journal says "start 0" and its log blocks are never read, so they are not copied."""
    result = runner.run(["dumpe2fs", device],
                        what=_("Reading the ext filesystem on {device}").format(device=device))
    fields = header_fields(result.stdout)
    free_extra: list[tuple[int, int]] = []
    if empty_journal(fields):
        stat = runner.run(["debugfs", "-c", "-R", "stat <8>", device], check=False)
        free_extra = journal_log_blocks(stat.stdout.split("EXTENTS:", 1)[-1])
    return parse_dumpe2fs(result.stdout, length, free_extra)


def grow(device: str, runner: CommandRunner) -> None:
    """Grow the filesystem on *device* to fill it (checked first, as resize2fs wants)."""
    check = runner.run(["e2fsck", "-f", "-p", device], check=False)
    if check.returncode not in (0, 1):
        runner.run(["e2fsck", "-f", "-y", device],
                   what=_("Checking {device} before growing").format(device=device))
    runner.run(["resize2fs", device], what=_("Growing the filesystem on {device}").format(
        device=device))
