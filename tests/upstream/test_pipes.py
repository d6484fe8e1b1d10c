"""The in-process pipe between the splicer and esproxy's aiohttp server, as a socket would behave.

The first tests join two recording protocols on a real event loop; the last one sends a large
`_inference` answer through a sidecar to a client that does not read for a while.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from esproxy.splice import pipes
from esproxy.splice.server import SplicingServer
from tests.user_examples import JSON_HEADERS


class Recorder(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: Any = None
        self.events: list[Any] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.events.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append(("lost", exc))

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")


async def turn() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def joined() -> tuple[Recorder, Recorder]:
    splicer, app = Recorder(), Recorder()
    pipes.connect(asyncio.get_running_loop(), splicer, app)
    return splicer, app


async def test_answers_arrive_at_once_and_requests_on_the_next_turn() -> None:
    splicer, app = joined()
    app.transport.write(b"HTTP/1.1 200 OK\r\n")
    app.transport.writelines([b"Content-Length: 2\r\n", b"\r\nok"])
    assert splicer.events == [b"HTTP/1.1 200 OK\r\n", b"Content-Length: 2\r\n\r\nok"]
    splicer.transport.write(b"GET / HTTP/1.1\r\n")
    splicer.transport.write(bytearray(b"\r\n"))
    assert app.events == []  # aiohttp never runs inside the splicer's write
    await turn()
    assert app.events == [b"GET / HTTP/1.1\r\n\r\n"]


async def test_a_paused_reader_pauses_the_writer_past_the_high_water_mark() -> None:
    splicer, app = joined()
    splicer.transport.pause_reading()
    app.transport.write(b"x" * pipes.HIGH_WATER)
    assert splicer.events == [] and app.events == []
    assert app.transport.get_write_buffer_size() == pipes.HIGH_WATER
    app.transport.write(b"y")
    assert app.events == ["pause"]
    splicer.transport.resume_reading()
    await turn()
    assert splicer.events == [b"x" * pipes.HIGH_WATER + b"y"]
    assert app.events == ["pause", "resume"]
    assert app.transport.get_write_buffer_size() == 0


async def test_a_close_comes_after_the_bytes_written_before_it() -> None:
    splicer, app = joined()
    splicer.transport.write(b"last request")
    splicer.transport.close()
    assert splicer.transport.is_closing() and app.transport.is_closing()
    splicer.transport.write(b"dropped")
    await turn()
    assert app.events == [b"last request", ("lost", None)]
    assert splicer.events == [("lost", None)]


async def test_the_peer_closing_makes_a_kept_end_unusable() -> None:
    splicer, app = joined()
    app.transport.close()  # aiohttp's keep-alive timeout, say
    assert splicer.transport.is_closing()  # so the splicer never takes it from its idle list
    await turn()
    assert splicer.events == [("lost", None)] and app.events == [("lost", None)]
    assert splicer.transport.get_extra_info("peername") == ""
    assert splicer.transport.get_extra_info("socket") is None


async def test_a_slow_client_gets_a_large_inference_answer_whole(
    start_proxy, settings_for, unused_tcp_port
) -> None:
    sidecar = await start_proxy(
        settings_for(
            ESPROXY_UPSTREAM=f"http://127.0.0.1:{unused_tcp_port}",
            ESPROXY_STORAGE_BACKEND="memory",
            ESPROXY_AUTH_MODE="none",
        )
    )
    assert isinstance(sidecar.server.runner.server, SplicingServer)
    settings = {
        "access_key": "<aws_access_key>",
        "secret_key": "<aws_secret_key>",
        "region": "us-east-1",
        "provider": "cohere",
        "model": "cohere.embed-english-v3",
    }
    put = await sidecar.put(
        "/_inference/text_embedding/big",
        data=json.dumps({"service": "amazonbedrock", "service_settings": settings}),
        headers=JSON_HEADERS,
    )
    assert put.status == 200, await put.text()
    body = json.dumps({"input": [f"text number {i}" for i in range(480)]}).encode()
    request = (
        b"POST /_inference/text_embedding/big HTTP/1.1\r\nHost: esproxy.test\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    ) + body
    # A small receive window, and nothing read for a while: the ~2 MB answer (one write of
    # aiohttp's) backs up in the client's socket and the splicer, which pauses the pipe's end.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", sidecar.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=2**22)
    for _ in range(2):  # the second answer proves the connection and its backend stayed usable
        writer.write(request)
        await asyncio.sleep(0.5)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        assert length > 1_500_000
        answer = json.loads(await asyncio.wait_for(reader.readexactly(length), 10))
        assert len(answer["text_embedding"]) == 480
        direct = await sidecar.post(
            "/_inference/text_embedding/big", data=body, headers=JSON_HEADERS
        )
        assert answer == await direct.json()
    writer.close()
