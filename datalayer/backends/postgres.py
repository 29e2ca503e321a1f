"""The PostgreSQL engine: Tortoise's asyncpg client, with timed statements and a bounded pool wait.

Tortoise's own client waits for a pooled connection forever; this one gives up after ``DB_POOL_TIMEOUT``
with ``PoolExhaustedError`` naming the pool size, both for single statements and for opening a transaction.
A transaction always gives its connection back and restores the task's connection, whatever failed; a
connection that cannot be cleaned is closed, never pooled dirty. Raw SQL (``run_raw``) resets the session
it ran on before the connection is pooled again.

A multi-host target (lists of hosts and ports, with ``target_session_attrs``) is handed to asyncpg whole: after
a failover the lost connections expire the pool (``datalayer.backends.retry``) and new ones go to the host that
now accepts the session. With read replicas configured, reads outside a transaction are routed to them
(``datalayer.backends.replicas``).
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic, perf_counter
from types import TracebackType
from typing import Any

import asyncpg
from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper
from tortoise.backends.base.client import (
    PoolConnectionWrapper,
    TransactionContext,
    TransactionContextPooled,
)
from tortoise.connection import get_connections
from tortoise.exceptions import TransactionManagementError

from datalayer.backends.guarded import settle
from datalayer.backends.instrumented import (
    ParametersHidden,
    TimedTransaction,
    monitoring_options,
    within,
)
from datalayer.backends.replicas import PRIMARY_POSITION, ReplicaSet, route_reads
from datalayer.backends.retry import NotConnected, RetriedStatements, RetryPolicy
from datalayer.errors import DatabaseUnavailableError, PoolExhaustedError
from datalayer.monitoring import PoolStats
from datalayer.translate import is_connection_lost

log = logging.getLogger("datalayer.connection")

# Errors a statement prepared before another session changed a column's type can raise on every later use
# (binary COPY and cached INSERTs keep the old types); asyncpg clears its caches for InvalidCachedStatement
# only. Clearing them here makes the next call prepare afresh.
_STALE_TYPES = (
    asyncpg.exceptions.ProtocolViolationError,
    asyncpg.exceptions.InvalidBinaryRepresentationError,
    asyncpg.exceptions.DatatypeMismatchError,
)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Release without the server-side session reset (asyncpg still rolls back an open transaction)."""


async def forget_stale_statements(connection: Any, exc: BaseException) -> None:
    """After ``exc`` on ``connection``: drop every pooled connection's statement and type caches when the
    error says they may describe an altered table."""
    if isinstance(exc, _STALE_TYPES) and connection is not None and not connection.is_closed():
        await connection.reload_schema_state()


async def reset_session(connection: Any) -> None:
    """Undo what raw SQL may have changed in the session: ``SET``, advisory locks, ``LISTEN``, cursors, temp
    tables (asyncpg's reset query plus ``DISCARD TEMP``). A connection that cannot be reset is closed."""
    try:
        await connection.execute(connection.get_reset_query() + "\nDISCARD TEMP;")
    except Exception:
        log.warning("could not reset a connection after raw SQL; closing it", exc_info=True)
        connection.terminate()


class InstrumentedPostgresClient(RetriedStatements, AsyncpgDBClient):
    """``AsyncpgDBClient`` plus statement timing (``monitor``), pool figures, an acquire deadline, and
    statements retried after a lost connection where that is safe (``datalayer.backends.retry``)."""

    replicas: ReplicaSet | None = None

    def __init__(self, **kwargs: Any) -> None:
        self.acquire_timeout, self.monitor = monitoring_options(kwargs)
        self.retry_policy = RetryPolicy(*kwargs.pop("statement_retry", ()))
        self.reset_on_release = bool(kwargs.pop("reset_on_release", False))
        replicas, (max_lag_ms, interval_ms) = kwargs.pop("replicas", None), kwargs.pop("replica_checks", (0, 0))
        host, port = kwargs.get("host"), kwargs.get("port", 5432)
        super().__init__(**{**kwargs, "port": port[0] if isinstance(port, list) else port})
        self.host, self.port = host, port  # lists for a multi-host target: asyncpg tries them in order
        self.log = ParametersHidden(self.log, {})  # type: ignore[assignment]  # transaction wrappers inherit it
        self.pool_waiting = 0
        self.pool_timeouts = 0
        if replicas:
            shared = {name: self.extra[name] for name in ("timeout", "command_timeout", "statement_cache_size",
                                                           "max_inactive_connection_lifetime") if name in self.extra}
            servers = [{**shared, **server, "max_size": self.pool_maxsize, "server_settings": self.server_settings,
                        **({} if self.reset_on_release else {"reset": _keep_session})} for server in replicas]
            self.replicas = ReplicaSet(servers, self._wal_position, max_lag_ms=max_lag_ms,
                                       interval_s=interval_ms / 1000, timeout_s=self.acquire_timeout,
                                       monitor=self.monitor)
            route_reads(self, self.replicas)

    async def create_pool(self, **kwargs: Any) -> asyncpg.Pool:
        if not self.reset_on_release:
            # asyncpg's default release runs a reset query: one more round trip per statement
            kwargs["reset"] = _keep_session
        return await super().create_pool(**kwargs)

    async def create_connection(self, with_db: bool) -> None:
        await super().create_connection(with_db)
        if with_db and self.replicas is not None:
            await self.replicas.start()

    async def _close(self) -> None:
        try:
            if self.replicas is not None:
                await self.replicas.close()
        finally:
            await super()._close()

    async def _wal_position(self) -> tuple[float, Any]:
        """The primary's WAL insert position, and the monotonic time just before it was read."""
        async with self.acquire_connection() as connection:
            sampled_at = monotonic()
            return sampled_at, await connection.fetchrow(PRIMARY_POSITION)

    def acquire_connection(self) -> PoolConnectionWrapper:
        return _PoolAcquire(self, self._pool_init_lock)

    async def run_raw(self, query: str, values: list) -> list[dict]:
        """One raw statement on a pooled connection, whose session is reset before it is pooled again."""
        started, failed = perf_counter(), True
        async with self.acquire_connection() as connection:
            try:
                rows = await connection.fetch(query, *values)
                failed = False
            finally:
                self.monitor.record(query, perf_counter() - started, failed)
                await reset_session(connection)
        return [dict(row) for row in rows]

    async def give_back(self, connection: Any, *, reset: bool) -> None:
        """Return a transaction's connection to the pool (reset first after raw SQL). Never raises: a
        connection that cannot be cleaned or released is closed, and the pool opens a new one later."""
        try:
            if reset:
                await reset_session(connection)
            if self._pool is not None:
                await self._pool.release(connection)
        except Exception:
            log.warning("could not return a transaction's connection to the pool; it was closed", exc_info=True)
            if not connection.is_closed():
                connection.terminate()

    def _in_transaction(self) -> TransactionContext:
        return _PooledTransaction(InstrumentedTransaction(self), self._pool_init_lock)

    async def acquire_pooled(self) -> asyncpg.Connection:
        """A connection from the pool, or ``PoolExhaustedError`` once ``acquire_timeout`` has passed."""
        pool: Any = self._pool
        free = getattr(pool, "_queue", None)
        if free is not None and not free.empty():
            return await pool.acquire()  # a free slot: taken without waiting (the deadline timer costs ~5 us)
        self.pool_waiting += 1
        try:
            return await within(pool.acquire(), self.acquire_timeout)
        except asyncio.TimeoutError:
            self.pool_timeouts += 1
            raise self._acquire_failed(pool) from None
        finally:
            self.pool_waiting -= 1

    def _acquire_failed(self, pool: asyncpg.Pool) -> DatabaseUnavailableError:
        maximum = pool.get_max_size()
        if pool.get_size() >= maximum and pool.get_idle_size() == 0:
            error = PoolExhaustedError(
                f"connection pool exhausted: all {maximum} connections (pool size {maximum}) stayed busy "
                f"for {self.acquire_timeout:g}s with {self.pool_waiting} task(s) waiting; raise "
                "DB_MAX_CONNECTIONS or DB_POOL_TIMEOUT, or hold connections (transactions) for less time",
                pool_size=maximum,
            )
            return error
        return DatabaseUnavailableError(
            f"no new database connection within {self.acquire_timeout:g}s: the server did not answer"
        )

    def pool_stats(self) -> PoolStats:
        pool = self._pool
        if pool is None:
            return PoolStats(engine="postgres", min=self.pool_minsize, max=self.pool_maxsize,
                             acquire_timeout_ms=self.acquire_timeout * 1000, timeouts=self.pool_timeouts)
        size, idle = pool.get_size(), pool.get_idle_size()
        return PoolStats(
            engine="postgres", size=size, min=pool.get_min_size(), max=pool.get_max_size(), idle=idle,
            in_use=size - idle, waiting=self.pool_waiting, acquire_timeout_ms=self.acquire_timeout * 1000,
            timeouts=self.pool_timeouts,
        )


class InstrumentedTransaction(TimedTransaction, TransactionWrapper):  # type: ignore[misc]  # GuardedLevel's acquire
    """The connection of one transaction (or savepoint); its statements are timed like any other."""

    async def statement_failed(self, exc: BaseException) -> None:
        await forget_stale_statements(self._connection, exc)

    async def run_raw(self, query: str, values: list) -> list[dict]:
        """One raw statement in this transaction; the session is reset when the transaction gives its
        connection back (``SET`` without ``LOCAL`` or advisory locks would outlive the transaction)."""
        started, failed = perf_counter(), True
        async with self.acquire_connection() as connection:
            self.root_level.session_touched = True
            try:
                rows = await connection.fetch(query, *values)
                failed = False
            finally:
                self.monitor.record(query, perf_counter() - started, failed)
        return [dict(row) for row in rows]


class _PoolAcquire(PoolConnectionWrapper):
    __slots__ = ()

    async def __aenter__(self) -> asyncpg.Connection:
        try:
            await self.ensure_connection()
            pool = self.client._pool
            free = getattr(pool, "_queue", None)
            if free is not None and not free.empty():
                self.connection = await pool.acquire()  # the common case, without the acquire_pooled frame
            else:
                self.connection = await self.client.acquire_pooled()  # type: ignore[attr-defined]
        except PoolExhaustedError:
            raise
        except Exception as exc:  # nothing was sent: the caller may retry anything
            if is_connection_lost(exc):
                raise NotConnected(exc) from exc
            raise
        return self.connection

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            await forget_stale_statements(self.connection, exc)
        await self.client._pool.release(self.connection)


class _PooledTransaction(TransactionContextPooled):
    __slots__ = ()

    async def __aenter__(self) -> InstrumentedTransaction:
        """Take a pooled connection and ``BEGIN``; a connection found dead at ``BEGIN`` (nothing of the
        transaction sent yet) is replaced, within the pool client's retry policy."""
        parent: InstrumentedPostgresClient = self.client._parent  # type: ignore[assignment]
        policy = parent.retry_policy
        for attempt in range(1, policy.attempts + 2):
            try:
                await self.ensure_connection()
                self.client._connection = await parent.acquire_pooled()
            except PoolExhaustedError:
                raise
            except Exception as exc:
                if is_connection_lost(exc):
                    raise NotConnected(exc) from exc
                raise
            self.token = get_connections().set(self.connection_name, self.client)
            try:
                await self.client.begin()
                return self.client  # type: ignore[return-value]
            except BaseException as exc:
                get_connections().reset(self.token)
                await parent.give_back(self.client._connection, reset=False)
                if attempt > policy.attempts or not isinstance(exc, Exception) or not is_connection_lost(exc):
                    raise
                await parent.expire_pool()
                await asyncio.sleep(policy.delay(attempt))
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Commit or roll back once work still running on the transaction has finished; then, whatever
        failed, give the connection back and restore the task's connection (a failed call never leaves
        the task pointing at a released connection)."""
        client: InstrumentedTransaction = self.client  # type: ignore[assignment]
        parent: InstrumentedPostgresClient = client._parent
        try:
            cancelled = await settle(client)
            try:
                await _finish(client, exc_type or (cancelled and type(cancelled)))
            finally:
                client._lock.release()
        finally:
            try:
                await parent.give_back(client._connection, reset=client.session_touched)
            finally:
                get_connections().reset(self.token)
                if parent.replicas is not None:
                    parent.replicas.wrote()
        if cancelled is not None:
            raise cancelled


async def _finish(client: InstrumentedTransaction, exc_type: Any) -> None:
    """Commit, or roll back after an error; a rollback that fails closes the connection (the server then
    rolls back) so the caller's own error is the one that propagates."""
    if client._finalized:
        return
    if exc_type is None:
        await client.commit()
    elif exc_type is not TransactionManagementError:
        try:
            await client.rollback()
        except Exception:
            log.warning("rollback failed; closing the transaction's connection instead", exc_info=True)
            client._connection.terminate()


client_class = InstrumentedPostgresClient
