"""Opening Tortoise with retry and exponential backoff, and announcing what happens to subscribers."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import asyncpg
from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.connection import get_connections
from tortoise.context import TortoiseContext

from datalayer.backends import root_client
from datalayer.config import CONNECTION_NAME, tortoise_config
from datalayer.errors import DatabaseUnavailableError, DataLayerError
from datalayer.project import Project
from datalayer.schema import extra_schema_sql
from datalayer.settings import Settings

log = logging.getLogger("datalayer.connection")

EventKind = Literal["connected", "retrying", "gave_up", "closed",
                    # the SSH tunnel (datalayer.tunnel); ``target`` is then ssh://user@host:port
                    "tunnel_connected", "tunnel_disconnected", "tunnel_reconnecting", "tunnel_reconnected",
                    "tunnel_gave_up", "tunnel_closed"]
_WARNINGS = {"retrying", "gave_up", "tunnel_disconnected", "tunnel_reconnecting", "tunnel_gave_up"}
_PERMANENT = (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidCatalogNameError)


@dataclass(frozen=True)
class ConnectionEvent:
    """What happened to the connection. ``target`` is described without the password."""

    kind: EventKind
    target: str
    attempt: int = 0
    delay: float = 0.0
    error: str | None = None


class ConnectionEvents:
    """A tiny observer list: ``unsubscribe = connection_events.subscribe(callback)``."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[ConnectionEvent], object]] = []

    def subscribe(self, callback: Callable[[ConnectionEvent], object]) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def emit(self, event: ConnectionEvent) -> None:
        level = logging.WARNING if event.kind in _WARNINGS else logging.INFO
        log.log(level, "database %s", event.kind, extra={"event": event.kind, "target": event.target,
                                                           "attempt": event.attempt, "delay": event.delay,
                                                           "error": event.error})
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:  # a subscriber must never break the connection logic
                log.exception("connection event subscriber failed")


connection_events = ConnectionEvents()


def backoff_delay(attempt: int, base_seconds: float, cap_seconds: float = 30.0) -> float:
    """Exponential backoff with full-range jitter: ``base * 2^(attempt-1)``, scaled by 0.5-1.5, capped."""
    return min(cap_seconds, base_seconds * (2 ** (attempt - 1))) * random.uniform(0.5, 1.5)


def scrub(text: str, settings: Settings) -> str:
    """Remove the password from any text that might carry it (driver messages echo DSNs)."""
    password = settings.target.password
    if password and password.get_secret_value():
        text = text.replace(password.get_secret_value(), "***")
    return text


async def _ping(timeout: float) -> None:
    connection = Tortoise.get_connection(CONNECTION_NAME)
    await asyncio.wait_for(connection.execute_query("SELECT 1"), timeout)


async def _create_schema(tortoise: TortoiseContext) -> None:
    await Tortoise.generate_schemas(safe=True)
    connection = Tortoise.get_connection(CONNECTION_NAME)
    for statement in extra_schema_sql(tortoise.apps.get_models_iterable()):  # type: ignore[union-attr]
        await connection.execute_script(statement)


async def open_database(
    settings: Settings, project: Project, *, generate_schemas: bool = False
) -> TortoiseContext:
    """Initialise Tortoise (visible to tasks started before init) and prove the database answers.

    Retries ``DB_RETRY_ATTEMPTS`` times with exponential backoff, then raises ``DatabaseUnavailableError``
    naming the host, port and database it tried (never the password).
    """
    target = settings.target.describe()
    attempts = settings.db_retry_attempts
    project.importable()
    tortoise = await Tortoise.init(config=tortoise_config(settings, project), _enable_global_fallback=True)
    timeout = settings.db_connection_timeout_ms / 1000 * 2
    for attempt in range(1, attempts + 1):
        try:
            await _ping(timeout)
            break
        except Exception as exc:  # noqa: BLE001 - every startup failure is retried or reported
            cause = exc.__cause__ if isinstance(exc.__cause__, _PERMANENT) else exc
            error = scrub(f"{cause.__class__.__name__}: {cause}", settings)
            if attempt == attempts or isinstance(cause, _PERMANENT):
                await Tortoise.close_connections()
                connection_events.emit(ConnectionEvent("gave_up", target, attempt, error=error))
                raise DatabaseUnavailableError(
                    f"could not connect to {target} after {attempt} attempt(s): {error}",
                    retryable=not isinstance(cause, _PERMANENT),
                ) from None
            delay = backoff_delay(attempt, settings.db_retry_delay_ms / 1000)
            connection_events.emit(ConnectionEvent("retrying", target, attempt, delay, error))
            await asyncio.sleep(delay)
    if generate_schemas:
        await _create_schema(tortoise)
    connection_events.emit(ConnectionEvent("connected", target, attempt))
    return tortoise


def _pool_owner() -> BaseDBAsyncClient | None:
    """The client owning the pool (or SQLite's connection), even if this task still sees a transaction."""
    try:
        return root_client(CONNECTION_NAME)
    except Exception:  # noqa: BLE001 - nothing initialised: nothing to close
        return None


async def close_database(settings: Settings) -> None:
    """Close the pool (or SQLite's connection) and Tortoise's context. Every step runs even if one fails.

    Raises:
        DataLayerError: a step failed (after the others ran).
    """
    owner = _pool_owner()
    failed: list[BaseException] = []
    try:
        if owner is not None:  # Tortoise closes what this task sees: make that the pool's owner
            get_connections().set(CONNECTION_NAME, owner)
        await Tortoise.close_connections()
    except Exception as exc:  # noqa: BLE001
        failed.append(exc)
    if failed and owner is not None:
        try:
            await owner.close()
        except Exception as exc:  # noqa: BLE001
            failed.append(exc)
        try:  # the owner is closed now: this only makes Tortoise forget the context (and its global fallback)
            await Tortoise.close_connections()
        except Exception as exc:  # noqa: BLE001
            failed.append(exc)
    # Tortoise caches compiled INSERT/UPDATE SQL per (connection name, table), not per dialect: a later
    # open against another engine would reuse the old dialect's SQL.
    EXECUTOR_CACHE.clear()
    connection_events.emit(ConnectionEvent("closed", settings.target.describe()))
    if failed:
        raise DataLayerError(f"closing the database failed: {failed[0].__class__.__name__}: {failed[0]}") from failed[0]
