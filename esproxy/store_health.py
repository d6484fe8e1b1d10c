"""StoreHealth: what /_esproxy/ready says about the endpoint store and every endpoint in it.

- the store itself: opened yet, reachable, and (in the cluster) still esproxy's own index;
- endpoints that cannot be used: sealed with a key that is not configured (`unreadable`, which
  makes the instance not ready: a wrong key is a deployment mistake), changed outside esproxy
  (`modified`), stored by an older esproxy without config authentication (`legacy`);
- endpoints this instance still held when the cluster lost the index (`missing_from_cluster`).

Audits read every endpoint, so their result is kept for `AUDIT_SECONDS`. The numbers are plain
data (`stats()`), for metrics as well.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from esproxy.errors import (
    ConfigNotAuthenticated,
    EndpointModified,
    EndpointNotFound,
    SecretsUnreadable,
)
from esproxy.sealed_records import open_record
from esproxy.secret_cipher import SecretCipher
from esproxy.storage.base import EndpointStore
from esproxy.storage.cache import CachedEndpointStore
from esproxy.storage.elasticsearch import ElasticsearchEndpointStore
from esproxy.storage.opening import OpeningStore

log = logging.getLogger(__name__)

AUDIT_SECONDS = 2.0
PROBE_ID = "_esproxy_readiness_probe"


class StoreHealth:
    def __init__(
        self,
        store: OpeningStore,
        cipher: SecretCipher,
        cache: CachedEndpointStore,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.cipher = cipher
        self.cache = cache
        self._clock = clock
        self._missing: set[str] = set()
        self._report: dict[str, Any] | None = None
        self._audited_at = float("-inf")
        self._logged: dict[str, str] = {}

    async def check_store(self) -> None:
        """Raises the store's problem as a ProxyError; a read past the cache otherwise."""
        self.store.require_open()
        inner = self.store.inner
        if isinstance(inner, ElasticsearchEndpointStore):
            await inner.check()
            return
        backing: EndpointStore = self.store
        try:
            await backing.get(PROBE_ID)
        except EndpointNotFound:
            return

    def note_index_lost(self) -> None:
        """Called as the cluster's index is found gone: what this instance held is now missing."""
        held = self.cache.cached_ids()
        self.cache.forget_all()  # so that they can be created again at once
        self._missing.update(held)
        self._audited_at = float("-inf")
        if held:
            log.error(
                "endpoints %s were in the lost index and are missing from the cluster: "
                "create them again through esproxy",
                held,
            )

    async def endpoints(self, *, fresh: bool = False) -> dict[str, Any]:
        """The audit: `ok` is false only when endpoints are sealed with keys esproxy lacks."""
        recent = self._clock() - self._audited_at < AUDIT_SECONDS
        if self._report is not None and recent and not fresh:
            return self._report
        if not self.store.is_open:
            return {"ok": False, "error": "the endpoint store is not open yet"}
        report = await self._audit()
        self._report, self._audited_at = report, self._clock()
        return report

    def stats(self) -> dict[str, int]:
        report = self._report or {}
        return {
            name: len(report.get(name, ()))
            for name in ("unreadable", "modified", "legacy", "missing_from_cluster")
        }

    async def _audit(self) -> dict[str, Any]:
        await self.cipher.follow_key_file()
        records = await self.store.list()
        unreadable: dict[str, str] = {}
        modified: dict[str, str] = {}
        legacy: dict[str, str] = {}
        for record in records:
            try:
                open_record(self.cipher, record)
            except ConfigNotAuthenticated as error:
                legacy[record.inference_id] = error.reason
            except EndpointModified as error:
                modified[record.inference_id] = error.reason
            except SecretsUnreadable as error:
                unreadable[record.inference_id] = error.reason
        self._missing -= {record.inference_id for record in records}
        report: dict[str, Any] = {"ok": not unreadable, "count": len(records)}
        for name, found in (("unreadable", unreadable), ("modified", modified), ("legacy", legacy)):
            if found:
                report[name] = found
        if self._missing:
            report["missing_from_cluster"] = sorted(self._missing)
        self._log_new(unreadable, modified, legacy)
        return report

    def _log_new(self, *groups: dict[str, str]) -> None:
        current = {key: reason for group in groups for key, reason in group.items()}
        for inference_id, reason in current.items():
            if self._logged.get(inference_id) != reason:
                log.error("endpoint [%s] cannot be used: %s", inference_id, reason)
        self._logged = current
