"""What the SQLite store adds to the contract: restarts, other writers, file modes, failures."""

import asyncio
import multiprocessing
import sqlite3
import stat
import time
from contextlib import closing
from pathlib import Path

import pytest

from esproxy.errors import EndpointAlreadyExists, StoreUnavailable
from esproxy.secret_cipher import SecretCipher, generate_key_text, parse_key
from esproxy.storage import sqlite as sqlite_module
from esproxy.storage.base import EndpointRecord
from esproxy.storage.sqlite import SqliteEndpointStore, store_error


def record(inference_id: str, sealed_secrets: str = "v1.sealed") -> EndpointRecord:
    config = {"inference_id": inference_id, "task_type": "completion", "service": "amazonbedrock"}
    return EndpointRecord(inference_id, config, {"version": 1}, sealed_secrets)


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "data" / "endpoints.db"


@pytest.fixture
async def store(db_path):
    opened = SqliteEndpointStore(db_path)
    await opened.open()
    yield opened
    await opened.close()


def mode_of(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_endpoints_survive_a_restart(db_path):
    first = SqliteEndpointStore(db_path)
    await first.open()
    await first.create(record("kept"))
    await first.create(record("replaced"))
    await first.replace(record("replaced", sealed_secrets="v1.new"))
    await first.create(record("deleted"))
    await first.delete("deleted")
    await first.close()

    second = SqliteEndpointStore(db_path)
    await second.open()
    try:
        assert await second.list() == [record("kept"), record("replaced", "v1.new")]
    finally:
        await second.close()


async def test_two_stores_on_one_file_write_safely(db_path):
    stores = [SqliteEndpointStore(db_path), SqliteEndpointStore(db_path)]
    for each in stores:
        await each.open()
    try:
        distinct = [stores[n % 2].create(record(f"e{n:02}")) for n in range(20)]
        contested = [each.create(record("contested")) for each in stores for _ in range(5)]
        results = await asyncio.gather(*distinct, *contested, return_exceptions=True)

        assert results[:20] == [None] * 20
        assert results[20:].count(None) == 1
        assert sum(isinstance(r, EndpointAlreadyExists) for r in results[20:]) == 9
        expected = sorted([*(f"e{n:02}" for n in range(20)), "contested"])
        for each in stores:
            assert [r.inference_id for r in await each.list()] == expected
    finally:
        for each in stores:
            await each.close()


async def test_files_are_private_to_the_owner(db_path, store):
    await store.create(record("e"))

    assert mode_of(db_path.parent) == 0o700
    files = sorted(db_path.parent.iterdir())
    assert [f.name for f in files] == ["endpoints.db", "endpoints.db-shm", "endpoints.db-wal"]
    assert all(mode_of(f) == 0o600 for f in files)


async def test_stored_files_hold_no_plaintext_secret(db_path, store):
    secrets = {"access_key": "AKIAPLAINTEXTCHECK", "secret_key": "very/secret+value"}
    sealed = SecretCipher(parse_key(generate_key_text())).seal("e", secrets, b"{}")
    await store.create(record("e", sealed_secrets=sealed))
    await store.replace(record("e", sealed_secrets=sealed))

    written = b"".join(f.read_bytes() for f in db_path.parent.iterdir())
    await store.close()
    written += db_path.read_bytes()

    assert sealed.encode() in written
    for value in secrets.values():
        assert value.encode() not in written


async def test_close_is_idempotent_and_later_calls_are_unavailable(store):
    await store.close()
    await store.close()

    with pytest.raises(StoreUnavailable, match="is not open") as caught:
        await store.list()
    assert caught.value.status == 503


async def test_calls_before_open_are_unavailable(db_path):
    with pytest.raises(StoreUnavailable, match="is not open"):
        await SqliteEndpointStore(db_path).get("e")
    assert not db_path.exists()


async def test_a_file_that_is_not_a_database_is_unavailable(db_path):
    db_path.parent.mkdir()
    db_path.write_bytes(b"this is not sqlite" * 100)
    store = SqliteEndpointStore(db_path)

    with pytest.raises(StoreUnavailable) as caught:
        await store.open()

    assert caught.value.status == 503
    assert caught.value.to_cause()["caused_by"] == {
        "type": "database_error",
        "reason": "file is not a database",
    }
    with pytest.raises(StoreUnavailable, match="is not open"):
        await store.list()


async def test_a_path_that_cannot_be_created_is_unavailable(tmp_path):
    (tmp_path / "a-file").write_text("")

    with pytest.raises(StoreUnavailable, match=r"cannot open the endpoint store \[.*a-file"):
        await SqliteEndpointStore(tmp_path / "a-file" / "endpoints.db").open()


async def test_a_database_from_a_newer_esproxy_is_refused(db_path, store):
    await store.close()
    with closing(sqlite3.connect(db_path)) as other:
        other.execute("PRAGMA user_version = 99")

    with pytest.raises(StoreUnavailable, match="schema version 99, written by a newer esproxy"):
        await SqliteEndpointStore(db_path).open()


async def test_a_write_lock_held_too_long_is_unavailable_then_recovers(db_path, monkeypatch):
    monkeypatch.setattr(sqlite_module, "BUSY_TIMEOUT_MS", 50)
    store = SqliteEndpointStore(db_path)
    await store.open()
    try:
        with closing(sqlite3.connect(db_path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreUnavailable, match="database is locked"):
                await store.create(record("e"))
            other.execute("ROLLBACK")

        await store.create(record("e"))
        assert await store.list() == [record("e")]
    finally:
        await store.close()


def open_at(path: Path, start: float) -> str | None:
    """Runs in a worker process: wait for the common start, open the store, say what went wrong."""
    time.sleep(max(0.0, start - time.time()))
    try:
        sqlite_module.connect(path).close()
    except sqlite3.Error as error:
        return str(error)
    return None


def test_workers_opening_a_new_file_together_all_succeed(tmp_path):
    # `serve --workers N` opens one new file from N processes at once. Two of them switching it to
    # WAL together once made SQLite refuse one at once ("database is locked"), killing that worker.
    # A race: this fails for about one round in ten on the old code, so it runs many rounds.
    processes = 8
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        failures = []
        for round_number in range(60):
            path = tmp_path / f"round-{round_number}" / "endpoints.db"
            start = time.time() + 0.05
            results = pool.starmap(open_at, [(path, start)] * processes, chunksize=1)
            failures += [result for result in results if result is not None]

    assert failures == []


def all_subclasses(cls: type[sqlite3.Error]) -> list[type[sqlite3.Error]]:
    return [cls, *(sub for direct in cls.__subclasses__() for sub in all_subclasses(direct))]


@pytest.mark.parametrize("error_class", all_subclasses(sqlite3.Error), ids=lambda c: c.__name__)
def test_every_sqlite_error_means_the_store_is_unavailable(error_class, tmp_path):
    translated = store_error(tmp_path / "endpoints.db", error_class("disk I/O error"))

    assert isinstance(translated, StoreUnavailable)
    assert translated.status == 503
    assert (
        translated.reason == f"the endpoint store [{tmp_path}/endpoints.db] failed: disk I/O error"
    )
    assert translated.to_cause()["caused_by"]["reason"] == "disk I/O error"
