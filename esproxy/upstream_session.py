"""The aiohttp session to the upstream cluster, and esproxy's own credentials for it.

Forwarding and the cluster-backed store share one session; it carries no credentials of its own.
"""

from __future__ import annotations

import asyncio
import base64
import ssl

import aiohttp

from esproxy.settings import SettingsError, UpstreamSettings

POOL_SIZE = 512  # open connections to the whole upstream; more requests wait for a free one
MAX_FIELD_SIZE = 65536  # ES `Warning` headers can outgrow aiohttp's 8 KiB default


async def create_upstream_session(
    settings: UpstreamSettings, *, pool_size: int = POOL_SIZE
) -> aiohttp.ClientSession:
    """The session forwarding needs: raw bytes both ways, no cookie jar, TLS as configured.

    It carries no credentials: esproxy's own are for its endpoint index and are passed per request.
    """
    connector = aiohttp.TCPConnector(limit=pool_size, ssl=await tls_option(settings))
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        # A cookie jar would replay one client's Set-Cookie answers on other clients' requests.
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=client_timeout(settings),
        max_field_size=MAX_FIELD_SIZE,
    )


async def tls_option(settings: UpstreamSettings) -> ssl.SSLContext | bool:
    if not settings.verify_certs:
        return False
    if not settings.ca_certs:
        return True
    try:
        return await asyncio.to_thread(ssl.create_default_context, cafile=settings.ca_certs)
    except (OSError, ssl.SSLError) as error:
        raise SettingsError(
            f"cannot load [upstream] ca_certs [{settings.ca_certs}]: {error.strerror or error}"
        ) from None


async def tls_context(settings: UpstreamSettings) -> ssl.SSLContext:
    """The same choice as `tls_option`, as a context the spliced connections can use."""
    option = await tls_option(settings)
    if isinstance(option, ssl.SSLContext):
        return option
    if option:
        return await asyncio.to_thread(ssl.create_default_context)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def client_timeout(settings: UpstreamSettings) -> aiohttp.ClientTimeout:
    # No total limit: a long scroll or bulk may stream for as long as bytes keep moving. Waiting for
    # a free pooled connection is not bounded either, so a busy pool never marks a node dead.
    return aiohttp.ClientTimeout(
        total=None, sock_connect=settings.connect_timeout, sock_read=settings.read_timeout
    )


def own_authorization(upstream: UpstreamSettings) -> str | None:
    """esproxy's own credentials: the API key, else a user and password (settings.py moves any
    given in an upstream URL there)."""
    if upstream.api_key:
        key = upstream.api_key
        # An encoded key is base64 and has no colon; "id:key" is the unencoded pair.
        if ":" in key:
            key = base64.b64encode(key.encode()).decode()
        return f"ApiKey {key}"
    if upstream.username is not None:
        return aiohttp.encode_basic_auth(upstream.username, upstream.password or "")
    return None
