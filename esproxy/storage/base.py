"""The EndpointStore protocol and the record every store keeps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class EndpointRecord:
    """One stored endpoint: its public config document, persisted-only fields and sealed secrets.

    Stores never see plaintext secrets: `sealed_secrets` is ciphertext from `SecretCipher`.
    """

    inference_id: str
    config: Mapping[str, Any]
    internal: Mapping[str, Any] = field(default_factory=dict)
    sealed_secrets: str = field(default="", repr=False)

    @property
    def task_type(self) -> str:
        return str(self.config["task_type"])


class EndpointStore(Protocol):
    """Keeps endpoints by `inference_id`.

    `create` is atomic and raises `EndpointAlreadyExists` when the id is taken, so concurrent
    creators end with exactly one endpoint. `get` raises `EndpointNotFound`. `delete` raises
    `EndpointNotFound` when nothing was deleted. `replace` overwrites an existing record (updates,
    key rotation) and raises `EndpointNotFound` when the id is gone; given `expected`, only while
    the stored record still has `expected`'s sealed value (a compare-and-swap: every write seals
    with a fresh nonce, so that value names one version), else it raises `EndpointChanged`.
    Backend failures raise `StoreUnavailable`.
    """

    async def create(self, record: EndpointRecord) -> None: ...

    async def get(self, inference_id: str) -> EndpointRecord: ...

    async def list(self) -> list[EndpointRecord]:
        """Every record, sorted by `inference_id`."""
        ...

    async def replace(
        self, record: EndpointRecord, expected: EndpointRecord | None = None
    ) -> None: ...

    async def delete(self, inference_id: str) -> None: ...
