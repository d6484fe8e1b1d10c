"""DecisionCache: the cluster's recent answers about a caller, so each request need not ask again.

Keys are HMACs of the credentials under a per-process random salt: the cache never holds a
credential, and its keys are worthless outside this process.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from esproxy.authorization.privileges import Credentials


@dataclass(frozen=True)
class Decision:
    # How ES names the caller in a denial; None when the caller is allowed. Actions that need
    # the same privilege share a decision, so the denial's text is made per action.
    denied: str | None = None

    @property
    def allowed(self) -> bool:
        return self.denied is None


ALLOWED = Decision()


class DecisionCache:
    """At most `size` decisions, each kept `ttl` seconds; the least recently used go first."""

    def __init__(self, ttl: float, size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._salt = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, tuple[float, Decision]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def key(self, credentials: Credentials, privilege: str) -> bytes:
        # JSON keeps the parts apart, and an absent header apart from an empty one (the cluster
        # may answer them differently); it writes undecodable bytes (surrogates) as escapes.
        material = json.dumps([credentials.authorization, credentials.run_as, privilege])
        return hmac.new(self._salt, material.encode(), hashlib.sha256).digest()

    def get(self, key: bytes) -> Decision | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, decision = entry
        if expires <= self.clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return decision

    def put(self, key: bytes, decision: Decision) -> None:
        if self.ttl <= 0:
            return
        self._entries[key] = (self.clock() + self.ttl, decision)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
