"""Re-encrypting stored secrets with the primary key, while instances keep serving.

Run it after every instance knows the new key as `[secrets] key` and the old one in
`previous_keys`: they read both, so no request fails while records move to the new key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from esproxy.errors import EndpointNotFound, SecretsUnreadable
from esproxy.secret_cipher import SecretCipher
from esproxy.storage.base import EndpointStore

log = logging.getLogger(__name__)


@dataclass
class RotationReport:
    resealed: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)


async def rotate_secrets(store: EndpointStore, cipher: SecretCipher) -> RotationReport:
    report = RotationReport()
    for record in await store.list():
        inference_id = record.inference_id
        if not cipher.needs_reseal(record.sealed_secrets):
            report.current.append(inference_id)
            continue
        try:
            secrets = cipher.open(inference_id, record.sealed_secrets)
        except SecretsUnreadable as error:
            report.unreadable[inference_id] = error.reason
            continue
        try:
            await store.replace(replace(record, sealed_secrets=cipher.seal(inference_id, secrets)))
        except EndpointNotFound:
            continue  # deleted meanwhile: nothing left to protect
        log.info("re-encrypted the secrets of endpoint [%s]", inference_id)
        report.resealed.append(inference_id)
    return report
