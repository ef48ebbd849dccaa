"""A chunk file is a zstd frame someone else may have written. A small frame that
inflates to gigabytes must be refused without the memory: python-zstandard allocates
what a frame's header declares, whatever ``max_output_size`` says. Each case runs in a
fresh process whose peak memory is the measure."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CASE = r"""
import io, json, resource, sys
import zstandard
from rescue.errors import ImageCorruptError
from rescue.image import chunks as codec

size, declared = int(sys.argv[1]), sys.argv[2] == "declared"
buf = io.BytesIO()
cctx = zstandard.ZstdCompressor(level=1, write_content_size=declared)
with cctx.stream_writer(buf, size=size if declared else -1, closefd=False) as w:
    block = bytes(1 << 20)
    for _ in range(size >> 20):
        w.write(block)
blob = buf.getvalue()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    codec.decode_chunk("0" * 64, blob, 1 << 20, "partition 2, offset 0")
    outcome = "accepted"
except ImageCorruptError as exc:
    outcome = str(exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"blob": len(blob), "grew_mib": (after - before) // 1024,
                  "outcome": outcome}))
"""


@pytest.mark.parametrize("header", ["declared", "undeclared"])
def test_a_small_frame_that_inflates_to_a_gibibyte_is_refused_without_the_memory(
        header: str) -> None:
    out = subprocess.run([sys.executable, "-c", CASE, str(1 << 30), header],
                         capture_output=True, text=True, check=True, timeout=120)
    got = json.loads(out.stdout)
    assert got["blob"] < 1 << 20  # the bomb is smaller than one chunk
    assert got["grew_mib"] < 64, got  # at most about one chunk, not the gibibyte
    assert "partition 2, offset 0" in got["outcome"] and "damaged" in got["outcome"]


def test_an_honest_frame_still_decodes() -> None:
    from rescue.image import chunks as codec

    data = bytes(range(256)) * 4096
    digest = codec.chunk_hash(data)
    assert codec.decode_chunk(digest, codec.compress(data), len(data), "x") == data
    import zstandard

    undeclared = zstandard.ZstdCompressor(write_content_size=False).compress(data)
    assert codec.decode_chunk(digest, undeclared, len(data), "x") == data
