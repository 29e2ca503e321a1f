"""What both instrumented engines share: statement timing and acquiring a connection with a deadline."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable
from time import perf_counter
from typing import Any, TypeVar

from datalayer.backends.guarded import GuardedLevel
from datalayer.monitoring import QueryMonitor

T = TypeVar("T")
DEFAULT_ACQUIRE_TIMEOUT = 10.0


class ParametersHidden(logging.LoggerAdapter):
    """Tortoise's client logs ``"%s: %s", query, values`` at debug: keep the statement, drop the values.

    Parameter values carry user data and hashes; no datalayer log line may show them.
    """

    def debug(self, msg: object, *args: Any, **kwargs: Any) -> None:
        if msg == "%s: %s" and len(args) == 2:
            args = (args[0], "<parameters hidden>")
        self.logger.debug(msg, *args, **kwargs)


def monitoring_options(kwargs: dict[str, Any]) -> tuple[float, QueryMonitor]:
    """Pop datalayer's own credentials (so the driver never sees them); returns (acquire timeout, monitor)."""
    timeout = float(kwargs.pop("acquire_timeout", DEFAULT_ACQUIRE_TIMEOUT))
    monitor = QueryMonitor(float(kwargs.pop("slow_query_ms", 200.0)), bool(kwargs.pop("log_statements", False)))
    return timeout, monitor


if sys.version_info >= (3, 11):
    async def within(awaitable: Awaitable[T], seconds: float) -> T:
        """``await awaitable`` or raise ``TimeoutError`` after ``seconds`` (a timer, not an extra task)."""
        async with asyncio.timeout(seconds):
            return await awaitable
else:  # pragma: no cover - Python 3.10
    async def within(awaitable: Awaitable[T], seconds: float) -> T:
        return await asyncio.wait_for(awaitable, seconds)


class TimedStatements:
    """Mixin for a Tortoise client: every statement is timed and recorded in ``self.monitor``.

    The time is what the caller waited, including waiting for a connection.
    """

    monitor: QueryMonitor

    # Each method times inline (no shared helper coroutine): one frame less per statement.

    async def execute_query(self, query: str, values: list | None = None) -> Any:
        started, failed = perf_counter(), True
        try:
            result = await super().execute_query(query, values)  # type: ignore[misc]
            failed = False
            return result
        finally:
            self.monitor.record(query, perf_counter() - started, failed)

    async def execute_query_dict(self, query: str, values: list | None = None) -> list[dict]:
        started, failed = perf_counter(), True
        try:
            result = await super().execute_query_dict(query, values)  # type: ignore[misc]
            failed = False
            return result
        finally:
            self.monitor.record(query, perf_counter() - started, failed)

    async def execute_insert(self, query: str, values: list) -> Any:
        started, failed = perf_counter(), True
        try:
            result = await super().execute_insert(query, values)  # type: ignore[misc]
            failed = False
            return result
        finally:
            self.monitor.record(query, perf_counter() - started, failed)

    async def execute_many(self, query: str, values: list) -> None:
        started, failed = perf_counter(), True
        try:
            await super().execute_many(query, values)  # type: ignore[misc]
            failed = False
        finally:
            self.monitor.record(query, perf_counter() - started, failed)

    async def execute_script(self, query: str) -> None:
        started, failed = perf_counter(), True
        try:
            await super().execute_script(query)  # type: ignore[misc]
            failed = False
        finally:
            self.monitor.record(query, perf_counter() - started, failed)


class TimedTransaction(GuardedLevel, TimedStatements):
    """Mixin for a Tortoise transaction wrapper: the connection of one transaction (or savepoint), whose
    statements are timed on the parent client's monitor like any other, and which serves one statement or
    savepoint at a time (``datalayer.backends.guarded``)."""

    def __init__(self, connection: Any) -> None:
        super().__init__(connection)  # type: ignore[call-arg]
        self.monitor = connection.monitor

