"""The composition root: builds the aiohttp application and picks every concrete component.

Each resource is one cleanup context, set up in start order and torn down in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    EMBEDDING_CACHE,
    FORWARDER,
    INFERENCE_SERVICE,
    LIMITS,
    RATE_LIMITERS,
    READINESS,
    RESERVED_INDEX,
    RESERVED_NAMES,
    SETTINGS,
    STORE,
    STORE_HEALTH,
)
from esproxy.bedrock_emulator import EmulatorSettings, create_emulator_app
from esproxy.inference.chat_service import ChatService
from esproxy.inference.embedding_cache import ClusterTier, EmbeddingCache, concrete_index
from esproxy.inference.rate_limits import RateLimiters
from esproxy.inference.service import InferenceService
from esproxy.integrations.amazonbedrock.client import BedrockClients
from esproxy.integrations.amazonbedrock.credentials import DEFAULT as DEFAULT_CREDENTIALS
from esproxy.integrations.amazonbedrock.credentials import BedrockCredentials, Egress
from esproxy.integrations.amazonbedrock.integration import AmazonBedrockIntegration
from esproxy.integrations.amazonbedrock.retries import RetryPolicy
from esproxy.integrations.registry import IntegrationRegistry
from esproxy.limits import LeaseIndex, LimitsCoordinator
from esproxy.limits import concrete_index as lease_index
from esproxy.observability import component as observability
from esproxy.observability.embedding_cache import EmbeddingCacheSeries
from esproxy.observability.web import ACCESS_LOG_KEY, METRICS_KEY, malformed_recorder
from esproxy.openai_bridge.keys import BridgeKeys
from esproxy.openai_bridge.routes import add_bridge_routes
from esproxy.readiness import Readiness
from esproxy.secret_cipher import (
    SecretCipher,
    SecretKey,
    load_or_create_key_file_keys,
    parse_key,
    read_key_file_keys,
)
from esproxy.settings import Settings, SettingsError
from esproxy.splice.backends import NodeTarget
from esproxy.splice.server import SplicingRunner
from esproxy.splice.splicer import Splicer
from esproxy.storage.cache import CachedEndpointStore
from esproxy.storage.elasticsearch import ElasticsearchEndpointStore
from esproxy.storage.elasticsearch import reserved_names as store_index_names
from esproxy.storage.memory import InMemoryEndpointStore
from esproxy.storage.opening import OpeningStore
from esproxy.storage.sqlite import SqliteEndpointStore
from esproxy.store_health import StoreHealth
from esproxy.upstream import UpstreamForwarder
from esproxy.upstream_session import create_upstream_session, tls_context
from esproxy.web import handlers, health
from esproxy.web.authorization import authorization_middleware, open_authorization
from esproxy.web.middlewares import error_middleware
from esproxy.web.parse_errors import ElasticServer
from esproxy.web.routes import add_routes

log = logging.getLogger(__name__)

OpenableStore = InMemoryEndpointStore | SqliteEndpointStore | ElasticsearchEndpointStore

# Server options for every way of running the app (CLI and tests): request bodies stay compressed
# so that forwarding is byte-exact. The CLI also turns on handler cancellation, so a client that
# goes away cancels its handler and its Bedrock call (aiohttp's TestServer always does).
SERVER_KWARGS: dict[str, Any] = {
    "auto_decompress": False,
    # Room for long URLs and headers, so that they reach the cluster or esproxy's handlers; past
    # these, `ElasticServer` answers as ES does (too_long_http_line_exception).
    "max_line_size": 65536,
    "max_field_size": 65536,
}


def create_runner(app: web.Application, **kwargs: Any) -> web.AppRunner:
    """How every caller (CLI and tests) serves the app: forwarded requests spliced as bytes."""
    return SplicingRunner(
        app, build=build_splicer, wrap=answer_parse_errors, **SERVER_KWARGS, **kwargs
    )


def answer_parse_errors(app: web.Application, app_server: web.Server) -> web.Server:
    """Requests aiohttp's parser refuses get ES's error body, and count and log like any other."""
    return ElasticServer.like(app_server, malformed_recorder(app))


async def build_splicer(app: web.Application, app_server: web.Server) -> Splicer | None:
    """The fast path for forwarded requests; none without a cluster to forward to."""
    forwarder = app.get(FORWARDER)
    if forwarder is None:
        return None
    # The server `answer_parse_errors` made: its handlers can be lent a spliced connection.
    assert isinstance(app_server, ElasticServer)
    settings = app[SETTINGS].upstream
    tls = await tls_context(settings)
    targets = {node.url: NodeTarget(node.url, node.host, tls) for node in forwarder.pool.nodes}
    splicer = Splicer(
        nodes=forwarder.pool,  # shared with the app's forwarder: one view of which nodes are dead
        targets=targets,
        make_handler=app_server,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        guard=app.get(RESERVED_INDEX),
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
    app[RESERVED_NAMES] = reserved_index_names(settings)
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
            open_limits,
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


def build_cipher(settings: Settings, *, create_key_file: bool = True) -> SecretCipher:
    others = previous_keys(settings)
    if settings.secrets.key:
        # A key file left beside the store still opens what it sealed (e.g. mid-rotation).
        key_file = settings.storage.key_file
        file_keys = read_key_file_keys(key_file) if key_file.exists() else []
        return SecretCipher(parse_key(settings.secrets.key), [*others, *file_keys])
    if settings.storage_backend == "elasticsearch" and not settings.server.dev:
        raise SettingsError(
            "a secrets key is required when endpoints are stored in the cluster: set "
            "ESPROXY_SECRETS_KEY or [secrets] key (generate one with `esproxy generate-key`)"
        )
    key_file = settings.storage.key_file
    if create_key_file:
        primary, *older = load_or_create_key_file_keys(key_file)
    else:
        try:
            primary, *older = read_key_file_keys(settings.storage.key_file)
        except FileNotFoundError:
            raise SettingsError(
                f"no secrets key: [secrets] key is not set and there is no key file "
                f"[{settings.storage.key_file.resolve()}]"
            ) from None
    return SecretCipher(primary, [*older, *others], key_file=key_file)


def previous_keys(settings: Settings) -> list[SecretKey]:
    return [parse_key(t, source="[secrets] previous_keys") for t in settings.secrets.previous_keys]


@contextlib.asynccontextmanager
async def open_admin_store(settings: Settings) -> AsyncIterator[tuple[OpenableStore, str]]:
    """The configured store for an admin command, with what to call it: never created, and none
    of the server's parts (auth, emulator, forwarding) started."""
    backend = settings.storage_backend
    if backend == "memory":
        raise SettingsError("the memory store keeps no endpoints between runs: nothing to rotate")
    if backend == "sqlite":
        path = settings.storage.sqlite_path.resolve()
        if not path.is_file():
            raise SettingsError(
                f"there is no endpoint store at [{path}]: give the --data-dir (or --upstream) of "
                "the store that holds the endpoints"
            )
        sqlite = SqliteEndpointStore(path)
        await sqlite.open()
        try:
            yield sqlite, f"SQLite store [{path}]"
        finally:
            await sqlite.close()
        return
    session = await create_upstream_session(settings.upstream)
    try:
        cluster = ElasticsearchEndpointStore(session, settings.upstream, settings.storage.index)
        await cluster.open(create=False)
        yield cluster, f"cluster store: {cluster.describe()}"
    finally:
        await session.close()


async def open_bridge_keys(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[BRIDGE_KEYS] = build_bridge_keys(settings, app[CIPHER])
    yield


def build_bridge_keys(settings: Settings, cipher: SecretCipher) -> BridgeKeys:
    """Bridge keys follow the secrets keys: minted with the sealing one, accepted under any."""
    return BridgeKeys(
        lambda: [key.material for key in cipher.all_keys()], revoked=settings.bridge.revoked
    )


async def open_store(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    inner = build_store(app)
    describe_store(settings)
    # The cluster may come after esproxy: its store opens in the background (docs/design.md).
    cluster = isinstance(inner, ElasticsearchEndpointStore)
    store = OpeningStore(inner, background=cluster)
    await store.open()
    app[BACKING_STORE] = store
    # Inference reads an endpoint on every call; the cache keeps that off the disk and the cluster.
    cache = CachedEndpointStore(store, ttl_seconds=settings.storage.cache_seconds)
    app[STORE] = cache
    store_health = StoreHealth(store, app[CIPHER], cache)
    app[STORE_HEALTH] = store_health
    if isinstance(inner, ElasticsearchEndpointStore):
        inner.on_index_lost = store_health.note_index_lost
    app[READINESS].add("endpoints", store_health.endpoints)
    # Startup says at once which stored endpoints cannot be used (e.g. a key left out).
    store.on_open = store_health.endpoints
    if store.is_open:
        await store_health.endpoints()
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


async def open_limits(app: web.Application) -> AsyncIterator[None]:
    """Per-endpoint pacing; in cluster mode, shared with every other process through leases."""
    settings = app[SETTINGS]
    bedrock, limits = settings.bedrock, settings.limits
    limiters = RateLimiters(
        queue_capacity=bedrock.queue_capacity, max_concurrent_calls=bedrock.max_concurrent_calls
    )
    leases = None
    if settings.limits_mode == "cluster":
        if FORWARDER not in app:
            raise SettingsError("[limits] mode = cluster needs an upstream cluster: set --upstream")
        timeout = max(2.0, limits.lease_seconds)
        leases = LeaseIndex(app[FORWARDER].session, settings.upstream, limits.index, timeout)
    coordinator = LimitsCoordinator(
        limiters, "local" if leases is None else "cluster", leases, limits.lease_seconds
    )
    app[RATE_LIMITERS] = limiters
    app[LIMITS] = coordinator
    await coordinator.start()

    async def check_limits() -> dict[str, object]:
        return coordinator.stats()

    # Reported, never deciding readiness: pacing goes on from the last shares.
    app[READINESS].add("limits", check_limits, required=False)
    try:
        yield
    finally:
        app[READINESS].remove("limits")
        await coordinator.close()


async def build_service(app: web.Application) -> AsyncIterator[None]:
    bedrock = app[SETTINGS].bedrock
    retries = RetryPolicy(max_retries=bedrock.max_retries)
    keyless = bedrock.credentials == DEFAULT_CREDENTIALS
    registry = IntegrationRegistry(
        [AmazonBedrockIntegration(app[BEDROCK_CLIENTS], retries, keyless=keyless)]
    )
    limiters = app[RATE_LIMITERS]
    cache = build_embedding_cache(app)
    metrics = app.get(METRICS_KEY)
    if metrics is not None:
        metrics.gauges.queue_depths = limiters.depths
        metrics.gauges.paces = limiters.paces
    app[INFERENCE_SERVICE] = InferenceService(
        app[STORE], registry, app[CIPHER], limiters, embedding_cache=cache, telemetry=metrics
    )
    app[CHAT_SERVICE] = ChatService(app[INFERENCE_SERVICE])
    if cache is None:
        yield
        return
    app[EMBEDDING_CACHE] = cache
    if metrics is not None:
        metrics.registry.register(EmbeddingCacheSeries(cache.metric_values))

    async def cache_stats() -> dict[str, Any]:
        return cache.stats()

    # Reported, never deciding readiness: without the cache, esproxy only pays more.
    app[READINESS].add("embedding_cache", cache_stats, required=False)
    stop = asyncio.Event()
    maintenance = asyncio.create_task(cache.maintain(stop))
    try:
        yield
    finally:
        stop.set()
        await maintenance


def build_embedding_cache(app: web.Application) -> EmbeddingCache | None:
    """The embedding cache; its shared tier only beside a cluster (sidecar mode)."""
    settings = app[SETTINGS].cache
    if not settings.enabled:
        return None
    cluster = None
    if settings.cluster:
        if FORWARDER not in app:
            raise SettingsError("[cache] cluster = true needs an upstream cluster: set --upstream")
        forwarder = app[FORWARDER]
        cluster = ClusterTier(forwarder.session, app[SETTINGS].upstream, settings)
    return EmbeddingCache(settings, cluster)


def reserved_index_names(settings: Settings) -> list[tuple[str, ...]]:
    """esproxy's own indices in the cluster, which the guard keeps every caller away from: for
    each, its alias and the concrete index behind it (which may not exist yet at startup)."""
    groups: list[tuple[str, ...]] = []
    if settings.storage_backend == "elasticsearch":
        groups.append(store_index_names(settings.storage.index))
    if settings.cache.enabled and settings.cache.cluster:
        groups.append((settings.cache.index, concrete_index(settings.cache.index)))
    if settings.upstream.urls and settings.limits_mode == "cluster":
        groups.append((settings.limits.index, lease_index(settings.limits.index)))
    return groups
