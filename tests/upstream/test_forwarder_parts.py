"""The forwarder's pieces on their own: header filtering, error translation, session options."""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.client_exceptions import UnixClientConnectorError
from aiohttp.client_reqrep import ConnectionKey, RequestInfo
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from esproxy.errors import UpstreamTimeout, UpstreamUnavailable
from esproxy.settings import SettingsError, UpstreamSettings
from esproxy.upstream import (
    HOP_BY_HOP,
    REQUEST_ONLY,
    UpstreamForwarder,
    end_to_end,
)
from esproxy.upstream_nodes import UpstreamNode
from esproxy.upstream_session import create_upstream_session

NODE = UpstreamNode.parse("http://10.0.0.7:9200")
KEY = ConnectionKey("10.0.0.7", 9200, False, True, None, None, None)


def test_request_headers_lose_hop_by_hop_ones_and_keep_the_rest_in_order() -> None:
    source = CIMultiDictProxy(
        CIMultiDict(
            [
                ("Host", "esproxy:9200"),
                ("Connection", "keep-alive, X-Trace"),
                ("Keep-Alive", "timeout=5"),
                ("Authorization", "ApiKey abc"),
                ("TE", "trailers"),
                ("Trailer", "X-Checksum"),
                ("Transfer-Encoding", "chunked"),
                ("Upgrade", "h2c"),
                ("Proxy-Authorization", "Basic eDp5"),
                ("Proxy-Connection", "keep-alive"),
                ("X-Trace", "hop"),
                ("Expect", "100-continue"),
                ("X-Opaque-Id", "job-1"),
                ("Content-Encoding", "gzip"),
                ("Content-Length", "42"),
                ("X-Custom", "one"),
                ("x-custom", "two"),
            ]
        )
    )
    assert list(end_to_end(source, REQUEST_ONLY).items()) == [
        ("Authorization", "ApiKey abc"),
        ("X-Opaque-Id", "job-1"),
        ("Content-Encoding", "gzip"),
        ("Content-Length", "42"),
        ("X-Custom", "one"),
        ("x-custom", "two"),
    ]


def test_response_headers_keep_length_and_repeated_warnings() -> None:
    source = CIMultiDict(
        [
            ("content-type", "application/json; charset=UTF-8"),
            ("content-encoding", "gzip"),
            ("content-length", "123"),
            ("Warning", '299 OpenSearch-2.19.6 "first"'),
            ("Warning", '299 OpenSearch-2.19.6 "second"'),
            ("connection", "close"),
            ("transfer-encoding", "chunked"),
        ]
    )
    assert list(end_to_end(source, HOP_BY_HOP).items()) == list(source.items())[:5]


@pytest.fixture
async def forwarder() -> AsyncIterator[UpstreamForwarder]:
    settings = UpstreamSettings(urls=(NODE.url,), connect_timeout=2.5, read_timeout=30)
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield UpstreamForwarder(settings, session)


async def test_a_decompressing_session_is_refused() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ValueError, match="auto_decompress=False"):
            UpstreamForwarder(UpstreamSettings(urls=(NODE.url,)), session)


REQUEST_INFO = RequestInfo(URL(NODE.url), "GET", CIMultiDictProxy(CIMultiDict()), URL(NODE.url))
WHERE = f"upstream [{NODE.url}]"


@pytest.mark.parametrize(
    ("error", "status", "reason"),
    [
        (
            aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(errno.ECONNREFUSED, "x")),
            502,
            f"could not connect to {WHERE}: Connection refused",
        ),
        (
            aiohttp.ClientConnectorDNSError(KEY, socket.gaierror(-2, "Name or service not known")),
            502,
            f"could not connect to {WHERE}: Name or service not known",
        ),
        (
            aiohttp.ClientConnectorCertificateError(
                KEY, ssl.SSLCertVerificationError(1, "certificate verify failed")
            ),
            502,
            f"could not connect to {WHERE}: certificate verify failed",
        ),
        (aiohttp.ConnectionTimeoutError(), 504, f"could not connect to {WHERE} within 2.5s"),
        (aiohttp.SocketTimeoutError(), 504, f"{WHERE} sent nothing for 30s"),
        (aiohttp.ServerTimeoutError(), 504, f"{WHERE} sent nothing for 30s"),
        (TimeoutError(), 504, f"{WHERE} sent nothing for 30s"),
        (
            aiohttp.ServerDisconnectedError(),
            502,
            f"{WHERE} closed the connection before answering",
        ),
        (
            aiohttp.ClientOSError(errno.ECONNRESET, "Connection reset by peer"),
            502,
            f"{WHERE} failed: Connection reset by peer",
        ),
        (
            aiohttp.ClientResponseError(
                REQUEST_INFO, (), status=400, message="Bad status line:\n ^"
            ),
            502,
            f"{WHERE} sent an invalid HTTP response: Bad status line",
        ),
        (
            aiohttp.ClientPayloadError("Response payload is not completed"),
            502,
            f"{WHERE} sent an incomplete body: Response payload is not completed",
        ),
        (aiohttp.ClientError(), 502, f"{WHERE} failed: ClientError"),
    ],
)
async def test_client_errors_become_502_or_504_naming_the_node(
    forwarder: UpstreamForwarder, error: Exception, status: int, reason: str
) -> None:
    translated = forwarder.translate(NODE, error)
    assert (translated.status, translated.reason) == (status, reason)
    assert isinstance(translated, UpstreamTimeout) == (status == 504)


def every_client_error() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    pending: list[type[BaseException]] = [aiohttp.ClientError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def instance_of(cls: type[BaseException]) -> Any:
    error: Any = cls
    if issubclass(cls, aiohttp.ClientConnectorCertificateError):
        return error(KEY, ssl.CertificateError("hostname mismatch"))
    if issubclass(cls, UnixClientConnectorError):
        return error("/run/es.sock", KEY, OSError(errno.ENOENT, "x"))
    if issubclass(cls, aiohttp.ClientConnectorError):
        return error(KEY, OSError(errno.EHOSTUNREACH, "x"))
    if issubclass(cls, aiohttp.ClientResponseError):
        return error(REQUEST_INFO, (), status=400, message="bad")
    if issubclass(cls, aiohttp.ServerFingerprintMismatch):
        return error(b"a", b"b", "10.0.0.7", 9200)
    if issubclass(cls, aiohttp.InvalidURL):
        return error(URL("ftp://10.0.0.7/"))
    return error("boom")


@pytest.mark.parametrize("cls", every_client_error(), ids=lambda cls: cls.__name__)
async def test_every_aiohttp_client_error_translates(
    forwarder: UpstreamForwarder, cls: type[BaseException]
) -> None:
    translated = forwarder.translate(NODE, instance_of(cls))
    assert isinstance(translated, UpstreamUnavailable)
    assert WHERE in translated.reason
    assert "\n" not in translated.reason


async def test_session_reads_raw_bytes_and_keeps_no_cookies() -> None:
    session = await create_upstream_session(UpstreamSettings(urls=(NODE.url,)))
    async with session:
        assert session.auto_decompress is False
        assert isinstance(session.cookie_jar, aiohttp.DummyCookieJar)
        assert session.connector is not None and session.connector.limit == 512
        assert session.timeout.total is None
        assert session.timeout.sock_connect == 10.0 and session.timeout.sock_read == 300.0


@pytest.mark.parametrize(
    ("verify_certs", "ca_certs", "expected"),
    [(True, None, True), (False, None, False), (False, "ignored.pem", False)],
)
async def test_session_tls_follows_the_settings(
    verify_certs: bool, ca_certs: str | None, expected: bool
) -> None:
    settings = UpstreamSettings(urls=(NODE.url,), verify_certs=verify_certs, ca_certs=ca_certs)
    async with await create_upstream_session(settings) as session:
        assert isinstance(session.connector, aiohttp.TCPConnector)
        assert session.connector._ssl is expected


async def test_unreadable_ca_file_is_a_settings_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    settings = UpstreamSettings(urls=(NODE.url,), ca_certs=str(missing))
    with pytest.raises(SettingsError, match=r"cannot load \[upstream\] ca_certs \[.*missing.pem\]"):
        await create_upstream_session(settings)
