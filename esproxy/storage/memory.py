"""InMemoryEndpointStore: endpoints in a dict, gone with the process; for tests and `memory`."""

from __future__ import annotations

import copy

from esproxy.errors import EndpointAlreadyExists, EndpointChanged, EndpointNotFound
from esproxy.storage.base import EndpointRecord


class InMemoryEndpointStore:
    """Keeps deep copies, so callers see the isolation a persistent store gives them.

    Each method finishes without awaiting, which is what makes `create` atomic on one event loop.
    """

    def __init__(self) -> None:
        self._records: dict[str, EndpointRecord] = {}

    async def open(self) -> None:
        """Nothing to open; present so every backend starts and stops the same way."""

    async def close(self) -> None:
        """Nothing to close."""

    async def create(self, record: EndpointRecord) -> None:
        if record.inference_id in self._records:
            raise EndpointAlreadyExists(record.inference_id)
        self._records[record.inference_id] = copy.deepcopy(record)

    async def get(self, inference_id: str) -> EndpointRecord:
        try:
            return copy.deepcopy(self._records[inference_id])
        except KeyError:
            raise EndpointNotFound(inference_id) from None

    async def list(self) -> list[EndpointRecord]:
        return [copy.deepcopy(self._records[key]) for key in sorted(self._records)]

    async def replace(self, record: EndpointRecord, expected: EndpointRecord | None = None) -> None:
        current = self._records.get(record.inference_id)
        if current is None:
            raise EndpointNotFound(record.inference_id)
        if expected is not None and current.sealed_secrets != expected.sealed_secrets:
            raise EndpointChanged(record.inference_id)
        self._records[record.inference_id] = copy.deepcopy(record)

    async def delete(self, inference_id: str) -> None:
        if self._records.pop(inference_id, None) is None:
            raise EndpointNotFound(inference_id)
