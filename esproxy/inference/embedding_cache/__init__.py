"""The embedding cache: content-addressed vectors, in process and optionally in the cluster.

`keys` derives what an entry is filed under, `memory` and `cluster` are the two tiers, and
`cache.EmbeddingCache` puts them together for the inference service.
"""

from esproxy.inference.embedding_cache.cache import CacheStats, EmbeddingCache
from esproxy.inference.embedding_cache.cluster import ClusterTier, concrete_index
from esproxy.inference.embedding_cache.keys import EmbeddingIdentity, canonical_spec

__all__ = [
    "CacheStats",
    "ClusterTier",
    "EmbeddingCache",
    "EmbeddingIdentity",
    "canonical_spec",
    "concrete_index",
]
