"""What is actually in the database: which tables exist and how many rows they hold (CLI, backup, cleanup)."""

from __future__ import annotations

from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model
from tortoise.queryset import QuerySet

from datalayer.config import CONNECTION_NAME
from datalayer.translate import translated


def connection() -> BaseDBAsyncClient:
    return Tortoise.get_connection(CONNECTION_NAME)


def dialect_of(client: BaseDBAsyncClient | None = None) -> str:
    return (client or connection()).capabilities.dialect


async def existing_tables(client: BaseDBAsyncClient | None = None) -> set[str]:
    """Names of the tables present in the connected database (current schema on PostgreSQL)."""
    client = client or connection()
    if dialect_of(client) == "postgres":
        sql = "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    with translated("database"):
        _, rows = await client.execute_query(sql)
    return {row["name"] for row in rows}


async def count_rows(table: str, client: BaseDBAsyncClient | None = None, where: str = "") -> int:
    """``SELECT COUNT(*)`` of a table named by a model (never user input), deleted rows included."""
    client = client or connection()
    with translated(table):
        _, rows = await client.execute_query(f'SELECT COUNT(*) AS n FROM "{table}"{" WHERE " + where if where else ""}')
    return int(rows[0]["n"])


async def row_counts(models: list[type[Model]]) -> dict[str, int | None]:
    """Rows per model table, ``None`` for a table that does not exist yet; plus the ``aerich`` table."""
    present = await existing_tables()
    tables = sorted({m._meta.db_table for m in models} | ({"aerich"} & present))
    return {table: (await count_rows(table) if table in present else None) for table in tables}


def is_soft(model: type[Model]) -> bool:
    return "deleted_at" in model._meta.fields_map


def every_row(model: type[Model]) -> QuerySet[Any]:
    """A queryset over all rows of ``model``, soft-deleted ones included."""
    return model.all_objects.all() if is_soft(model) else model.all()  # type: ignore[attr-defined]  # soft models have it


def dependency_order(models: list[type[Model]]) -> list[type[Model]]:
    """Models ordered so every model comes after the models its foreign keys point to."""
    remaining = sorted(models, key=lambda m: m._meta.db_table)
    ordered: list[type[Model]] = []
    while remaining:
        for model in remaining:
            parents = {model._meta.fields_map[name].related_model  # type: ignore[attr-defined]  # a foreign key
                       for name in model._meta.fk_fields}
            if all(parent in ordered or parent is model or parent not in remaining for parent in parents):
                ordered.append(model)
                remaining.remove(model)
                break
        else:  # a cycle: keep the rest as they are
            ordered.extend(remaining)
            break
    return ordered


def placeholder(index: int, client: BaseDBAsyncClient | None = None) -> str:
    """The bind-parameter marker of the dialect (``$1`` on PostgreSQL, ``?`` on SQLite)."""
    return f"${index}" if dialect_of(client) == "postgres" else "?"
