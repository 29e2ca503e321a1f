"""Looking at the database: ``status``, ``stats``, ``health``, ``verify``."""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from datalayer import introspect, migrations
from datalayer.cli.app import command, console, current_project, load_settings, open_context, run
from datalayer.cli.tunnel import tunnel_line
from datalayer.errors import DataLayerError
from datalayer.settings import Settings

EXIT_BY_STATUS = {"healthy": 0, "degraded": 1, "unhealthy": 2}


@command("status")
def status_command() -> None:
    """Where the layer connects (password masked), migrations applied/pending, rows per table."""
    settings = load_settings()
    console.print(f"database     {settings.target.describe()}", markup=False)
    console.print(f"environment  {settings.environment}", markup=False)
    tunnel: list[str] = []  # SSH_HOST set: the tunnel's line, taken while it is open

    async def gather() -> tuple[list[str], list[str], dict[str, int | None]]:
        project = current_project()
        applied = await migrations.applied_migrations(settings, project)
        pending = [name for name in migrations.history(project) if name not in applied]
        context = await open_context(settings)
        tunnel.extend(line for line in [await tunnel_line()] if line)
        return applied, pending, await introspect.row_counts(context.models)

    applied, pending, counts = run(gather())
    for line in tunnel:
        console.print(f"tunnel       {line}", markup=False)
    console.print(f"migrations   {len(applied)} applied, {len(pending)} pending")
    for name in pending:
        console.print(f"  [yellow]pending[/yellow] {escape(name)}")
    table = Table("table", "rows")
    for name, rows in counts.items():
        table.add_row(escape(name), "[dim]missing[/dim]" if rows is None else str(rows))
    console.print(table)


@command("stats")
def stats_command() -> None:
    """Rows per table (live and soft-deleted) and the size of the database."""
    settings = load_settings()

    async def gather() -> tuple[list[tuple[str, int, int | None]], int | None, tuple[Any, dict, dict]]:
        context = await open_context(settings)
        present = await introspect.existing_tables()
        rows = []
        for model in sorted(context.models, key=lambda m: m._meta.db_table):
            table = model._meta.db_table
            if table not in present:
                continue
            total = await introspect.count_rows(table)
            deleted = (await introspect.count_rows(table, where='"deleted_at" IS NOT NULL')
                       if "deleted_at" in model._meta.fields_db_projection.values() else None)
            rows.append((table, total, deleted))
        cache = context.cache
        return rows, await _database_bytes(settings), (cache, await cache.health(), await cache.shared_stats())

    rows, size, (cache, cache_health, shared) = run(gather())
    table = Table("table", "rows", "live", "soft-deleted", title=escape(settings.target.describe()))
    for name, total, deleted in rows:
        table.add_row(escape(name), str(total), str(total - (deleted or 0)), "-" if deleted is None else str(deleted))
    console.print(table)
    if size is not None:
        console.print(f"database size {size / 1024 / 1024:.2f} MiB")
    _print_cache(cache, cache_health, shared)


def _print_cache(cache: Any, health: dict[str, Any], shared: dict[str, Any]) -> None:
    """The cache's state and the counters every process using its namespace has published."""
    console.print(f"cache {cache.backend.name}, namespace {cache.namespace!r}: {health['status']}"
                  + (f" ({health['error']})" if health.get("error") else ""), markup=False)
    if cache.backend.name == "memory":
        console.print("  in-process cache: its counters live in each app process (ctx.stats())")
    elif shared:
        ratio = "-" if shared["hit_ratio"] is None else f"{shared['hit_ratio']:.1%}"
        console.print(f"  all processes: {shared['hits']} hits, {shared['misses']} misses (hit ratio {ratio}), "
                      f"{shared['errors']} errors, {shared['loads']} loader calls, "
                      f"avg latency {shared['avg_latency_ms']} ms")
    else:
        console.print("  no counters published yet (processes publish every 10 s and on close)")


async def _database_bytes(settings: Settings) -> int | None:
    if settings.target.is_postgres:
        _, rows = await introspect.connection().execute_query("SELECT pg_database_size(current_database()) AS n")
        return int(rows[0]["n"])
    import os

    path = settings.target.database
    return os.path.getsize(path) if path != ":memory:" and os.path.exists(path) else None


def _as_dict(report: Any) -> dict[str, Any]:
    if callable(getattr(report, "model_dump", None)):
        return report.model_dump(mode="json")
    if callable(getattr(report, "to_dict", None)):
        return report.to_dict()
    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        return dataclasses.asdict(report)
    return dict(report)


async def _basic_health(settings: Settings) -> dict[str, Any]:
    """Connectivity, latency and pending migrations, when the context offers no ``health()`` of its own."""
    try:
        context = await open_context(settings)
        started = time.perf_counter()
        await introspect.connection().execute_query("SELECT 1")
        latency_ms = (time.perf_counter() - started) * 1000
        pending = await migrations.pending_migrations(settings, context.project)
    except DataLayerError as exc:
        return {"status": "unhealthy", "target": settings.target.describe(), "error": str(exc)}
    if callable(getattr(context, "health", None)):
        return _as_dict(await context.health())
    status = "degraded" if pending else "healthy"
    return {"status": status, "target": settings.target.describe(), "latency_ms": round(latency_ms, 2),
            "pending_migrations": pending}


@command("health")
def health_command(as_json: bool = typer.Option(False, "--json", help="print the report as JSON")) -> None:
    """Exit 0 healthy, 1 degraded, 2 unhealthy (database down)."""
    settings = load_settings()
    report = run(_basic_health(settings))
    status = str(report.get("status", "unhealthy")).lower()
    if as_json:
        console.print_json(json.dumps(report, default=str))
    else:
        colour = {"healthy": "green", "degraded": "yellow"}.get(status, "red")
        console.print(f"[{colour}]{escape(status)}[/{colour}]  {escape(settings.target.describe())}")
        checks = report.get("checks") or {}
        if checks:
            table = Table("check", "status", "ms", "error")
            for name, check in checks.items():
                ms = check.get("response_time_ms")
                table.add_row(escape(str(name)), escape(str(check.get("status", ""))), "" if ms is None else f"{ms:.1f}",
                              escape(str(check.get("error") or "")))
            console.print(table)
        for key, value in report.items():
            if key not in ("status", "checks", "target"):
                console.print(f"  {key}: {value}", highlight=False, markup=False)
    raise typer.Exit(EXIT_BY_STATUS.get(status, 2))


@command("verify")
def verify_command(rounds: int = typer.Option(5, min=1, help="round trips to time")) -> None:
    """Connect, write and read back inside a rolled-back transaction, and report latency."""
    settings = load_settings()

    async def check() -> tuple[float, list[float], bool]:
        from datalayer.transactions import transaction

        started = time.perf_counter()
        await open_context(settings)
        connect_ms = (time.perf_counter() - started) * 1000
        timings = []
        for _ in range(rounds):
            started = time.perf_counter()
            await introspect.connection().execute_query("SELECT 1")
            timings.append((time.perf_counter() - started) * 1000)
        tunnel.extend(line for line in [await tunnel_line()] if line)
        return connect_ms, timings, await _write_round_trip(transaction)

    tunnel: list[str] = []  # SSH_HOST set: the tunnel's line (a round trip through it)
    connect_ms, timings, wrote = run(check())
    console.print(f"connected    {settings.target.describe()} in {connect_ms:.1f} ms", markup=False)
    for line in tunnel:
        console.print(f"tunnel       {line}", markup=False)
    console.print(f"round trip   min {min(timings):.2f} / median {statistics.median(timings):.2f} / "
                  f"max {max(timings):.2f} ms over {rounds} queries")
    console.print(f"write/read   {'ok' if wrote else 'FAILED'} (rolled back, nothing kept)")
    if not wrote:
        raise typer.Exit(1)


class _Rollback(Exception):
    pass


async def _write_round_trip(transaction: Any) -> bool:
    marker = f"verify-{time.time_ns()}"
    seen = False
    try:
        async with transaction() as client:
            await client.execute_script('CREATE TEMPORARY TABLE "datalayer_verify" (marker VARCHAR(64))')
            await client.execute_query('INSERT INTO "datalayer_verify" (marker) VALUES (\'' + marker + "')")
            _, rows = await client.execute_query('SELECT marker FROM "datalayer_verify"')
            seen = [row["marker"] for row in rows] == [marker]
            raise _Rollback
    except _Rollback:
        pass
    return seen
