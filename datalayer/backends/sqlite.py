"""The SQLite engine: Tortoise's client with timed statements and a bounded wait for its one connection.

SQLite has a single connection guarded by a lock; a transaction holds the lock until it ends. Waiting for
the lock is this engine's "pool acquire": it gives up after ``DB_POOL_TIMEOUT`` with ``PoolExhaustedError``
instead of hanging (for instance when code inside a transaction bypasses the transaction's connection).
A transaction always ends on the connection (a failed ``COMMIT`` is rolled back), so the next caller never
inherits it; raw SQL's session changes are scoped (``datalayer.backends.sqlite_session``).
"""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter
from types import TracebackType
from typing import Any

import aiosqlite
from tortoise.backends.base.client import ConnectionWrapper, TransactionContext
from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionContext, SqliteTransactionWrapper
from tortoise.connection import get_connections
from tortoise.exceptions import TransactionManagementError

from datalayer.backends import sqlite_functions, sqlite_scripts
from datalayer.backends.guarded import settle
from datalayer.backends.instrumented import (
    ParametersHidden,
    TimedStatements,
    TimedTransaction,
    monitoring_options,
    within,
)
from datalayer.backends.sqlite_session import refuse_shared_changes, remember_pragma, restore_session
from datalayer.errors import PoolExhaustedError
from datalayer.monitoring import PoolStats

log = logging.getLogger("datalayer.transactions")


class _DropParameterEcho(logging.Filter):
    """aiosqlite logs each call at debug with its arguments (the statement's parameter values): drop those."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


logging.getLogger("aiosqlite").addFilter(_DropParameterEcho())

class InstrumentedSqliteClient(TimedStatements, SqliteClient):
    """``SqliteClient`` plus statement timing (``monitor``), lock figures and a lock deadline."""

    def __init__(self, file_path: str, **kwargs: Any) -> None:
        self.acquire_timeout, self.monitor = monitoring_options(kwargs)
        super().__init__(file_path, **kwargs)
        self.log = ParametersHidden(self.log, {})  # type: ignore[assignment]  # transaction wrappers inherit it
        self.pool_waiting = 0
        self.pool_timeouts = 0

    async def _post_connect(self) -> None:
        """Each new connection folds text and compares ``LIKE`` as PostgreSQL does (``sqlite_functions``)."""
        await super()._post_connect()
        await sqlite_functions.install(self._connection)  # type: ignore[arg-type]  # just connected

    def acquire_connection(self) -> ConnectionWrapper:
        return _LockedAcquire(self._lock, self)

    def _in_transaction(self) -> TransactionContext:
        return _LockedTransaction(InstrumentedSqliteTransaction(self), self._lock)

    async def acquire_lock(self) -> None:
        """Take the connection's lock, or raise ``PoolExhaustedError`` once ``acquire_timeout`` has passed."""
        lock = self._lock
        if not lock.locked() and not getattr(lock, "_waiters", None):
            await lock.acquire()  # free and nobody queued: immediate (the deadline timer costs ~5 us)
            return
        self.pool_waiting += 1
        try:
            await within(self._lock.acquire(), self.acquire_timeout)
        except asyncio.TimeoutError:
            self.pool_timeouts += 1
            error = PoolExhaustedError(
                f"connection pool exhausted: SQLite's single connection (pool size 1) stayed busy for "
                f"{self.acquire_timeout:g}s with {self.pool_waiting} task(s) waiting; keep transactions "
                "short and run statements inside a transaction on its own connection",
                pool_size=1,
            )
            raise error from None
        finally:
            self.pool_waiting -= 1

    async def run_raw(self, query: str, values: list) -> list[dict]:
        """One raw statement; session pragmas it sets are restored and temp objects dropped right after."""
        refuse_shared_changes(query)
        saved: dict[str, Any]
        started, failed, saved = perf_counter(), True, {}
        async with self.acquire_connection() as connection:
            try:
                await remember_pragma(connection, query, saved)
                rows = await connection.execute_fetchall(query, values)
                failed = False
            finally:
                self.monitor.record(query, perf_counter() - started, failed)
                await restore_session(connection, saved)
        return [dict(row) for row in rows]

    def pool_stats(self) -> PoolStats:
        size = 1 if self._connection is not None else 0
        in_use = 1 if self._lock.locked() else 0
        return PoolStats(
            engine="sqlite", size=size, min=1, max=1, idle=max(size - in_use, 0), in_use=in_use,
            waiting=self.pool_waiting, acquire_timeout_ms=self.acquire_timeout * 1000,
            timeouts=self.pool_timeouts,
        )


class InstrumentedSqliteTransaction(TimedTransaction, SqliteTransactionWrapper):  # type: ignore[misc]  # GuardedLevel's acquire
    """The connection of one transaction (or savepoint); its statements are timed like any other."""

    saved_pragmas: dict[str, Any] | None = None

    async def execute_script(self, query: str) -> None:
        """Run ``query``'s statements one by one inside this transaction (``sqlite3.executescript`` would
        COMMIT it first: see ``datalayer.backends.sqlite_scripts``).

        Raises:
            ConfigurationError: the script holds transaction control or ``PRAGMA foreign_keys`` (nothing ran).
        """
        each = sqlite_scripts.statements(query)
        started, failed = perf_counter(), True
        async with self.acquire_connection() as connection:
            try:
                for statement in each:
                    await connection.execute(statement)
                failed = False
            finally:
                self.monitor.record(query, perf_counter() - started, failed)

    async def run_raw(self, query: str, values: list) -> list[dict]:
        """One raw statement in this transaction; its session changes last until the transaction ends."""
        refuse_shared_changes(query)
        started, failed = perf_counter(), True
        async with self.acquire_connection() as connection:
            root: InstrumentedSqliteTransaction = self.root_level  # type: ignore[assignment]  # one of these too
            root.session_touched = True
            if root.saved_pragmas is None:
                root.saved_pragmas = {}
            try:
                await remember_pragma(connection, query, root.saved_pragmas)
                rows = await connection.execute_fetchall(query, values)
                failed = False
            finally:
                self.monitor.record(query, perf_counter() - started, failed)
        return [dict(row) for row in rows]


class _LockedAcquire(ConnectionWrapper):
    __slots__ = ()

    async def __aenter__(self) -> aiosqlite.Connection:
        lock = self._lock
        if not lock.locked() and not getattr(lock, "_waiters", None):
            await lock.acquire()  # the common case, without the acquire_lock frame
        else:
            await self.client.acquire_lock()  # type: ignore[attr-defined]
        try:
            await self.ensure_connection()
        except BaseException:
            self._lock.release()
            raise
        return self.connection


class _LockedTransaction(SqliteTransactionContext):
    __slots__ = ()

    async def __aenter__(self) -> InstrumentedSqliteTransaction:
        await self.connection._parent.acquire_lock()
        try:
            await self.ensure_connection()
            self.token = get_connections().set(self.connection_name, self.connection)
            try:
                await self.connection.begin()
            except BaseException:
                get_connections().reset(self.token)
                raise
        except BaseException:
            self._trxlock.release()
            raise
        return self.connection

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Commit or roll back once work still running on the transaction has finished; the connection
        leaves the transaction whatever failed (a failed ``COMMIT`` leaves SQLite's transaction open, and
        the next caller's statements would run inside it)."""
        client: InstrumentedSqliteTransaction = self.connection
        try:
            cancelled = await settle(client)
            try:
                await _finish(client, exc_type or (cancelled and type(cancelled)))
            finally:
                client._lock.release()
                if client.session_touched:
                    await restore_session(client._connection, client.saved_pragmas or {})
        finally:
            get_connections().reset(self.token)
            self._trxlock.release()
        if cancelled is not None:
            raise cancelled


async def _roll_back(client: InstrumentedSqliteTransaction) -> None:
    """Roll back; a failure is logged (an error already propagating is the one that matters)."""
    client._finalized = True
    try:
        await client._connection.rollback()
    except Exception:
        log.warning("rollback failed", exc_info=True)


async def _finish(client: InstrumentedSqliteTransaction, exc_type: Any) -> None:
    if client._finalized:
        return
    if exc_type is None:
        try:
            await client.commit()
        except BaseException:
            await _roll_back(client)
            raise
    elif exc_type is not TransactionManagementError:
        await _roll_back(client)


client_class = InstrumentedSqliteClient
