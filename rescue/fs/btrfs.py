"""The used blocks of a btrfs, from btrfs-progs' own view of it (``btrfs inspect-internal
dump-tree``), not from partclone.

partclone.btrfs 0.3.23 (Debian 12) leaves out tree blocks that a read-only snapshot
shares with its subvolume: an image made from its map mounts as "bad tree block start
... have 0" (found by tests/integration/test_restore_smaller.py; the round trip is
tests/integration/test_other_filesystems.py). Here every extent the extent tree records
(data extents and tree blocks, every tree included: root, chunk, device, extent, free
space, subvolumes and snapshots) is mapped through the chunk tree to its place (both
copies of a DUP chunk), and the system chunks (which hold the chunk tree) are taken
whole. The superblock and its mirrors are added by rescue.fs.regions.

A btrfs over several devices, or with a striped or parity profile on this one, is taken
whole: a partition of it alone is not something to restore block by block."""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field

from rescue.errors import SourceRefusedError
from rescue.fs.usedmap import UsedMap
from rescue.i18n import _
from rescue.runner import CommandRunner

_CHUNK = re.compile(r"key \(FIRST_CHUNK_TREE CHUNK_ITEM (\d+)\)")
_CHUNK_BODY = re.compile(r"length (\d+) owner \d+ stripe_len \d+ type (\S+)")
_STRIPE = re.compile(r"stripe \d+ devid (\d+) offset (\d+)")
_EXTENT = re.compile(r"key \((\d+) (EXTENT_ITEM|METADATA_ITEM) (\d+)\)")
#: profiles whose every stripe holds the whole chunk, byte for byte at the same offset
MIRRORED = {"single", "DUP", "RAID1", "RAID1C3", "RAID1C4"}


@dataclass
class Chunk:
    logical: int
    length: int
    kind: str  # "DATA|single", "METADATA|DUP", "SYSTEM|DUP", ...
    stripes: list[tuple[int, int]] = field(default_factory=list)  # (devid, offset)

    @property
    def profile(self) -> str:
        return self.kind.split("|")[-1] if "|" in self.kind else "single"


def parse_chunks(text: str) -> list[Chunk]:
    """The chunks of ``dump-tree -t chunk``'s output."""
    chunks: list[Chunk] = []
    current: Chunk | None = None
    for line in text.splitlines():
        m = _CHUNK.search(line)
        if m:
            current = Chunk(int(m.group(1)), 0, "")
            chunks.append(current)
            continue
        if current is None:
            continue
        if "key (" in line:  # another item: this chunk's lines are over
            current = None
            continue
        m = _CHUNK_BODY.search(line)
        if m:
            current.length, current.kind = int(m.group(1)), m.group(2)
            continue
        m = _STRIPE.search(line)
        if m:
            current.stripes.append((int(m.group(1)), int(m.group(2))))
    return [c for c in chunks if c.length > 0 and c.stripes]


def parse_extents(text: str, nodesize: int) -> list[tuple[int, int]]:
    """(logical start, length) of every extent ``dump-tree -t extent`` lists: a data
    extent's length is in its key; a tree block (skinny METADATA_ITEM) is one node."""
    out = []
    for m in _EXTENT.finditer(text):
        start, kind, offset = int(m.group(1)), m.group(2), int(m.group(3))
        out.append((start, nodesize if kind == "METADATA_ITEM" else offset))
    return out


def physical_ranges(chunks: list[Chunk], extents: list[tuple[int, int]], devid: int = 1
                    ) -> list[tuple[int, int]]:
    """Where on device *devid* the extents and the system chunks are."""
    ordered = sorted(chunks, key=lambda c: c.logical)
    starts = [c.logical for c in ordered]
    out: list[tuple[int, int]] = []
    for c in ordered:
        if c.kind.startswith("SYSTEM"):
            out += [(off, off + c.length) for dev, off in c.stripes if dev == devid]
    for start, length in extents:
        i = bisect_right(starts, start) - 1
        if i < 0:
            continue
        c = ordered[i]
        if not c.logical <= start < c.logical + c.length:
            continue
        delta = start - c.logical
        end = min(length, c.logical + c.length - start)
        out += [(off + delta, off + delta + end) for dev, off in c.stripes if dev == devid]
    return out


def _super(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            out.setdefault(parts[0], parts[1].strip())
    return out


def used_map(device: str, length: int, runner: CommandRunner) -> UsedMap:
    """The used byte ranges of the btrfs on *device* (a partition of *length* bytes)."""
    def dump(*args: str) -> str:
        result = runner.run(["btrfs", "inspect-internal", *args, device], check=False)
        if result.returncode != 0:
            raise SourceRefusedError(_(
                "The btrfs on {device} could not be read by btrfs-progs ({detail}); check it "
                "with 'btrfs check --readonly {device}'.").format(
                    device=device, detail=(result.stderr or result.stdout).strip()[-300:]))
        return result.stdout

    sb = _super(dump("dump-super"))
    try:
        nodesize, devices = int(sb["nodesize"]), int(sb.get("num_devices", "1"))
        devid = int(sb.get("dev_item.devid", "1"))
    except (KeyError, ValueError) as exc:
        raise SourceRefusedError(_("The btrfs superblock on {device} is not readable.")
                                 .format(device=device)) from exc
    chunks = parse_chunks(dump("dump-tree", "-t", "chunk"))
    if devices != 1 or any(c.profile not in MIRRORED for c in chunks):
        return UsedMap.whole(length)
    extents = parse_extents(dump("dump-tree", "-t", "extent"), nodesize)
    ranges = [(max(0, a), min(length, b)) for a, b in physical_ranges(chunks, extents, devid)
              if a < length]
    return UsedMap.from_ranges(length, ranges)
