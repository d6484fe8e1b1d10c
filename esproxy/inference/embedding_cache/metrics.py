"""The embedding cache's Prometheus series, read from its counters when scraped."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from esproxy.inference.embedding_cache.cache import EmbeddingCache


class EmbeddingCacheCollector(Collector):
    """Counters are plain integers the event loop updates; a scrape only reads them."""

    def __init__(self, cache: EmbeddingCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        counters = self.cache.counters
        for name, help_text, value in (
            ("hits", "Embedding inputs answered from the cache.", counters.hits),
            ("misses", "Embedding inputs sent to the provider.", counters.misses),
            (
                "saved_bedrock_calls",
                "Bedrock calls the cache made unnecessary.",
                counters.saved_calls,
            ),
            (
                "saved_input_tokens",
                "Input tokens of the inputs answered from the cache (Cohere's estimated).",
                counters.saved_input_tokens,
            ),
            (
                "cluster_errors",
                "Failed calls to the cache's cluster tier.",
                counters.cluster_errors,
            ),
        ):
            yield CounterMetricFamily(f"esproxy_embedding_cache_{name}", help_text, value=value)
        memory = self.cache.memory
        yield GaugeMetricFamily(
            "esproxy_embedding_cache_memory_bytes",
            "Bytes the in-process tier holds (vectors, their JSON text, bookkeeping).",
            value=memory.used_bytes,
        )
        yield GaugeMetricFamily(
            "esproxy_embedding_cache_memory_entries",
            "Vectors the in-process tier holds.",
            value=len(memory),
        )
