"""Isolation between tests that share a session's database.

``truncate``: every table of the context's models is emptied before the test; the test runs exactly as the
app does (its transactions commit, on-commit hooks and the read-through cache run, tasks get connections
of their own).

``rollback``: the test runs inside ``datalayer.transactions.transaction()``, rolled back when it ends. The
block is datalayer's own, not a bare Tortoise one, so managers know they are inside a caller's transaction:
a write that fails (a conflict the test expects) rolls back only its savepoint and the test goes on, on
PostgreSQL as on SQLite. Being inside a transaction also means what the app does only after a commit does
not happen: on-commit hooks (cache invalidation, write listeners) never run, reads bypass the read-through
cache, and every statement of the test (its tasks included) runs on the one connection, one at a time.
A test of concurrency, locking, the pool, the cache, or one that closes the context needs ``truncate``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from tortoise.connection import get_connection

from datalayer.config import CONNECTION_NAME
from datalayer.transactions import transaction

if TYPE_CHECKING:
    from datalayer.context import DataContext

ISOLATION_MODES = ("truncate", "rollback")


async def empty_tables(context: DataContext) -> None:
    """Delete every row of every table the context's models use (``TRUNCATE ... CASCADE`` on PostgreSQL)."""
    tables = [model._meta.db_table for model in context.models]
    connection = get_connection(CONNECTION_NAME)
    if context.target.is_postgres:
        quoted = ", ".join(f'"{table}"' for table in tables)
        await connection.execute_script(f"TRUNCATE {quoted} CASCADE")
        return
    await connection.execute_script("PRAGMA foreign_keys=OFF")
    try:
        await connection.execute_script("".join(f'DELETE FROM "{table}";' for table in tables))
    finally:
        await connection.execute_script("PRAGMA foreign_keys=ON")


class _RollBack(Exception):
    """Ends a rolled-back block's transaction."""


@asynccontextmanager
async def rolled_back() -> AsyncIterator[None]:
    """Run the block inside a transaction that is always rolled back (nested blocks become savepoints).

    Work must finish inside the block: anything still running when it ends is refused with
    ``TransactionClosedError`` and writes nothing.
    """
    try:
        async with transaction():
            yield
            raise _RollBack
    except _RollBack:
        pass
