"""The btrfs used-block map (rescue/fs/btrfs.py) from btrfs-progs' own output: chunks
parsed with every stripe, extents mapped to each copy of a DUP chunk, system chunks whole,
nothing outside a chunk. The round trip on a real btrfs with a snapshot is
tests/integration/test_other_filesystems.py."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rescue.fs.btrfs import Chunk, parse_chunks, parse_extents, physical_ranges

CHUNKS = """btrfs-progs v6.2
chunk tree
leaf 22069248 items 6 free space 15571 generation 8 owner CHUNK_TREE
\titem 0 key (DEV_ITEMS DEV_ITEM 1) itemoff 16185 itemsize 98
\t\tdevid 1 total_bytes 1048576000 bytes_used 364904448
\titem 1 key (FIRST_CHUNK_TREE CHUNK_ITEM 13631488) itemoff 16105 itemsize 80
\t\tlength 8388608 owner 2 stripe_len 65536 type DATA|single
\t\tio_align 65536 io_width 65536 sector_size 4096
\t\tnum_stripes 1 sub_stripes 1
\t\t\tstripe 0 devid 1 offset 13631488
\t\t\tdev_uuid a605e76a-231f-4a85-b69d-3b1dac3ce25b
\titem 2 key (FIRST_CHUNK_TREE CHUNK_ITEM 22020096) itemoff 15993 itemsize 112
\t\tlength 8388608 owner 2 stripe_len 65536 type SYSTEM|DUP
\t\tnum_stripes 2 sub_stripes 1
\t\t\tstripe 0 devid 1 offset 22020096
\t\t\tstripe 1 devid 1 offset 30408704
\titem 3 key (FIRST_CHUNK_TREE CHUNK_ITEM 30408704) itemoff 15881 itemsize 112
\t\tlength 52428800 owner 2 stripe_len 65536 type METADATA|DUP
\t\tnum_stripes 2 sub_stripes 1
\t\t\tstripe 0 devid 1 offset 38797312
\t\t\tstripe 1 devid 1 offset 91226112
"""
EXTENTS = """extent tree key (EXTENT_TREE ROOT_ITEM 0)
\titem 0 key (13631488 EXTENT_ITEM 8192) itemoff 16230 itemsize 53
\titem 1 key (30408704 BLOCK_GROUP_ITEM 52428800) itemoff 16206 itemsize 24
\titem 2 key (31391744 METADATA_ITEM 1) itemoff 16173 itemsize 33
\titem 3 key (99999999999 EXTENT_ITEM 4096) itemoff 16140 itemsize 53
"""


def test_real_output_maps_every_copy() -> None:
    chunks = parse_chunks(CHUNKS)
    assert [(c.logical, c.length, c.kind, c.stripes) for c in chunks] == [
        (13631488, 8388608, "DATA|single", [(1, 13631488)]),
        (22020096, 8388608, "SYSTEM|DUP", [(1, 22020096), (1, 30408704)]),
        (30408704, 52428800, "METADATA|DUP", [(1, 38797312), (1, 91226112)]),
    ]
    extents = parse_extents(EXTENTS, nodesize=16384)
    assert extents == [(13631488, 8192), (31391744, 16384), (99999999999, 4096)]
    ranges = sorted(physical_ranges(chunks, extents))
    # the tree block that partclone.btrfs left out, in both of its DUP copies
    assert (39780352, 39780352 + 16384) in ranges and (92209152, 92209152 + 16384) in ranges
    assert (13631488, 13631488 + 8192) in ranges  # a data extent of a single chunk
    assert (22020096, 22020096 + 8388608) in ranges  # system chunks whole, both copies
    assert (30408704, 30408704 + 8388608) in ranges
    assert all(b <= 1048576000 for _a, b in ranges)  # the extent outside every chunk: none


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(1, 8)), max_size=30),
       st.integers(0, 5))
def test_an_extent_lands_at_the_same_offset_in_every_copy(extents: list[tuple[int, int]],
                                                          shift: int) -> None:
    mib = 1 << 20
    chunk = Chunk(100 * mib, 64 * mib, "METADATA|DUP",
                  [(1, (200 + shift) * mib), (1, 400 * mib)])
    wanted = [((100 + a) * mib, n * 4096) for a, n in extents]
    ranges = physical_ranges([chunk], wanted)
    assert len(ranges) == 2 * len(wanted)
    for (start, length), (a, b), (c, d) in zip(wanted, ranges[0::2], ranges[1::2],
                                               strict=True):
        delta = start - 100 * mib
        assert (a, b) == ((200 + shift) * mib + delta, (200 + shift) * mib + delta + length)
        assert (c, d) == (400 * mib + delta, 400 * mib + delta + length)
