"""Instrumented Tortoise engines (``datalayer.backends.postgres`` / ``.sqlite``) and access to the live one."""

from __future__ import annotations

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient

from datalayer.config import CONNECTION_NAME
from datalayer.monitoring import PoolStats, QueryMonitor


def root_client(name: str = CONNECTION_NAME) -> BaseDBAsyncClient:
    """The pool-owning client, even when called inside a transaction (which swaps in a wrapper)."""
    client = Tortoise.get_connection(name)
    while getattr(client, "_parent", None) is not None and client._parent is not client:
        client = client._parent
    return client


def query_monitor(name: str = CONNECTION_NAME) -> QueryMonitor | None:
    """The live engine's ``QueryMonitor``; ``None`` when the engine is not one of datalayer's."""
    return getattr(root_client(name), "monitor", None)


def pool_stats(name: str = CONNECTION_NAME) -> PoolStats:
    """The live engine's pool figures (``engine="unknown"`` for a plain Tortoise engine)."""
    client = root_client(name)
    stats = getattr(client, "pool_stats", None)
    return stats() if stats is not None else PoolStats(engine="unknown")
