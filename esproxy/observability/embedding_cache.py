"""The embedding cache's series (esproxy/inference/embedding_cache/), read when scraped.

The cache only counts; app.py hands its `metric_values` over, as a number a component already
holds (docs/observability.md, "Adding a series").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

COUNTERS = {
    "hits": "Embedding inputs answered from the cache.",
    "misses": "Embedding inputs sent to the provider.",
    "saved_bedrock_calls": "Bedrock calls the cache made unnecessary.",
    "saved_input_tokens": "Input tokens of the inputs answered from the cache (Cohere: estimated).",
    "cluster_errors": "Failed calls to the cache's tier in the cluster.",
}
GAUGES = {
    "memory_bytes": "Bytes the in-process tier holds (vectors, their JSON text, bookkeeping).",
    "memory_entries": "Vectors the in-process tier holds.",
}


class EmbeddingCacheSeries(Collector):
    """Plain integers the event loop updates; a scrape only reads them."""

    def __init__(self, read: Callable[[], Mapping[str, int]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        values = self.read()
        for name, help_text in COUNTERS.items():
            yield CounterMetricFamily(
                f"esproxy_embedding_cache_{name}", help_text, value=values[name]
            )
        for name, help_text in GAUGES.items():
            yield GaugeMetricFamily(
                f"esproxy_embedding_cache_{name}", help_text, value=values[name]
            )
