"""What an HTTP-aware forwarder built on asyncio protocols costs: a sketch, for the forwarding
benchmark's `--floor` experiment, of the fast path proposed in docs/benchmarks.md. Not a product:
Content-Length framing only (no chunked bodies, no 1xx, no HEAD), no header rules, no timeouts.

Per request it finds the end of the head, reads Content-Length, writes head and body to a pooled
keep-alive upstream connection as they arrive, and streams the answer back by its Content-Length,
then returns the connection to the pool. No Request/Response objects, tasks or futures.
    python http_splice.py PORT UPSTREAM_HOST UPSTREAM_PORT [--uvloop DIR]
"""

from __future__ import annotations

import asyncio
import sys


def content_length(head: bytes) -> int:
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    end = lower.find(b"\r\n", at + 2)
    return int(head[at + 17 : end])


class Upstream(asyncio.Protocol):
    def __init__(self, pool: list[Upstream]) -> None:
        self.pool = pool
        self.client: Client | None = None
        self.buf = b""
        self.left = -1  # body bytes still to relay; -1 while reading the head

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        client = self.client
        assert client is not None
        if self.left < 0:
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.buf[: end + 4], self.buf[end + 4 :]
            self.buf = b""
            self.left = content_length(head)
            client.transport.write(head)
        if data:
            client.transport.write(data)
            self.left -= len(data)
        if self.left <= 0:  # answer complete: back to the pool, and on to the client's next one
            self.left = -1
            self.client = None
            self.pool.append(self)
            client.done()

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.pool:
            self.pool.remove(self)
        if self.client is not None:
            self.client.transport.close()


class Client(asyncio.Protocol):
    def __init__(self, host: str, port: int, pool: list[Upstream]) -> None:
        self.host, self.port, self.pool = host, port, pool
        self.buf = b""
        self.upstream: Upstream | None = None
        self.left = -1  # request body bytes still to send; -1 while reading the head
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.pump()

    def pump(self) -> None:
        if self.left < 0:
            if self.busy:
                return  # pipelined: wait for the answer in flight
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buf = self.buf[: end + 4], self.buf[end + 4 :]
            self.left = content_length(head)
            self.busy = True
            if self.pool:
                self.attach(self.pool.pop(), head)
            else:
                asyncio.get_running_loop().create_task(self.connect(head))
                return
        self.send_body()

    async def connect(self, head: bytes) -> None:
        loop = asyncio.get_running_loop()
        _, upstream = await loop.create_connection(
            lambda: Upstream(self.pool), self.host, self.port
        )
        self.attach(upstream, head)
        self.send_body()

    def attach(self, upstream: Upstream, head: bytes) -> None:
        upstream.client = self
        self.upstream = upstream
        upstream.transport.write(head)

    def send_body(self) -> None:
        if self.upstream is None or self.left <= 0:
            return
        chunk, self.buf = self.buf[: self.left], self.buf[self.left :]
        if chunk:
            self.upstream.transport.write(chunk)
            self.left -= len(chunk)

    def done(self) -> None:
        self.upstream = None
        self.left = -1
        self.busy = False
        if self.buf:
            self.pump()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.transport.close()


async def main(port: int, host: str, up: int) -> None:
    loop = asyncio.get_running_loop()
    pool: list[Upstream] = []
    server = await loop.create_server(
        lambda: Client(host, up, pool), "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if "--uvloop" in sys.argv:
        sys.path.insert(0, sys.argv[sys.argv.index("--uvloop") + 1])
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
