"""A client connection written and read as bytes, and what the node says of its connections."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp


class RawConnection:
    """One client connection, written and read as bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int | None) -> RawConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def answer(self) -> tuple[bytes, dict[str, str], bytes]:
        """The next answer: status line, headers (lower-cased names) and body, de-chunked."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        status, *lines = head[:-4].decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                body += (await self.reader.readexactly(size + 2))[:-2]
            while await self.reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers
        elif "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        else:
            body = await asyncio.wait_for(self.reader.read(), 10)
        return status.encode(), headers, body

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), 10) == b""

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def get(path: str, *extra: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: esproxy.test", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def request(method: str, path: str, body: bytes = b"", *extra: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: esproxy.test", *extra]
    if body or method in ("POST", "PUT"):
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def fetch(direct: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with direct.get(url, headers={"Accept-Encoding": "identity"}) as response:
        return response.status, json.loads(await response.read())


async def http_connections_opened(direct: aiohttp.ClientSession, opensearch_url: str) -> int:
    _, stats = await fetch(direct, f"{opensearch_url}/_nodes/_local/stats/http")
    (node,) = stats["nodes"].values()
    opened: int = node["http"]["total_opened"]
    return opened
