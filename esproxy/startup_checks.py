"""Mistakes `esproxy serve` can tell before it serves, each worded as one line that says what to do.

A cluster that is down is not a mistake (esproxy starts before it and waits); a URL that reaches
something other than a cluster's HTTP port is: the transport port, or `https://` on a plain port.
"""

from __future__ import annotations

import errno
import ssl

import aiohttp

from esproxy.settings import UpstreamSettings

PREFLIGHT_SECONDS = 5.0
# What Elasticsearch's and OpenSearch's transport ports answer an HTTP request with.
TRANSPORT_TEXT = b"This is not an HTTP port"


class StartupError(Exception):
    """esproxy cannot start as configured; the message is the one line the user sees."""


def listen_failure(host: str, port: int, error: OSError) -> StartupError:
    if error.errno == errno.EADDRINUSE:
        return StartupError(
            f"cannot listen on {host}:{port}: the port is already in use (another esproxy, "
            "emulator or Elasticsearch node?); stop it or choose another address with --listen"
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return StartupError(
            f"cannot listen on {host}:{port}: this machine has no such address; check --listen"
        )
    if error.errno == errno.EACCES:
        return StartupError(
            f"cannot listen on {host}:{port}: permission denied (ports below 1024 need "
            "privileges); choose another port with --listen"
        )
    return StartupError(f"cannot listen on {host}:{port}: {error.strerror or error}")


async def check_upstreams(settings: UpstreamSettings, tls: ssl.SSLContext | bool) -> None:
    """Raise StartupError for an upstream URL that answers but is not a cluster's HTTP port."""
    connector = aiohttp.TCPConnector(ssl=tls)
    timeout = aiohttp.ClientTimeout(total=PREFLIGHT_SECONDS)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for url in settings.urls:
            await check_upstream(session, url)


async def check_upstream(session: aiohttp.ClientSession, url: str) -> None:
    try:
        async with session.get(url + "/") as response:
            head = await response.content.read(256)
    except aiohttp.ClientConnectorSSLError as error:
        raise StartupError(wrong_scheme(url, error)) from None
    except aiohttp.ClientSSLError as error:
        raise StartupError(wrong_scheme(url, error)) from None
    except aiohttp.ClientResponseError:  # not an HTTP answer at all
        raise StartupError(not_http(url, "its answer is not HTTP")) from None
    except aiohttp.ServerDisconnectedError:
        raise StartupError(not_http(url, "it closed the connection without an answer")) from None
    except (TimeoutError, aiohttp.ClientError, OSError):
        return  # down or slow: esproxy starts anyway and reports not ready until it answers
    if TRANSPORT_TEXT in head:
        raise StartupError(not_http(url, "it answered that it is not an HTTP port"))


def wrong_scheme(url: str, error: Exception) -> str:
    if url.startswith("https://"):
        plain = "http://" + url.removeprefix("https://")
        return (
            f"--upstream {url}: the TLS handshake failed ({describe(error)}); if the cluster "
            f"serves plain HTTP there, use {plain}"
        )
    return f"--upstream {url}: TLS failed: {describe(error)}"


def not_http(url: str, detail: str) -> str:
    return (
        f"--upstream {url} is not a cluster's HTTP port ({detail}); it may be the transport "
        "port (9300 by default): use the HTTP port, 9200 by default"
    )


def describe(error: Exception) -> str:
    cause = getattr(error, "os_error", None) or error.__cause__ or error
    reason = getattr(cause, "reason", None) or str(cause)
    return " ".join(str(reason).split()) or type(error).__name__
