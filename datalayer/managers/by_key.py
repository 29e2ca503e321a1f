"""Reading one row by primary key (or another unique field) with SQL built once per model, not once per call.

Tortoise rebuilds a ``SELECT`` through pypika on every ``get``; for a lookup by key the statement never
changes, so it is cached per (model, field, dialect, live-only) and the row is built as Tortoise builds
fetched rows (``_init_from_db``, by ``pg_rows``). Inside a transaction the transaction's connection is used.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from tortoise.connection import get_connection
from tortoise.models import Model

from datalayer.config import CONNECTION_NAME
from datalayer.managers import pg_rows


@cache
def _select_by(model: type[Model], field: str, dialect: str, live_only: bool) -> str:
    meta = model._meta
    columns = ", ".join(f'"{column}"' for column in pg_rows.columns_of(model))
    table = f'"{meta.schema}"."{meta.db_table}"' if meta.schema else f'"{meta.db_table}"'
    placeholder = "$1" if dialect == "postgres" else "?"
    live = ' AND "deleted_at" IS NULL' if live_only else ""
    return f'SELECT {columns} FROM {table} WHERE "{meta.fields_db_projection[field]}" = {placeholder}{live} LIMIT 1'


async def fetch_by(model: type[Model], field: str, value: Any, *, live_only: bool) -> Any | None:
    """The row whose ``field`` equals ``value`` (live rows only when ``live_only``), or None.

    For fields unique among (live) rows, such as the primary key or a user's email.
    """
    connection = get_connection(CONNECTION_NAME)
    dialect = connection.capabilities.dialect
    if dialect != "postgres":
        value = model._meta.fields_map[field].to_db_value(value, model)
    _, rows = await connection.execute_query(_select_by(model, field, dialect, live_only), [value])
    return pg_rows.model_rows(model, rows)[0] if rows else None


async def fetch_by_key(model: type[Model], key: Any, *, live_only: bool) -> Any | None:
    """The row with primary key ``key`` (live rows only when ``live_only``), or None."""
    return await fetch_by(model, model._meta.pk_attr, key, live_only=live_only)
