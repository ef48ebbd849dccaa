"""Used-byte maps: sorted, non-overlapping byte ranges of a partition that hold data."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


@dataclass
class UsedMap:
    length: int  # size of the partition in bytes
    ranges: list[tuple[int, int]] = field(default_factory=list)  # (start, end) end exclusive
    _starts: list[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._starts = [start for start, _ in self.ranges]

    @classmethod
    def whole(cls, length: int) -> UsedMap:
        return cls(length, [(0, length)] if length else [])

    @classmethod
    def from_ranges(cls, length: int, ranges: Iterable[tuple[int, int]]) -> UsedMap:
        merged: list[tuple[int, int]] = []
        for start, end in sorted(ranges):
            start, end = max(0, start), min(length, end)
            if end <= start:
                continue
            if merged and start <= merged[-1][1]:
                if end > merged[-1][1]:
                    merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        return cls(length, merged)

    @property
    def used_bytes(self) -> int:
        return sum(end - start for start, end in self.ranges)

    def overlaps(self, start: int, end: int) -> list[tuple[int, int]]:
        """The used ranges clipped to [start, end)."""
        i = max(bisect.bisect_right(self._starts, start) - 1, 0)
        out = []
        while i < len(self.ranges) and self.ranges[i][0] < end:
            s, e = self.ranges[i]
            if e > start:
                out.append((max(s, start), min(e, end)))
            i += 1
        return out

    def chunks_touched(self, chunk_size: int) -> Iterator[int]:
        """Indices of chunks that contain at least one used byte, ascending."""
        last = -1
        for start, end in self.ranges:
            first = max(start // chunk_size, last + 1)
            for i in range(first, (end - 1) // chunk_size + 1):
                yield i
                last = i


def blocks_to_ranges(free_blocks: Iterable[tuple[int, int]], total_blocks: int,
                     block_size: int, length: int) -> UsedMap:
    """A UsedMap from inclusive (first, last) free block runs: everything else is used."""
    used: list[tuple[int, int]] = []
    cursor = 0
    for first, last in sorted(free_blocks):
        if first > cursor:
            used.append((cursor * block_size, first * block_size))
        cursor = max(cursor, last + 1)
    if cursor < total_blocks:
        used.append((cursor * block_size, total_blocks * block_size))
    return UsedMap.from_ranges(length, used)
