"""The PostgreSQL engine: Tortoise's asyncpg client, with timed statements and a bounded pool wait.

Tortoise's own client waits for a pooled connection forever; this one gives up after ``DB_POOL_TIMEOUT``
with ``PoolExhaustedError`` naming the pool size, both for single statements and for opening a transaction.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper
from tortoise.backends.base.client import (
    PoolConnectionWrapper,
    TransactionContext,
    TransactionContextPooled,
)
from tortoise.connection import get_connections

from datalayer.backends.instrumented import (
    ParametersHidden,
    TimedStatements,
    TimedTransaction,
    monitoring_options,
    within,
)
from datalayer.errors import DatabaseUnavailableError, PoolExhaustedError
from datalayer.monitoring import PoolStats


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Release without the server-side session reset (asyncpg still rolls back an open transaction)."""


class InstrumentedPostgresClient(TimedStatements, AsyncpgDBClient):
    """``AsyncpgDBClient`` plus statement timing (``monitor``), pool figures and an acquire deadline."""

    def __init__(self, **kwargs: Any) -> None:
        self.acquire_timeout, self.monitor = monitoring_options(kwargs)
        self.reset_on_release = bool(kwargs.pop("reset_on_release", False))
        super().__init__(**kwargs)
        self.log = ParametersHidden(self.log, {})  # transaction wrappers inherit it
        self.pool_waiting = 0
        self.pool_timeouts = 0

    async def create_pool(self, **kwargs: Any) -> asyncpg.Pool:
        if not self.reset_on_release:
            # asyncpg's default release runs a reset query: one more round trip per statement
            kwargs["reset"] = _keep_session
        return await super().create_pool(**kwargs)

    def acquire_connection(self) -> PoolConnectionWrapper:
        return _PoolAcquire(self, self._pool_init_lock)

    def _in_transaction(self) -> TransactionContext:
        return _PooledTransaction(InstrumentedTransaction(self), self._pool_init_lock)

    async def acquire_pooled(self) -> asyncpg.Connection:
        """A connection from the pool, or ``PoolExhaustedError`` once ``acquire_timeout`` has passed."""
        pool = self._pool
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


class InstrumentedTransaction(TimedTransaction, TransactionWrapper):
    """The connection of one transaction (or savepoint); its statements are timed like any other."""


class _PoolAcquire(PoolConnectionWrapper):
    __slots__ = ()

    async def __aenter__(self) -> asyncpg.Connection:
        await self.ensure_connection()
        pool = self.client._pool
        free = getattr(pool, "_queue", None)
        if free is not None and not free.empty():
            self.connection = await pool.acquire()  # the common case, without the acquire_pooled frame
        else:
            self.connection = await self.client.acquire_pooled()  # type: ignore[attr-defined]
        return self.connection


class _PooledTransaction(TransactionContextPooled):
    __slots__ = ()

    async def __aenter__(self) -> InstrumentedTransaction:
        await self.ensure_connection()
        parent: InstrumentedPostgresClient = self.client._parent  # type: ignore[assignment]
        self.client._connection = await parent.acquire_pooled()
        self.token = get_connections().set(self.connection_name, self.client)
        try:
            await self.client.begin()
        except BaseException:
            get_connections().reset(self.token)
            await parent._pool.release(self.client._connection)
            raise
        return self.client  # type: ignore[return-value]


client_class = InstrumentedPostgresClient
