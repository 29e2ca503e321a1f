"""``await ctx.get_database_stats()``: rows per table, recent activity, tasks by status, database size."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import Tortoise
from tortoise.functions import Count

from datalayer.config import CONNECTION_NAME
from datalayer.translate import translated

if TYPE_CHECKING:
    from datalayer.context import DataContext


async def _rows_per_table(ctx: DataContext) -> dict[str, Any]:
    tables = {}
    for model in sorted(ctx.models, key=lambda m: m._meta.db_table):
        tables[model._meta.db_table] = {"rows": await model.all().count()}
    return {"tables": tables}


async def _tasks_by_status(ctx: DataContext) -> dict[str, int] | None:
    tasks = ctx.managers().get("tasks")
    if tasks is None or "status" not in tasks.model._meta.fields_map:
        return None
    rows = await tasks.query().annotate(n=Count("id")).group_by("status").values("status", "n")
    return {str(getattr(row["status"], "value", row["status"])): row["n"] for row in rows}


async def _database_size_bytes(ctx: DataContext) -> int:
    connection = Tortoise.get_connection(CONNECTION_NAME)
    if ctx.target.is_postgres:
        rows = await connection.execute_query_dict("SELECT pg_database_size(current_database()) AS size")
        return int(rows[0]["size"])
    pages = await connection.execute_query_dict("PRAGMA page_count")
    size = await connection.execute_query_dict("PRAGMA page_size")
    return int(pages[0]["page_count"]) * int(size[0]["page_size"])


async def database_stats(ctx: DataContext) -> dict[str, Any]:
    """The domain's own figures (``ctx.system_logs.get_database_stats()``) plus tasks by status and size.

    Raises:
        DatabaseUnavailableError: the database did not answer.
    """
    system_logs = ctx.managers().get("system_logs")
    with translated("stats"):
        if system_logs is not None and hasattr(system_logs, "get_database_stats"):
            stats = dict(await system_logs.get_database_stats())
        else:
            stats = await _rows_per_table(ctx)
        tasks = await _tasks_by_status(ctx)
        if tasks is not None:
            stats["tasks_by_status"] = tasks
        stats["database_size_bytes"] = await _database_size_bytes(ctx)
    stats["target"] = ctx.target.describe()
    return stats
