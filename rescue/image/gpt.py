"""The GPT rescue writes (as libparted does: 128 entries of 128 bytes): the one home of
its size, used where a manifest is checked (:mod:`rescue.image.validate`) and where a
table is planned (:mod:`rescue.plan.geometry`)."""

from __future__ import annotations

GPT_ENTRIES = 128
GPT_ENTRY_SIZE = 128


def gpt_entry_sectors(sector_size: int) -> int:
    """Sectors the GPT partition entry array takes (32 at 512 bytes, 4 at 4096)."""
    return -(-GPT_ENTRIES * GPT_ENTRY_SIZE // sector_size)
