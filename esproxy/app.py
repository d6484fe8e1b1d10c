"""The composition root: builds the aiohttp application and picks every concrete component.

Each resource is one cleanup context, set up in start order and torn down in reverse.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from esproxy.app_keys import (
    BACKING_STORE,
    BEDROCK_CLIENTS,
    BEDROCK_ENDPOINT_URL,
    BRIDGE_KEYS,
    CHAT_SERVICE,
    CIPHER,
    FORWARDER,
    INFERENCE_SERVICE,
    READINESS,
    RESERVED_INDEX,
    SETTINGS,
    STORE,
)
from esproxy.bedrock_emulator import EmulatorSettings, create_emulator_app
from esproxy.inference.chat_service import ChatService
from esproxy.inference.rate_limits import RateLimiters
from esproxy.inference.service import InferenceService
from esproxy.integrations.amazonbedrock.client import BedrockClients
from esproxy.integrations.amazonbedrock.credentials import DEFAULT as DEFAULT_CREDENTIALS
from esproxy.integrations.amazonbedrock.credentials import BedrockCredentials, Egress
from esproxy.integrations.amazonbedrock.integration import AmazonBedrockIntegration
from esproxy.integrations.amazonbedrock.retries import RetryPolicy
from esproxy.integrations.registry import IntegrationRegistry
from esproxy.observability import component as observability
from esproxy.observability.web import ACCESS_LOG_KEY, METRICS_KEY
from esproxy.openai_bridge.keys import BridgeKeys
from esproxy.openai_bridge.routes import add_bridge_routes
from esproxy.readiness import Readiness
from esproxy.secret_cipher import SecretCipher, load_or_create_key_file, parse_key
from esproxy.settings import Settings, SettingsError
from esproxy.splice.backends import AppTarget, NodeTarget
from esproxy.splice.server import SplicingRunner
from esproxy.splice.splicer import Splicer
from esproxy.storage.cache import CachedEndpointStore
from esproxy.storage.elasticsearch import ElasticsearchEndpointStore
from esproxy.storage.memory import InMemoryEndpointStore
from esproxy.storage.sqlite import SqliteEndpointStore
from esproxy.upstream import UpstreamForwarder
from esproxy.upstream_session import create_upstream_session, tls_context
from esproxy.web import handlers, health
from esproxy.web.authorization import authorization_middleware, open_authorization
from esproxy.web.middlewares import error_middleware
from esproxy.web.routes import add_routes

log = logging.getLogger(__name__)

OpenableStore = InMemoryEndpointStore | SqliteEndpointStore | ElasticsearchEndpointStore

# Server options for every way of running the app (CLI and tests): request bodies stay compressed
# so that forwarding is byte-exact. The CLI also turns on handler cancellation, so a client that
# goes away cancels its handler and its Bedrock call (aiohttp's TestServer always does).
SERVER_KWARGS: dict[str, Any] = {
    "auto_decompress": False,
    # Room for long URLs and headers, so that they get ES-shaped answers (or reach the cluster)
    # rather than aiohttp's plain-text 400.
    "max_line_size": 65536,
    "max_field_size": 65536,
}


def create_runner(app: web.Application, **kwargs: Any) -> web.AppRunner:
    """How every caller (CLI and tests) serves the app: forwarded requests spliced as bytes."""
    return SplicingRunner(app, build=build_splicer, **SERVER_KWARGS, **kwargs)


async def build_splicer(app: web.Application, app_server: web.Server) -> Splicer | None:
    """The fast path for forwarded requests; none without a cluster to forward to."""
    forwarder = app.get(FORWARDER)
    if forwarder is None:
        return None
    settings = app[SETTINGS].upstream
    tls = await tls_context(settings)
    targets = {node.url: NodeTarget(node.url, node.host, tls) for node in forwarder.pool.nodes}
    splicer = Splicer(
        nodes=forwarder.pool,  # shared with the app's forwarder: one view of which nodes are dead
        targets=targets,
        app=AppTarget(app_server),
        make_handler=app_server,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        reserved=app.get(RESERVED_INDEX),
    )
    splicer.recorder = forwarder.recorder
    if app[SETTINGS].log.forwarded:
        splicer.access = app.get(ACCESS_LOG_KEY)
    return splicer


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, authorization_middleware], client_max_size=0
    )
    app[SETTINGS] = settings
    observability.install(app, settings)
    app[READINESS] = Readiness()
    health.add_default_checks(app, app[READINESS])
    app.cleanup_ctx.extend(
        [
            open_upstream,
            observability.open_observability,
            open_authorization,
            start_dev_emulator,
            open_bedrock_clients,
            open_cipher,
            open_bridge_keys,
            open_store,
            build_service,
        ]
    )
    if settings.bridge.enabled:
        add_bridge_routes(app)
    if settings.upstream.urls:
        add_routes(app, handlers.forward, root=None)
    else:
        add_routes(app, handlers.no_upstream, root=handlers.root_info)
    return app


async def open_upstream(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS].upstream
    if not settings.urls:
        yield
        return
    session = await create_upstream_session(settings)
    app[FORWARDER] = UpstreamForwarder(settings, session)
    try:
        yield
    finally:
        await session.close()


async def start_dev_emulator(app: web.Application) -> AsyncIterator[None]:
    """Under `--dev` without an explicit Bedrock URL, serve the emulator from this process."""
    settings = app[SETTINGS]
    if settings.bedrock.endpoint_url or not settings.server.dev:
        if settings.bedrock.endpoint_url:
            app[BEDROCK_ENDPOINT_URL] = settings.bedrock.endpoint_url
        yield
        return
    knobs = settings.emulator
    emulator = create_emulator_app(
        EmulatorSettings(latency_ms=knobs.latency_ms, stream_delay_ms=knobs.stream_delay_ms)
    )
    runner = web.AppRunner(emulator, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    app[BEDROCK_ENDPOINT_URL] = f"http://127.0.0.1:{port}"
    log.warning("dev mode: Bedrock calls go to the bundled emulator at http://127.0.0.1:%d", port)
    yield
    await runner.cleanup()


async def open_bedrock_clients(app: web.Application) -> AsyncIterator[None]:
    bedrock = app[SETTINGS].bedrock
    credentials = BedrockCredentials(
        Egress(
            credentials=bedrock.credentials,
            proxy_url=bedrock.proxy_url,
            ca_bundle=bedrock.ca_bundle,
            endpoint_url=app.get(BEDROCK_ENDPOINT_URL),
            endpoint_urls=dict(bedrock.endpoint_urls),
        )
    )
    clients = BedrockClients(
        max_pool_connections=bedrock.max_pool_connections,
        connect_timeout=bedrock.connect_timeout,
        read_timeout=bedrock.read_timeout,
        credentials=credentials,
    )
    app[BEDROCK_CLIENTS] = clients

    async def credential_renewals() -> dict[str, object]:
        return credentials.snapshot()

    # Informational, like Bedrock: renewals that keep failing show here (and in the log).
    app[READINESS].add("aws_credentials", credential_renewals, required=False)
    metrics = app.get(METRICS_KEY)
    if metrics is not None:
        metrics.gauges.aws_credentials = credentials.snapshot
    try:
        yield
    finally:
        await clients.close()
        await credentials.close()


async def open_cipher(app: web.Application) -> AsyncIterator[None]:
    app[CIPHER] = await asyncio.to_thread(build_cipher, app[SETTINGS])
    yield


def build_cipher(settings: Settings) -> SecretCipher:
    others = [
        parse_key(t, source="[secrets] previous_keys") for t in settings.secrets.previous_keys
    ]
    if settings.secrets.key:
        return SecretCipher(parse_key(settings.secrets.key), others)
    if settings.storage_backend == "elasticsearch" and not settings.server.dev:
        raise SettingsError(
            "a secrets key is required when endpoints are stored in the cluster: set "
            "ESPROXY_SECRETS_KEY or [secrets] key (generate one with `esproxy generate-key`)"
        )
    return SecretCipher(load_or_create_key_file(settings.storage.key_file), others)


async def open_bridge_keys(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[BRIDGE_KEYS] = build_bridge_keys(settings, app[CIPHER])
    yield


def build_bridge_keys(settings: Settings, cipher: SecretCipher) -> BridgeKeys:
    """Bridge keys follow the secrets keys: minted with the primary, accepted under old ones."""
    previous = [
        parse_key(t, source="[secrets] previous_keys") for t in settings.secrets.previous_keys
    ]
    materials = [cipher.primary.material, *(key.material for key in previous)]
    return BridgeKeys(materials, revoked=settings.bridge.revoked)


async def open_store(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    store = build_store(app)
    describe_store(settings)
    await store.open()
    app[BACKING_STORE] = store
    # Inference reads an endpoint on every call; the cache keeps that off the disk and the cluster.
    app[STORE] = CachedEndpointStore(store, ttl_seconds=settings.storage.cache_seconds)
    try:
        yield
    finally:
        await store.close()


def describe_store(settings: Settings) -> None:
    """Where endpoints live, with the data dir resolved: a relative one depends on the cwd."""
    backend = settings.storage_backend
    if backend == "sqlite":
        log.info("endpoint store: SQLite at [%s]", settings.storage.sqlite_path.resolve())
    elif backend == "elasticsearch":
        log.info("endpoint store: index [%s] in the cluster", settings.storage.index)
    else:
        log.info("endpoint store: in memory (lost at exit)")


def build_store(app: web.Application) -> OpenableStore:
    settings = app[SETTINGS]
    backend = settings.storage_backend
    if backend == "memory":
        return InMemoryEndpointStore()
    if backend == "sqlite":
        return SqliteEndpointStore(settings.storage.sqlite_path)
    if FORWARDER not in app:
        raise SettingsError(
            "storage backend [elasticsearch] needs an upstream cluster: set --upstream"
        )
    return ElasticsearchEndpointStore(
        app[FORWARDER].session, settings.upstream, settings.storage.index
    )


async def build_service(app: web.Application) -> AsyncIterator[None]:
    bedrock = app[SETTINGS].bedrock
    retries = RetryPolicy(max_retries=bedrock.max_retries)
    keyless = bedrock.credentials == DEFAULT_CREDENTIALS
    registry = IntegrationRegistry(
        [AmazonBedrockIntegration(app[BEDROCK_CLIENTS], retries, keyless=keyless)]
    )
    limiters = RateLimiters(
        queue_capacity=bedrock.queue_capacity, max_concurrent_calls=bedrock.max_concurrent_calls
    )
    metrics = app.get(METRICS_KEY)
    if metrics is not None:
        metrics.gauges.queue_depths = limiters.depths
    app[INFERENCE_SERVICE] = InferenceService(
        app[STORE], registry, app[CIPHER], limiters, telemetry=metrics
    )
    app[CHAT_SERVICE] = ChatService(app[INFERENCE_SERVICE])
    yield
