"""Re-sealing stored endpoints with the primary key, while instances keep serving.

Run it after every instance knows the new key as `[secrets] key` and the old one in
`previous_keys`: they read both, so no request fails while records move to the new key. With the
embedded store and its key file, `rotate_key_file` does the whole rotation: the file holds the new
key and the old ones until every endpoint is re-sealed, and only then the new key alone.

Each re-seal is conditional on the version read, so a rotation racing an update never writes back
the secrets the update replaced. Legacy (v1) records are sealed again too, which authenticates
their config from then on; records changed outside esproxy are reported, never re-sealed.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

from esproxy.errors import EndpointChanged, EndpointNotFound, SecretsUnreadable
from esproxy.sealed_records import open_any_record, open_record, seal_record
from esproxy.secret_cipher import (
    SecretCipher,
    SecretKey,
    generate_key_text,
    parse_key,
    write_key_file,
)
from esproxy.storage.base import EndpointRecord, EndpointStore

log = logging.getLogger(__name__)

# Each lost race means another writer sealed a newer version; this many is a store in a loop.
ATTEMPTS = 10


@dataclass
class RotationReport:
    resealed: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.resealed) + len(self.current) + len(self.unreadable)


async def rotate_secrets(store: EndpointStore, cipher: SecretCipher) -> RotationReport:
    report = RotationReport()
    for record in await store.list():
        await rotate_one(store, cipher, record, report)
    return report


async def rotate_one(
    store: EndpointStore, cipher: SecretCipher, record: EndpointRecord, report: RotationReport
) -> None:
    inference_id = record.inference_id
    for _ in range(ATTEMPTS):
        try:
            if not cipher.needs_reseal(record.sealed_secrets):
                open_record(cipher, record)  # current, but only if it is intact
                report.current.append(inference_id)
                return
            secrets = open_any_record(cipher, record)
        except SecretsUnreadable as error:
            report.unreadable[inference_id] = error.reason
            return
        bare = dataclasses.replace(record, sealed_secrets="")
        try:
            await store.replace(seal_record(cipher, bare, secrets), expected=record)
        except EndpointNotFound:
            return  # deleted meanwhile: nothing left to protect
        except EndpointChanged:
            try:
                record = await store.get(inference_id)  # updated meanwhile: rotate that version
            except EndpointNotFound:
                return
            continue
        log.info("re-sealed endpoint [%s]", inference_id)
        report.resealed.append(inference_id)
        return
    report.unreadable[inference_id] = f"kept changing during {ATTEMPTS} attempts; run again"


async def rotate_key_file(
    store: EndpointStore,
    key_file: Path,
    file_keys: list[SecretKey],
    new_key: SecretKey | None,
    previous: list[SecretKey],
) -> tuple[RotationReport, SecretKey]:
    """Rotate to `new_key` (a fresh one if None), keeping the key file able to open everything.

    1. the file gets [new, *old keys] atomically before any record is re-sealed;
    2. every record is re-sealed with the new key;
    3. only when none is left unreadable does the file shrink to [new].
    A crash anywhere leaves a file that opens every record.
    """
    primary = new_key or parse_key(generate_key_text())
    older = [key for key in (*file_keys, *previous) if key.key_id != primary.key_id]
    unique = list({key.key_id: key for key in older}.values())
    write_key_file(key_file, [primary, *unique])
    report = await rotate_secrets(store, SecretCipher(primary, unique))
    if not report.unreadable:
        write_key_file(key_file, [primary])
    return report, primary
