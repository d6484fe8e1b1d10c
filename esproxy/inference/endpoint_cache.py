"""ParsedEndpoints: each stored record's parsed, decrypted endpoint, kept between inference calls.

Reading a record on every call meant parsing its config, decrypting its keys (AES-GCM) and
validating its stored settings again, for a record that rarely changes (docs/benchmarks.md).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from esproxy.inference.models import StoredEndpoint
from esproxy.storage.base import EndpointRecord

MAX_ENTRIES = 1024


@dataclass(frozen=True)
class Parsed:
    record: EndpointRecord  # what `endpoint` was parsed from; its repr hides the sealed secrets
    endpoint: StoredEndpoint  # its repr hides the secrets


class ParsedEndpoints:
    """At most `max_entries` endpoints, one per id; the least recently used go first.

    An entry answers only for a record equal to the one it was parsed from. Every write seals the
    secrets with a fresh nonce, so the sealed secrets alone tell esproxy's versions apart; the
    config and internal fields are compared too, so that a record edited in place some other way
    is never served from the old parse. The endpoints handed out are shared: never mutate them.
    """

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Parsed] = OrderedDict()

    def __repr__(self) -> str:
        # Never the entries: they hold decrypted secrets.
        return f"ParsedEndpoints({len(self._entries)} of {self.max_entries})"

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, inference_id: str, record: EndpointRecord) -> StoredEndpoint | None:
        parsed = self._entries.get(inference_id)
        # Sealed secrets first: the cheap comparison that tells esproxy's own writes apart.
        if (
            parsed is None
            or parsed.record.sealed_secrets != record.sealed_secrets
            or parsed.record != record
        ):
            return None
        self._entries.move_to_end(inference_id)
        return parsed.endpoint

    def put(self, inference_id: str, record: EndpointRecord, endpoint: StoredEndpoint) -> None:
        # Replaces the id's older version, so its decrypted secrets do not linger.
        self._entries[inference_id] = Parsed(record, endpoint)
        self._entries.move_to_end(inference_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, inference_id: str) -> None:
        self._entries.pop(inference_id, None)
