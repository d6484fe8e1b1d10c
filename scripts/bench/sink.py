"""A tiny HTTP/1.1 upstream that reads whole request bodies, discards them, then answers.

It answers only after the last body byte (Content-Length or chunked), with the byte count, so a
proxy cannot be credited for a transfer that stopped early. Standard library only.
    python sink.py PORT
"""

from __future__ import annotations

import asyncio
import sys


class Sink(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.state = "head"  # head | length | chunk-size | chunk-data | chunk-crlf | trailer
        self.left = 0
        self.got = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        while data:
            if self.state in ("length", "chunk-data"):
                take = min(self.left, len(data))
                self.left -= take
                self.got += take
                data = data[take:]
                if self.left == 0:
                    if self.state == "length":
                        self.answer()
                    else:
                        self.state = "chunk-crlf"
                continue
            self.buf += data
            data = b""
            if not self.step():
                return

    def step(self) -> bool:
        """Parse what `buf` holds; True when body bytes are left over to count."""
        while True:
            if self.state == "head":
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return False
                head, self.buf = self.buf[:end].decode("latin-1"), self.buf[end + 4 :]
                headers = {}
                for line in head.split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                self.got = 0
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    self.state = "chunk-size"
                else:
                    self.left = int(headers.get("content-length", "0"))
                    if self.left == 0:
                        self.answer()
                        continue
                    self.state = "length"
                    return self.spill()
            elif self.state in ("chunk-size", "chunk-crlf", "trailer"):
                end = self.buf.find(b"\r\n")
                if end < 0:
                    return False
                line, self.buf = self.buf[:end], self.buf[end + 2 :]
                if self.state == "chunk-crlf":
                    self.state = "chunk-size"
                elif self.state == "trailer":
                    if not line:
                        self.answer()
                else:
                    self.left = int(line.split(b";")[0], 16)
                    if self.left == 0:
                        self.state = "trailer"
                    else:
                        self.state = "chunk-data"
                        return self.spill()
            else:
                return self.spill()

    def spill(self) -> bool:
        """Hand buffered body bytes back to data_received's fast path."""
        rest, self.buf = self.buf, b""
        if rest:
            self.data_received(rest)
        return False

    def answer(self) -> None:
        body = b'{"took":0,"errors":false,"items":[],"received_bytes":%d}' % self.got
        self.transport.write(  # type: ignore[attr-defined]
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-elastic-product: "
            b"Elasticsearch\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        self.state = "head"


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Sink, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
