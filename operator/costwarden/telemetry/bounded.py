"""Reading an HTTP answer whole, but never more than a bound: a misbehaving endpoint cannot
make the operator hold an unbounded page in memory."""

from __future__ import annotations

import aiohttp

CHUNK = 1 << 16


class TooLarge(ValueError):
    """The answer went past the bound."""


async def read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body of ``response``; TooLarge as soon as it exceeds ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(CHUNK):
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
