"""The in-process tier: a least-recently-used map bounded in bytes."""

from __future__ import annotations

import sys
from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Entry:
    """One cached vector: raw float32 or int8 bytes, its JSON text as esproxy renders it (so a hit
    costs no float formatting), its input tokens, and who wrote it."""

    vector: bytes = field(repr=False)
    rendered: bytes = field(repr=False)
    tokens: int
    endpoint: str


# Beyond the payload bytes: the three bytes objects' headers, the entry itself, and the
# OrderedDict's slot and link node (checked with tracemalloc in test_embedding_cache_memory.py).
ENTRY_OVERHEAD = 3 * sys.getsizeof(b"") + sys.getsizeof(Entry(b"", b"", 0, "")) + 160


def entry_cost(key: bytes, entry: Entry) -> int:
    return len(key) + len(entry.vector) + len(entry.rendered) + ENTRY_OVERHEAD


class MemoryTier:
    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.used_bytes = 0
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> Entry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: bytes, entry: Entry) -> None:
        cost = entry_cost(key, entry)
        if cost > self.limit_bytes:
            return  # larger than the whole budget: never cached
        old = self._entries.pop(key, None)
        if old is not None:
            self.used_bytes -= entry_cost(key, old)
        self._entries[key] = entry
        self.used_bytes += cost
        while self.used_bytes > self.limit_bytes:
            oldest, evicted = self._entries.popitem(last=False)
            self.used_bytes -= entry_cost(oldest, evicted)

    def clear(self, endpoint: str | None = None) -> int:
        """Drop every entry, or those one endpoint wrote; how many were dropped."""
        if endpoint is None:
            count = len(self._entries)
            self._entries.clear()
            self.used_bytes = 0
            return count
        doomed = [key for key, entry in self._entries.items() if entry.endpoint == endpoint]
        for key in doomed:
            self.used_bytes -= entry_cost(key, self._entries.pop(key))
        return len(doomed)
