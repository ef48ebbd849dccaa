"""ext2/3/4: the used-block map from the block bitmaps (via dumpe2fs, which understands
every feature: flex_bg, uninitialised groups, meta_bg, bigalloc) and growing."""

from __future__ import annotations

import re

from rescue.errors import SourceRefusedError
from rescue.fs.usedmap import UsedMap, blocks_to_ranges
from rescue.runner import CommandRunner

EXT_TYPES = {"ext2", "ext3", "ext4"}

_RANGE = re.compile(r"(\d+)(?:-(\d+))?")


def parse_dumpe2fs(text: str, length: int) -> UsedMap:
    block_size = total = None
    free: list[tuple[int, int]] = []
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
        raise SourceRefusedError("dumpe2fs printed no block size or block count.")
    return blocks_to_ranges(free, total, block_size, length)


def used_map(device: str, length: int, runner: CommandRunner) -> UsedMap:
    result = runner.run(["dumpe2fs", device], what=f"Reading the ext filesystem on {device}")
    return parse_dumpe2fs(result.stdout, length)


def grow(device: str, runner: CommandRunner) -> None:
    """Grow the filesystem on *device* to fill it (checked first, as resize2fs wants)."""
    check = runner.run(["e2fsck", "-f", "-p", device], check=False)
    if check.returncode not in (0, 1):
        runner.run(["e2fsck", "-f", "-y", device], what=f"Checking {device} before growing")
    runner.run(["resize2fs", device], what=f"Growing the filesystem on {device}")
