"""esproxy's Prometheus series: one registry per app, made and rendered by prometheus-client.

Cardinality is bounded by construction: an `inference_id` label is made only for an endpoint the
service found stored (`Metrics.endpoint`), and removed again when the service sees it deleted
(`Metrics.forget`). Everything else is counted under `inference_id="_other"`, which no real id can
be (ids start with a letter or digit). Label children are made once and kept, so the hot paths do a
dictionary lookup and an increment, never label resolution.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from esproxy.observability import events
from esproxy.observability.events import RequestRecord
from esproxy.observability.prices import PriceTable
from esproxy.observability.recent import RecentCalls

log = logging.getLogger(__name__)

OTHER: Final = "_other"  # the one label value for ids that are not stored endpoints
UNKNOWN_TASK: Final = "unknown"

CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STATUS_CLASSES: Final = ("1xx", "2xx", "3xx", "4xx", "5xx")

# No `_created` sample beside every counter and histogram: they double the scrape, and Prometheus
# does not need them to compute rates. (A process-wide switch; esproxy owns its process.)
disable_created_metrics()  # type: ignore[no-untyped-call]


class InferenceSeries:
    """The inference and Bedrock families, each labelled by endpoint first."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "esproxy_inference_requests",
            "Inference calls (POST _inference) answered, by endpoint, task type and HTTP status.",
            ["inference_id", "task_type", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "esproxy_inference_request_duration_seconds",
            "Time from an inference request's arrival to the end of its answer (streams included).",
            ["inference_id", "task_type"],
            buckets=CALL_BUCKETS,
            registry=registry,
        )
        self.wait = Histogram(
            "esproxy_rate_limit_wait_seconds",
            "Time a Bedrock call waited for its endpoint's rate limit and a concurrency permit.",
            ["inference_id"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.calls = Counter(
            "esproxy_bedrock_calls",
            "Bedrock calls by outcome; `retried` counts the calls esproxy made again after a "
            "transient failure (each attempt also counts under its own outcome).",
            ["inference_id", "operation", "outcome"],
            registry=registry,
        )
        self.call_duration = Histogram(
            "esproxy_bedrock_call_duration_seconds",
            "Duration of one Bedrock call (one attempt), streams until their last event.",
            ["inference_id", "operation"],
            buckets=CALL_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "esproxy_bedrock_tokens",
            "Tokens Bedrock reported in its usage fields, by direction (input or output).",
            ["inference_id", "direction"],
            registry=registry,
        )
        self.cost = Counter(
            "esproxy_bedrock_estimated_cost_usd",
            "Estimated Bedrock spend in US dollars, from the tokens and the configured price table "
            "(an estimate, not a bill).",
            ["inference_id"],
            registry=registry,
        )


class EndpointSeries:
    """One stored endpoint's label children and its last five minutes; an `EndpointRecorder`."""

    def __init__(
        self,
        families: InferenceSeries,
        inference_id: str,
        task_type: str,
        model: str,
        prices: PriceTable,
    ) -> None:
        self.families = families
        self.inference_id = inference_id
        self.task_type = task_type
        self.model = model
        self.recent = RecentCalls()
        self.duration = families.duration.labels(inference_id, task_type)
        self.wait = families.wait.labels(inference_id)
        self.input_tokens = families.tokens.labels(inference_id, "input")
        self.output_tokens = families.tokens.labels(inference_id, "output")
        self.input_total = self.output_total = 0
        price = prices.price_of(model)
        # Every stored endpoint has the series; it stays 0 for a model without a price.
        self.cost = families.cost.labels(inference_id) if inference_id != OTHER else None
        if price is None and self.cost is not None:
            log.warning(
                "no price for model [%s] of endpoint [%s]: its estimated cost stays 0; add the "
                "model under [metrics.prices]",
                model,
                inference_id,
            )
        self.input_price = 0.0 if price is None else price.input_per_1k_tokens / 1000
        self.output_price = 0.0 if price is None else price.output_per_1k_tokens / 1000
        self._requests: dict[tuple[str, str], Counter] = {}
        self._calls: dict[tuple[str, str], Counter] = {}
        self._call_durations: dict[str, Histogram] = {}

    def request_done(self, task_type: str, status: str, seconds: float) -> None:
        key = (task_type, status)
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = self.families.requests.labels(
                self.inference_id, task_type, status
            )
        child.inc()
        self.duration.observe(seconds)
        self.recent.request(seconds)

    def rate_limit_waited(self, seconds: float) -> None:
        self.wait.observe(seconds)

    def bedrock_call(self, operation: str, outcome: str, seconds: float) -> None:
        self._count_call(operation, outcome)
        child = self._call_durations.get(operation)
        if child is None:
            child = self._call_durations[operation] = self.families.call_duration.labels(
                self.inference_id, operation
            )
        child.observe(seconds)
        if outcome == events.THROTTLED:
            self.recent.throttle()

    def bedrock_retried(self, operation: str) -> None:
        self._count_call(operation, events.RETRIED)

    def _count_call(self, operation: str, outcome: str) -> None:
        key = (operation, outcome)
        child = self._calls.get(key)
        if child is None:
            child = self._calls[key] = self.families.calls.labels(
                self.inference_id, operation, outcome
            )
        child.inc()

    def bedrock_tokens(self, input_tokens: int, output_tokens: int) -> None:
        if input_tokens:
            self.input_tokens.inc(input_tokens)
            self.input_total += input_tokens
        if output_tokens:
            self.output_tokens.inc(output_tokens)
            self.output_total += output_tokens
        if self.cost is not None:
            cost = input_tokens * self.input_price + output_tokens * self.output_price
            if cost:
                self.cost.inc(cost)

    def remove(self) -> None:
        """Drop every series this endpoint made from the families."""
        families, inference_id = self.families, self.inference_id
        for task_type, status in self._requests:
            families.requests.remove(inference_id, task_type, status)
        families.duration.remove(inference_id, self.task_type)
        families.wait.remove(inference_id)
        for operation, outcome in self._calls:
            families.calls.remove(inference_id, operation, outcome)
        for operation in self._call_durations:
            families.call_duration.remove(inference_id, operation)
        families.tokens.remove(inference_id, "input")
        families.tokens.remove(inference_id, "output")
        if self.cost is not None:
            families.cost.remove(inference_id)


class ForwardSeries(Collector):
    """Forwarded-request series: a `ForwardRecorder` for both forwarding paths.

    Plain integers on the hot path (an increment costs ~50 ns, a prometheus-client child ~400 ns),
    turned into counter families when scraped.
    """

    def __init__(self) -> None:
        self.by_class = [0] * len(STATUS_CLASSES)
        self.bytes_in = 0
        self.bytes_out = 0
        self.errors = dict.fromkeys(events.UPSTREAM_REASONS, 0)
        self.handoffs = dict.fromkeys(events.HANDOFFS, 0)
        # Reports exchanges held back for a later `forwarded_batch` (the access log's), so that a
        # scrape counts every exchange that has ended: set by the composition, run by `refresh`.
        self.catch_up: Callable[[], None] = do_nothing

    def forwarded(self, status: int, bytes_in: int, bytes_out: int) -> None:
        index = status // 100 - 1
        self.by_class[index if 0 <= index < 5 else 4] += 1
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out

    def forwarded_batch(
        self, statuses: list[int], bytes_in: list[int], bytes_out: list[int]
    ) -> None:
        by_class = self.by_class
        first = statuses[0] if statuses else 0
        if statuses.count(first) == len(statuses):  # mostly one status: one C-level pass
            counted = {first: len(statuses)} if statuses else {}
        else:
            counted = collections.Counter(statuses)
        for status, count in counted.items():
            index = status // 100 - 1
            by_class[index if 0 <= index < 5 else 4] += count
        self.bytes_in += sum(bytes_in)
        self.bytes_out += sum(bytes_out)

    def upstream_error(self, reason: str) -> None:
        self.errors[reason] += 1

    def handoff(self, kind: str) -> None:
        self.handoffs[kind] += 1

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "esproxy_forwarded_requests",
            "Requests forwarded to the cluster, by the status class of the answer the client got.",
            labels=["status_class"],
        )
        for name, count in zip(STATUS_CLASSES, self.by_class, strict=True):
            requests.add_metric([name], count)
        yield requests
        yield CounterMetricFamily(
            "esproxy_forwarded_request_bytes",
            "Bytes of forwarded requests (head and body) as received from clients.",
            value=self.bytes_in,
        )
        yield CounterMetricFamily(
            "esproxy_forwarded_response_bytes",
            "Bytes of the cluster's answers (head and body) as sent to clients.",
            value=self.bytes_out,
        )
        errors = CounterMetricFamily(
            "esproxy_upstream_errors",
            "Forwarded requests the cluster did not answer properly, by reason.",
            labels=["reason"],
        )
        for reason, count in self.errors.items():
            errors.add_metric([reason], count)
        yield errors
        handoffs = CounterMetricFamily(
            "esproxy_connection_handoffs",
            "Client connections passed between the splicer and esproxy's own handler: lent for "
            "esproxy's APIs, taken back for forwarding, kept by the handler for good.",
            labels=["kind"],
        )
        for kind, count in self.handoffs.items():
            handoffs.add_metric([kind], count)
        yield handoffs


def do_nothing() -> None:
    pass


class CallbackGauges(Collector):
    """Gauges read when scraped, so that the hot paths pay nothing for them.

    The sources are read by `refresh()` on the event loop, which owns them; the scrape itself may
    then render in a worker thread.
    """

    def __init__(self) -> None:
        self.queue_depths: Callable[[], Mapping[str, int]] | None = None
        self.paces: Callable[[], Mapping[str, float]] | None = None
        self.known_ids: Callable[[], list[str]] = list
        self.nodes_up: Callable[[], Mapping[str, bool]] | None = None
        # The Bedrock credentials room's snapshot (identities, renewing, renewals, failures).
        self.aws_credentials: Callable[[], Mapping[str, Any]] | None = None
        self._depths: dict[str, int] = {}
        self._paces: dict[str, float] = {}
        self._nodes: dict[str, bool] | None = None
        self._credentials: dict[str, Any] | None = None

    def refresh(self) -> None:
        waiting = self.queue_depths() if self.queue_depths is not None else {}
        self._depths = {i: waiting.get(i, 0) for i in self.known_ids()}
        paces = self.paces() if self.paces is not None else {}
        self._paces = {i: paces[i] for i in self.known_ids() if i in paces}
        self._nodes = None if self.nodes_up is None else dict(self.nodes_up())
        credentials = self.aws_credentials
        self._credentials = None if credentials is None else dict(credentials())

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "esproxy_rate_limit_queue_depth",
            "Callers waiting for a Bedrock call slot under each endpoint's rate limit.",
            labels=["inference_id"],
        )
        for inference_id, waiting in self._depths.items():
            depth.add_metric([inference_id], waiting)
        yield depth
        pace = GaugeMetricFamily(
            "esproxy_rate_limit_effective_requests_per_minute",
            "The rate this process paces each endpoint at now: its share of the configured rate "
            "(cluster limits), after any cut for Bedrock throttling (adaptive pacing).",
            labels=["inference_id"],
        )
        for inference_id, rpm in self._paces.items():
            pace.add_metric([inference_id], rpm)
        yield pace
        if self._nodes is not None:
            up = GaugeMetricFamily(
                "esproxy_upstream_node_up",
                "1 while esproxy sends requests to a cluster node, 0 while it is marked dead.",
                labels=["node"],
            )
            for node, alive in self._nodes.items():
                up.add_metric([node], 1 if alive else 0)
            yield up
        if self._credentials is not None:
            yield from credential_families(self._credentials)


def credential_families(snapshot: Mapping[str, Any]) -> Iterator[Metric]:
    """The AWS identities esproxy holds for Bedrock, and their background renewals."""
    yield GaugeMetricFamily(
        "esproxy_aws_credentials_identities",
        "AWS identities held for Bedrock calls (key pairs, assumed roles, the default chain).",
        value=snapshot.get("identities", 0),
    )
    yield GaugeMetricFamily(
        "esproxy_aws_credentials_failing",
        "Identities whose latest background renewal failed (calls still use the held ones).",
        value=snapshot.get("failing", 0),
    )
    yield CounterMetricFamily(
        "esproxy_aws_credential_renewals",
        "Temporary AWS credentials renewed in the background (never on a request).",
        value=snapshot.get("renewals", 0),
    )
    yield CounterMetricFamily(
        "esproxy_aws_credential_renewal_failures",
        "Background renewals of temporary AWS credentials that failed and were retried.",
        value=snapshot.get("renewal_failures", 0),
    )


class Metrics:
    """Every series esproxy exports; the `Telemetry` the inference service reports to."""

    def __init__(self, prices: PriceTable | None = None, *, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.prices = prices or PriceTable()
        self.inference = InferenceSeries(self.registry)
        self.forward = ForwardSeries()
        self.registry.register(self.forward)
        self.routes = Counter(
            "esproxy_http_requests",
            "Requests esproxy answered itself (not forwarded), by route pattern and HTTP status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.gauges = CallbackGauges()
        self.gauges.known_ids = lambda: list(self._endpoints)
        self.registry.register(self.gauges)
        if process:
            ProcessCollector(registry=self.registry)
        self._endpoints: dict[str, EndpointSeries] = {}
        self._other: dict[str, EndpointSeries] = {}
        self.started = time.time()
        # Books the answers held back for a moment (bookkeeping.py), so that every reader sees
        # each answer that has ended: set by the composition, run by `settle`.
        self.settle: Callable[[], None] = do_nothing

    # -- the inference service's side (events.Telemetry) ------------------------------------

    def endpoint(self, inference_id: str, task_type: str, model: str) -> EndpointSeries:
        series = self._endpoints.get(inference_id)
        if series is None or series.task_type != task_type or series.model != model:
            if series is not None:  # replaced under the same id: start its series afresh
                series.remove()
            series = self._endpoints[inference_id] = EndpointSeries(
                self.inference, inference_id, task_type, model, self.prices
            )
        return series

    def forget(self, inference_id: str) -> None:
        series = self._endpoints.pop(inference_id, None)
        if series is not None:
            series.remove()

    def known(self, inference_id: str) -> EndpointSeries | None:
        return self._endpoints.get(inference_id)

    # -- the access middleware's side --------------------------------------------------------

    def inference_done(self, record: RequestRecord, status: int, seconds: float) -> None:
        endpoint: object = record.endpoint
        if not isinstance(endpoint, EndpointSeries) and record.inference_id is not None:
            # Refused before the endpoint was read (a bad body, say), but the id is one seen
            # stored: it counts as that endpoint's.
            endpoint = self._endpoints.get(record.inference_id)
        if isinstance(endpoint, EndpointSeries) and endpoint.inference_id in self._endpoints:
            endpoint.request_done(endpoint.task_type, str(status), seconds)
            return
        task_type = record.task_type or UNKNOWN_TASK
        other = self._other.get(task_type)
        if other is None:
            other = self._other[task_type] = EndpointSeries(
                self.inference, OTHER, task_type, "", self.prices
            )
        other.request_done(task_type, str(status), seconds)

    def route_answered(self, route: str, status: int) -> None:
        """One of esproxy's own routes answered; `route` is its pattern, so labels stay few."""
        self.routes.labels(route, str(status)).inc()

    # -- scraping ----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the scrape-time gauges and count the exchanges held back; on the event loop,
        before `render`."""
        self.settle()
        self.forward.catch_up()
        self.gauges.refresh()

    def render(self) -> bytes:
        return generate_latest(self.registry)
