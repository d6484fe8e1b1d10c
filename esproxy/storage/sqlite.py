"""SqliteEndpointStore: one row per endpoint in a local SQLite file, the default without a cluster.

sqlite3 blocks and its connections are bound to a thread, so one worker thread owns the connection
and runs every call; sqlite3 errors become `StoreUnavailable` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from esproxy.errors import (
    EndpointAlreadyExists,
    EndpointChanged,
    EndpointNotFound,
    StoreUnavailable,
    snake_case,
)
from esproxy.storage.base import EndpointRecord

T = TypeVar("T")

SCHEMA_VERSION = 1
# Other processes (a CLI command next to the server) may hold the write lock briefly.
BUSY_TIMEOUT_MS = 5000

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS endpoints (
    inference_id TEXT PRIMARY KEY,
    task_type TEXT NOT NULL,
    config TEXT NOT NULL,
    internal TEXT NOT NULL,
    sealed_secrets TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID
"""
COLUMNS = "inference_id, config, internal, sealed_secrets"


class SqliteEndpointStore:
    """Endpoints in the SQLite file at `path`; `open()` before use, `close()` after."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor: ThreadPoolExecutor | None = None
        # Made, used and closed only in the executor's thread.
        self._connection: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"SqliteEndpointStore({str(self.path)!r})"

    async def open(self) -> None:
        """Create the data directory (0700), the file (0600) and the table as needed."""
        if self._executor is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="esproxy-sqlite")
        try:
            self._connection = await self._run_in(executor, connect, self.path)
        except BaseException:
            await asyncio.to_thread(executor.shutdown)
            raise
        self._executor = executor

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        connection, self._connection = self._connection, None
        if executor is None:
            return
        # Calls already queued run first: the executor's single thread takes work in order.
        if connection is not None:
            await self._run_in(executor, connection.close)
        await asyncio.to_thread(executor.shutdown)

    async def create(self, record: EndpointRecord) -> None:
        await self._run(insert, record)

    async def get(self, inference_id: str) -> EndpointRecord:
        return await self._run(select, inference_id)

    async def list(self) -> list[EndpointRecord]:
        return await self._run(select_all)

    async def replace(self, record: EndpointRecord, expected: EndpointRecord | None = None) -> None:
        await self._run(update, record, expected)

    async def delete(self, inference_id: str) -> None:
        await self._run(delete, inference_id)

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        if self._executor is None or self._connection is None:
            raise StoreUnavailable(f"the endpoint store [{self.path}] is not open")
        return await self._run_in(self._executor, call, self._connection, *args)

    async def _run_in(self, executor: ThreadPoolExecutor, call: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, call, *args)
        except sqlite3.Error as error:
            raise store_error(self.path, error) from error
        except OSError as error:
            raise StoreUnavailable(
                f"cannot open the endpoint store [{self.path}]: {error.strerror}"
            ) from error


# The functions below run in the store's worker thread.


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Created 0600 before SQLite opens it; SQLite gives its -wal and -shm files the same mode.
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    # isolation_level=None: each write is a single statement, which SQLite commits atomically,
    # so a crash mid-PUT leaves either the whole row or none of it.
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        switch_to_wal(connection)
        # FULL also survives power loss; endpoints change rarely, so the extra fsync is cheap.
        connection.execute("PRAGMA synchronous = FULL")
        # IMMEDIATE takes the write lock first, waiting under busy_timeout, so workers starting
        # together set the schema up one at a time.
        connection.execute("BEGIN IMMEDIATE")
        check_schema_version(path, connection)
        connection.execute(CREATE_TABLE)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        connection.close()
        raise
    return connection


def switch_to_wal(connection: sqlite3.Connection) -> None:
    """Put the file in WAL mode, retrying while another process does the same.

    Two connections switching one new file both hold a read lock and want the exclusive one, so
    SQLite refuses one of them at once instead of calling the busy handler.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            # The primary code: extended ones (SQLITE_BUSY_RECOVERY, ...) are busy too.
            if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        time.sleep(0.01)


def insert(db: sqlite3.Connection, record: EndpointRecord) -> None:
    now = timestamp()
    try:
        db.execute(
            "INSERT INTO endpoints (inference_id, task_type, config, internal, sealed_secrets,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (*row_values(record), now, now),
        )
    except sqlite3.IntegrityError:
        # The primary key decides, so creators racing from other processes also end with one.
        raise EndpointAlreadyExists(record.inference_id) from None


def select(db: sqlite3.Connection, inference_id: str) -> EndpointRecord:
    query = f"SELECT {COLUMNS} FROM endpoints WHERE inference_id = ?"
    row = db.execute(query, (inference_id,)).fetchone()
    if row is None:
        raise EndpointNotFound(inference_id)
    return to_record(row)


def select_all(db: sqlite3.Connection) -> list[EndpointRecord]:
    rows = db.execute(f"SELECT {COLUMNS} FROM endpoints ORDER BY inference_id").fetchall()
    return [to_record(row) for row in rows]


def update(db: sqlite3.Connection, record: EndpointRecord, expected: EndpointRecord | None) -> None:
    inference_id, task_type, config, internal, sealed = row_values(record)
    query = (
        "UPDATE endpoints SET task_type = ?, config = ?, internal = ?, sealed_secrets = ?,"
        " updated_at = ? WHERE inference_id = ?"
    )
    values: tuple[str, ...] = (task_type, config, internal, sealed, timestamp(), inference_id)
    if expected is not None:
        # One statement: the compare and the swap are atomic, also against other processes.
        query += " AND sealed_secrets = ?"
        values += (expected.sealed_secrets,)
    cursor = db.execute(query, values)
    if cursor.rowcount == 0:
        if (
            expected is not None
            and db.execute(
                "SELECT 1 FROM endpoints WHERE inference_id = ?", (inference_id,)
            ).fetchone()
        ):
            raise EndpointChanged(inference_id)
        raise EndpointNotFound(inference_id)


def delete(db: sqlite3.Connection, inference_id: str) -> None:
    cursor = db.execute("DELETE FROM endpoints WHERE inference_id = ?", (inference_id,))
    if cursor.rowcount == 0:
        raise EndpointNotFound(inference_id)


def check_schema_version(path: Path, connection: sqlite3.Connection) -> None:
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise StoreUnavailable(
            f"the endpoint store [{path}] has schema version {version}, written by a newer "
            f"esproxy; this one reads version {SCHEMA_VERSION}"
        )


def row_values(record: EndpointRecord) -> tuple[str, str, str, str, str]:
    # json keeps dict order both ways, and the config's key order is the GET response's key order.
    return (
        record.inference_id,
        record.task_type,
        json.dumps(record.config),
        json.dumps(record.internal),
        record.sealed_secrets,
    )


def to_record(row: tuple[str, str, str, str]) -> EndpointRecord:
    inference_id, config, internal, sealed_secrets = row
    return EndpointRecord(inference_id, json.loads(config), json.loads(internal), sealed_secrets)


def timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def store_error(path: Path, error: sqlite3.Error) -> StoreUnavailable:
    """Every sqlite3 failure means the store cannot serve; the cause keeps SQLite's own words."""
    return StoreUnavailable(
        f"the endpoint store [{path}] failed: {error}",
        caused_by={"type": snake_case(type(error).__name__), "reason": str(error)},
    )
