"""Reading the bodies of esproxy's own routes: bounded in size, gzip and deflate decoded here.

The server runs with `auto_decompress=False` so that forwarded bodies stay byte-exact; our own
routes therefore decode `Content-Encoding` themselves, with the same size bound after decoding.
"""

from __future__ import annotations

import asyncio
import zlib

from aiohttp import web

from esproxy.errors import BodyParseError, PlainError

_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def too_large(limit: int) -> PlainError:
    return PlainError(
        f"Request body is too large: the limit for _inference requests is [{limit}] bytes",
        status=413,
    )


async def read_raw_body(request: web.Request, limit: int, seconds: float = 60.0) -> bytes:
    """The body as sent, still content-encoded, so it can also be forwarded untouched.

    A client that stalls while sending gets a 408 after `seconds`, so it cannot hold the handler.
    """
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    content = request.content
    if content.is_eof():  # all of it came with the head (most bodies): nothing to wait for
        raw = content.read_nowait()
        if len(raw) > limit:
            raise too_large(limit)
        return raw
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(seconds):
            async for chunk in content.iter_any():
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise PlainError(
            f"the request body did not arrive within [{seconds:g}s]", status=408
        ) from None
    return b"".join(chunks)


def decode_content(raw: bytes, encoding: str | None, limit: int) -> bytes:
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity" or not raw:
        return raw
    if encoding not in _WBITS:
        raise PlainError(f"Unsupported Content-Encoding [{encoding}]", status=415)
    decoder = zlib.decompressobj(_WBITS[encoding])
    try:
        body = decoder.decompress(raw, limit + 1)
    except zlib.error as error:
        raise BodyParseError(f"Failed to decode {encoding} request body: {error}") from None
    if len(body) > limit:
        raise too_large(limit)
    if not decoder.eof:
        raise BodyParseError(f"Failed to decode {encoding} request body: the stream is truncated")
    return body
