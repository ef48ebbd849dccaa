"""Chunk codec: a chunk is named by the BLAKE3 of its raw bytes and stored as one
zstd frame. zstandard and blake3 release the GIL, so these run well in threads."""

from __future__ import annotations

import threading

import blake3
import zstandard

from rescue.errors import ImageCorruptError
from rescue.i18n import _

DEFAULT_CHUNK_SIZE = 1024 * 1024
DEFAULT_LEVEL = 3

_local = threading.local()


def chunk_hash(data: bytes | bytearray | memoryview) -> str:
    return blake3.blake3(data).hexdigest()


def compress(data: bytes | bytearray | memoryview, level: int = DEFAULT_LEVEL) -> bytes:
    cctx = getattr(_local, "cctx", None)
    if cctx is None or getattr(_local, "level", None) != level:
        cctx = _local.cctx = zstandard.ZstdCompressor(level=level, write_content_size=True)
        _local.level = level
    return cctx.compress(data)


def decompress(blob: bytes, expected_len: int) -> bytes:
    """The frame's bytes, never more than *expected_len* + 1 of them in memory: a frame
    that declares another size is refused before anything is allocated (zstandard would
    allocate what the header says, ignoring ``max_output_size``), and one without a
    declared size is read through a bounded stream."""
    dctx = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = zstandard.ZstdDecompressor()
    declared = zstandard.frame_content_size(blob)
    if declared == expected_len:
        return dctx.decompress(blob)
    if declared >= 0:
        raise zstandard.ZstdError(f"the frame declares {declared} bytes")
    with dctx.stream_reader(blob, read_across_frames=False) as reader:
        data = reader.read(expected_len + 1)
    if len(data) > expected_len:
        raise zstandard.ZstdError(f"the frame holds more than {expected_len} bytes")
    return data


def decode_chunk(digest: str, blob: bytes, expected_len: int, where: str) -> bytes:
    """Decompress and verify one chunk; *where* names it in the error sentence."""
    try:
        raw = decompress(blob, expected_len)
    except zstandard.ZstdError as exc:
        raise ImageCorruptError(_("{where}: chunk {chunk} is damaged ({error}).").format(
            where=where, chunk=digest[:16], error=exc)) from exc
    if len(raw) != expected_len:
        raise ImageCorruptError(_("{where}: chunk {chunk} has {got} bytes, {expected} expected."
                                  ).format(where=where, chunk=digest[:16], got=len(raw),
                                           expected=expected_len))
    if chunk_hash(raw) != digest:
        raise ImageCorruptError(_(
            "{where}: chunk {chunk} is damaged (its BLAKE3 hash does not match)."
        ).format(where=where, chunk=digest[:16]))
    return raw


def is_zero(data: bytes | bytearray | memoryview) -> bool:
    mv = memoryview(data)
    n = len(mv)
    if n == 0:
        return True
    # Compare against a cached zero buffer of the same size: runs at memcmp speed.
    zeros = _zeros(n)
    return mv == zeros


def _zeros(n: int) -> memoryview:
    cache: dict[int, memoryview] = getattr(_local, "zeros", None) or {}
    _local.zeros = cache
    buf = cache.get(n)
    if buf is None:
        if len(cache) > 8:
            cache.clear()
        buf = cache[n] = memoryview(bytes(n))
    return buf
