"""The in-process tier's byte bound: what it counts covers what Python really allocates."""

from __future__ import annotations

import os
import tracemalloc

from esproxy.inference.embedding_cache.keys import derive_key, scope_of
from esproxy.inference.embedding_cache.memory import Entry, MemoryTier


def fill(tier: MemoryTier, count: int, vector_bytes: int) -> None:
    for n in range(count):
        key = derive_key(scope_of("endpoint", "e"), b"spec", f"text {n}")
        vector = os.urandom(vector_bytes)
        tier.put(key, Entry(vector, os.urandom(3 * vector_bytes), 100_000 + n, "e"))


def test_counted_bytes_cover_the_real_allocation():
    tier = MemoryTier(limit_bytes=10**9)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    fill(tier, 5000, 1024)
    allocated = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert allocated <= tier.used_bytes
    assert tier.used_bytes <= allocated * 1.25  # and does not overcount much either


def test_the_least_recently_used_entries_go_first():
    tier = MemoryTier(limit_bytes=120_000)
    fill(tier, 100, 1024)
    assert tier.used_bytes <= 120_000
    kept = len(tier)
    assert 20 < kept < 30
    newest = derive_key(scope_of("endpoint", "e"), b"spec", "text 99")
    oldest_kept = derive_key(scope_of("endpoint", "e"), b"spec", f"text {100 - kept}")
    assert tier.get(oldest_kept) is not None  # touched: now the newest
    fill(tier, 1, 1024)  # "text 0" again pushes out the least recently used
    assert tier.get(oldest_kept) is not None and tier.get(newest) is not None


def test_an_entry_larger_than_the_budget_is_not_kept():
    tier = MemoryTier(limit_bytes=4000)
    fill(tier, 1, 4096)
    assert (len(tier), tier.used_bytes) == (0, 0)
