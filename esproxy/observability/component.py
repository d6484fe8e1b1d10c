"""Observability as app.py plugs it in: `install` at app creation, `open_observability` at start."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from esproxy.app_keys import FORWARDER, SETTINGS
from esproxy.observability.access_log import AccessLog, open_writer
from esproxy.observability.bookkeeping import Bookkeeping
from esproxy.observability.endpoints_view import list_endpoints
from esproxy.observability.metrics import Metrics
from esproxy.observability.prices import ModelPrice, PriceTable
from esproxy.observability.web import (
    ACCESS_LOG_KEY,
    BOOKKEEPING_KEY,
    METRICS_KEY,
    echo_opaque_id,
    observe_requests,
    serve_metrics,
)
from esproxy.settings import Settings, SettingsError

log = logging.getLogger(__name__)


def install(app: web.Application, settings: Settings) -> None:
    """Before the app's own routes: the middleware (outermost, so it sees rendered errors), the
    X-Opaque-Id echo and the two `/_esproxy/` routes."""
    if settings.metrics.enabled or settings.log.access:
        app.middlewares.insert(0, observe_requests)
    app.on_response_prepare.append(echo_opaque_id)
    app.router.add_get("/_esproxy/metrics", serve_metrics)
    app.router.add_get("/_esproxy/endpoints", list_endpoints)


async def open_observability(app: web.Application) -> AsyncIterator[None]:
    """The metrics and the access log, made before the components that report to them."""
    settings = app[SETTINGS]
    metrics = build_metrics(settings) if settings.metrics.enabled else None
    access = None
    if settings.log.access:
        access = AccessLog(
            open_writer(settings.log.access_file), json_lines=settings.log.format == "json"
        )
        app[ACCESS_LOG_KEY] = access
    side: web.AppRunner | None = None
    if metrics is not None:
        app[METRICS_KEY] = metrics
        forwarder = app.get(FORWARDER)
        if forwarder is not None:
            forwarder.recorder = metrics.forward
            pool = forwarder.pool
            metrics.gauges.nodes_up = lambda: {
                node.url: not node.is_dead(pool.clock()) for node in pool.nodes
            }
        if settings.metrics.listen is not None:
            side = await serve_metrics_apart(metrics, *settings.metrics.listen, settings)
    if access is not None:
        # The splicer hands its exchanges to the access log only, which counts them for the
        # forwarded-request series a batch at a time, and before each scrape.
        forwarder = app.get(FORWARDER)
        if forwarder is not None:
            access.counts = forwarder.recorder
        if metrics is not None:
            metrics.forward.catch_up = access.count_pending
    bookkeeping = app[BOOKKEEPING_KEY] = Bookkeeping(metrics, access)
    if metrics is not None:
        metrics.settle = bookkeeping.settle
    try:
        yield
    finally:
        bookkeeping.settle()
        if side is not None:
            await side.cleanup()
        if access is not None:
            await access.close()


def build_metrics(settings: Settings) -> Metrics:
    overrides = {model: ModelPrice(i, o) for model, i, o in settings.metrics.prices}
    return Metrics(PriceTable(overrides))


async def serve_metrics_apart(
    metrics: Metrics, host: str, port: int, settings: Settings
) -> web.AppRunner | None:
    """`[metrics] listen`: the scrape on an address of its own (say, a private interface), without
    the main listener's auth. With several workers, the first to bind it serves it."""
    app = web.Application()
    app[METRICS_KEY] = metrics
    app.router.add_get("/metrics", serve_metrics)
    app.router.add_get("/_esproxy/metrics", serve_metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as error:
        await runner.cleanup()
        if settings.server.workers > 1:
            log.info("metrics address %s:%d is served by another worker", host, port)
            return None
        raise SettingsError(
            f"[metrics] listen: cannot listen on {host}:{port}: {error.strerror}"
        ) from None
    log.info("metrics also served on http://%s:%d/metrics", host, port)
    return runner
