"""Retrying a statement whose connection died, on a fresh connection, where repeating it is safe.

Only the pool's own client retries (a statement outside any transaction); a transaction's statements never
do, since the transaction died with its connection (``ctx.transaction(retry=N)`` reruns the whole block).

- A **read** (``SELECT``, ``SHOW``, ``VALUES``, ``TABLE``, ``EXPLAIN`` without ``ANALYZE``) whose connection
  was lost is retried: at once on a fresh connection, then with exponential backoff and jitter, at most
  ``DB_STATEMENT_RETRY_ATTEMPTS`` times and within ``DB_STATEMENT_RETRY_BUDGET_MS`` in all.
- A **write** is retried only when the failure proves the statement never reached the server: no connection
  could be made, or the client refused to send on a connection it already knew dead. Otherwise (the
  connection died with the statement in flight) it raises ``DatabaseUnavailableError(maybe_committed=True)``.
- A statement that outlives ``DB_COMMAND_TIMEOUT_MS`` (when set) is cancelled and not retried: a slow statement
  would only be slow again, and a stalled server is what the timeout exists to stop waiting for.
- The first lost connection expires every connection the pool holds (at most once a second): a terminated
  or restarted server killed them all, and the next callers get fresh ones instead of finding out one by one.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import monotonic, perf_counter
from typing import Any, TypeVar

import asyncpg

from datalayer.backends.instrumented import TimedStatements
from datalayer.errors import DatabaseUnavailableError, PoolExhaustedError
from datalayer.monitoring import QueryMonitor
from datalayer.translate import is_connection_lost

log = logging.getLogger("datalayer.connection")
T = TypeVar("T")

_READ = re.compile(r"\s*(?:SELECT|SHOW|VALUES|TABLE)\b", re.IGNORECASE)
_EXPLAIN = re.compile(r"\s*EXPLAIN\b(?![^;]*\bANALY[SZ]E\b)", re.IGNORECASE)
_WRITE_WORDS = re.compile(r"\b(?:INSERT|UPDATE|DELETE|MERGE|NEXTVAL|SETVAL|PG_ADVISORY\w*)\b", re.IGNORECASE)
# asyncpg's own checks, made before anything is written to the socket
_REFUSED_BEFORE_SENDING = ("connection is closed", "cannot switch to state")


@dataclass(frozen=True)
class RetryPolicy:
    """How statements outside a transaction are retried after a lost connection.

    ``attempts``: retries after the first failure (0 turns retrying off); ``budget_s``: seconds from the
    first failure after which no retry starts; ``base_delay_s``: the backoff's base, in seconds (the first
    retry is immediate).
    """

    attempts: int = 3
    budget_s: float = 5.0
    base_delay_s: float = 0.05

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based): 0, then ``base * 2^(n-2)`` +-50%."""
        from datalayer.connection import backoff_delay

        return 0.0 if attempt <= 1 else backoff_delay(attempt - 1, self.base_delay_s, cap_seconds=1.0)


def is_read(sql: str) -> bool:
    """Whether repeating ``sql`` cannot change data: a plain read, with no write hidden in it."""
    if not (_READ.match(sql) or _EXPLAIN.match(sql)):
        return False
    return _WRITE_WORDS.search(sql) is None and "FOR UPDATE" not in sql.upper()


class NotConnected(DatabaseUnavailableError):
    """No connection could be had from the pool: nothing was sent, so anything may be retried."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(f"could not get a database connection: {exc.__class__.__name__}: {exc}",
                         retryable=True, maybe_committed=False)


def never_sent(exc: BaseException) -> bool:
    """Whether ``exc`` proves its statement never reached the server."""
    if isinstance(exc, NotConnected):
        return True
    if isinstance(exc, asyncpg.exceptions.InterfaceError | asyncpg.exceptions._base.InternalClientError):
        return any(text in str(exc) for text in _REFUSED_BEFORE_SENDING)
    return False


async def connected(acquire: Awaitable[T]) -> T:
    """``await acquire`` (a pool's acquire), a lost connection raised as ``NotConnected``."""
    try:
        return await acquire
    except PoolExhaustedError:
        raise
    except Exception as exc:
        if is_connection_lost(exc):
            raise NotConnected(exc) from exc
        raise


class RetriedStatements(TimedStatements):
    """Mixin for the pool's client: every statement timed (as ``TimedStatements``) and, when its connection
    died, retried by the rules in the module docstring. Each method times and retries in one frame."""

    monitor: QueryMonitor
    retry_policy: RetryPolicy
    _pool: Any
    _expired_at: float = 0.0

    async def execute_query(self, query: str, values: list | None = None) -> Any:
        started = perf_counter()
        try:
            result = await super(TimedStatements, self).execute_query(query, values)  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - retry_lost re-raises anything it may not retry
            self.monitor.record(query, perf_counter() - started, True)
            return await self.retry_lost(exc, super(TimedStatements, self).execute_query, query, values)  # type: ignore[misc]
        self.monitor.record(query, perf_counter() - started, False)
        return result

    async def execute_query_dict(self, query: str, values: list | None = None) -> list[dict]:
        started = perf_counter()
        try:
            result = await super(TimedStatements, self).execute_query_dict(query, values)  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - retry_lost re-raises anything it may not retry
            self.monitor.record(query, perf_counter() - started, True)
            return await self.retry_lost(exc, super(TimedStatements, self).execute_query_dict, query, values)  # type: ignore[misc]
        self.monitor.record(query, perf_counter() - started, False)
        return result

    async def execute_insert(self, query: str, values: list) -> Any:
        started = perf_counter()
        try:
            result = await super(TimedStatements, self).execute_insert(query, values)  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - retry_lost re-raises anything it may not retry
            self.monitor.record(query, perf_counter() - started, True)
            return await self.retry_lost(exc, super(TimedStatements, self).execute_insert, query, values)  # type: ignore[misc]
        self.monitor.record(query, perf_counter() - started, False)
        return result

    async def execute_many(self, query: str, values: list) -> None:
        started = perf_counter()
        try:
            await super(TimedStatements, self).execute_many(query, values)  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - retry_lost re-raises anything it may not retry
            self.monitor.record(query, perf_counter() - started, True)
            await self.retry_lost(exc, super(TimedStatements, self).execute_many, query, values)  # type: ignore[misc]
            return
        self.monitor.record(query, perf_counter() - started, False)

    async def retry_lost(self, exc: Exception, call: Callable[[str, Any], Awaitable[T]], query: str, values: Any) -> T:
        """Retry ``call(query, values)`` after ``exc`` (its first failure) while the rules in the module docstring
        allow; else raise ``exc`` or a ``DatabaseUnavailableError``. For callers that send a statement
        themselves (``datalayer.managers.pg_driver``) and want the same rules."""
        policy, read = self.retry_policy, is_read(query)
        first_failed = monotonic()
        for attempt in range(1, policy.attempts + 2):
            if not is_connection_lost(exc) or isinstance(exc, PoolExhaustedError):
                raise exc
            if isinstance(exc, TimeoutError | asyncio.TimeoutError):  # DB_COMMAND_TIMEOUT_MS passed: asyncpg cancelled it server-side
                raise DatabaseUnavailableError(
                    f"the database did not answer within DB_COMMAND_TIMEOUT_MS; the statement was cancelled"
                    f"{'' if read else ' (a write: it may have been committed just before)'}",
                    retryable=True, maybe_committed=not read,
                ) from exc
            await self.expire_pool()
            if not read and not never_sent(exc):
                raise DatabaseUnavailableError(
                    f"the database connection was lost with a write in flight; it may or may not have been "
                    f"committed: check before repeating it ({exc.__class__.__name__}: {exc})",
                    retryable=True, maybe_committed=True,
                ) from exc
            waited = monotonic() - first_failed
            if attempt > policy.attempts or waited >= policy.budget_s:
                break
            await asyncio.sleep(min(policy.delay(attempt), max(0.0, policy.budget_s - waited)))
            started = perf_counter()
            try:
                result = await call(query, values)
            except Exception as failed:  # noqa: BLE001 - classified on the next turn
                self.monitor.record(query, perf_counter() - started, True)
                exc = failed
                continue
            self.monitor.record(query, perf_counter() - started, False)
            log.info("statement succeeded on retry %d after a lost connection", attempt)
            return result
        raise DatabaseUnavailableError(
            f"the database connection failed {attempt} time(s) over {monotonic() - first_failed:.1f} s "
            f"(DB_STATEMENT_RETRY_ATTEMPTS={policy.attempts}, DB_STATEMENT_RETRY_BUDGET_MS="
            f"{policy.budget_s * 1000:g}); last: {exc.__class__.__name__}: {exc}",
            retryable=True, maybe_committed=False,
        ) from exc

    async def expire_pool(self) -> None:
        """Have the pool replace every connection it holds (at most once a second): idle ones on their
        next acquire, busy ones when released."""
        now = monotonic()
        pool = self._pool
        if pool is None or now - self._expired_at < 1.0:
            return
        self._expired_at = now
        await pool.expire_connections()
        log.warning("a pooled database connection was lost; replacing every pooled connection")
