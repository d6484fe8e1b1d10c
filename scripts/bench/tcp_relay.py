"""The floor for any asyncio forwarder on this machine: a byte pump that pins one upstream
connection to each client connection and never looks at HTTP. Not a usable proxy (no routing,
no header rules); an experiment for the forwarding benchmark (`--floor`).
    python tcp_relay.py PORT UPSTREAM_HOST UPSTREAM_PORT [--uvloop]
"""

import asyncio
import sys


class Pipe(asyncio.Protocol):
    def __init__(self, peer: "Pipe | None" = None) -> None:
        self.peer = peer
        self.transport: asyncio.Transport | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
        else:
            self.pending.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


class Client(Pipe):
    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self.host, self.port = host, port

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        asyncio.get_running_loop().create_task(self.connect())

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, upstream = await loop.create_connection(lambda: Pipe(self), self.host, self.port)
        self.peer = upstream
        for chunk in self.pending:
            upstream.transport.write(chunk)  # type: ignore[union-attr]
        self.pending.clear()


async def main(port: int, host: str, up: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Client(host, up), "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if "--uvloop" in sys.argv:
        sys.path.insert(0, sys.argv[sys.argv.index("--uvloop") + 1])
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
