"""The checks behind ``await ctx.health()``; each returns a ``CheckResult`` and none ever raises.

Connectivity failing makes the report ``unhealthy`` and skips the checks that need the database. Slow
pings, pending migrations, a saturated pool or a cache in trouble make it ``degraded``; a missing table
makes it ``unhealthy``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tortoise import Tortoise

from datalayer.backends import pool_stats, root_client
from datalayer.backends.instrumented import within
from datalayer.backends.replicas import primary_only
from datalayer.config import CONNECTION_NAME
from datalayer.connection import scrub
from datalayer.errors import PoolExhaustedError
from datalayer.health.report import CheckResult, CheckStatus, HealthReport, overall_status

if TYPE_CHECKING:
    from datalayer.context import DataContext

log = logging.getLogger("datalayer.health")

_PG_TABLES = "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = ANY(current_schemas(false))"
_SQLITE_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table'"


def _error_text(ctx: DataContext, exc: BaseException) -> str:
    text = str(exc) or ("no answer in time" if isinstance(exc, TimeoutError | asyncio.TimeoutError) else "")
    return scrub(f"{type(exc).__name__}: {text}", ctx.settings)


async def _timed(call: Callable[[], Awaitable[Any]], seconds: float) -> tuple[Any, float]:
    started = time.perf_counter()
    result = await within(call(), seconds)
    return result, (time.perf_counter() - started) * 1000


async def ping(ctx: DataContext) -> float:
    """Round-trip ``SELECT 1`` in milliseconds; raises on failure."""
    connection = Tortoise.get_connection(CONNECTION_NAME)
    with primary_only():  # the primary's health, whatever replicas serve reads
        _, elapsed = await _timed(lambda: connection.execute_query("SELECT 1"), _timeout(ctx))
    return elapsed


def _timeout(ctx: DataContext) -> float:
    return ctx.settings.db_connection_timeout_ms / 1000


async def check_connectivity(ctx: DataContext, pool_saturated: bool) -> CheckResult:
    started = time.perf_counter()
    try:
        elapsed = await ping(ctx)
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        took = (time.perf_counter() - started) * 1000
        busy = pool_saturated and isinstance(exc, PoolExhaustedError | TimeoutError | asyncio.TimeoutError)
        return CheckResult(status="degraded" if busy else "unhealthy", response_time_ms=round(took, 3),
                           error=_error_text(ctx, exc))
    return CheckResult(status="healthy", response_time_ms=round(elapsed, 3))


async def check_latency(ctx: DataContext) -> CheckResult:
    threshold = ctx.settings.db_health_latency_ms
    try:
        elapsed = await ping(ctx)
    except Exception as exc:  # noqa: BLE001
        return CheckResult(status="degraded", error=_error_text(ctx, exc), details={"threshold_ms": threshold})
    slow = elapsed > threshold
    return CheckResult(
        status="degraded" if slow else "healthy", response_time_ms=round(elapsed, 3),
        error=f"ping took {elapsed:.1f} ms, over the {threshold:g} ms threshold" if slow else None,
        details={"threshold_ms": threshold},
    )


async def existing_tables(ctx: DataContext) -> set[str]:
    connection = Tortoise.get_connection(CONNECTION_NAME)
    sql = _PG_TABLES if ctx.target.is_postgres else _SQLITE_TABLES
    with primary_only():
        rows = await within(connection.execute_query_dict(sql), _timeout(ctx))
    return {row["name"] for row in rows}


async def check_tables(ctx: DataContext) -> tuple[CheckResult, set[str]]:
    started = time.perf_counter()
    try:
        tables = await existing_tables(ctx)
    except Exception as exc:  # noqa: BLE001
        return CheckResult(status="unhealthy", error=_error_text(ctx, exc)), set()
    took = round((time.perf_counter() - started) * 1000, 3)
    expected = sorted({model._meta.db_table for model in ctx.models})
    missing = [name for name in expected if name not in tables]
    if missing:
        return CheckResult(status="unhealthy", response_time_ms=took, details={"missing": missing},
                           error=f"{len(missing)} table(s) missing: {', '.join(missing)}; run the migrations"), tables
    return CheckResult(status="healthy", response_time_ms=took, details={"tables": len(expected)}), tables


async def check_migrations(ctx: DataContext, tables: set[str]) -> CheckResult:
    """Pending migrations (``datalayer.migrations``), when this database tracks them in aerich's table."""
    try:
        from datalayer.migrations import pending_migrations
    except ImportError:
        return CheckResult(status="skipped", details={"reason": "migration tracking is not installed"})
    if "aerich" not in tables:
        return CheckResult(status="skipped",
                           details={"reason": "this database records no migrations (schema generated directly)"})
    started = time.perf_counter()
    try:
        pending = await within(pending_migrations(ctx.settings), _timeout(ctx) * 2)
    except Exception as exc:  # noqa: BLE001
        return CheckResult(status="degraded", error=f"could not read migrations: {_error_text(ctx, exc)}")
    took = round((time.perf_counter() - started) * 1000, 3)
    if pending:
        return CheckResult(status="degraded", response_time_ms=took, details={"pending": list(pending)},
                           error=f"{len(pending)} migration(s) pending: {', '.join(pending)}")
    return CheckResult(status="healthy", response_time_ms=took, details={"pending": []})


async def check_cache(ctx: DataContext) -> CheckResult:
    """The cache's own health; trouble there degrades the app, never makes it unhealthy."""
    cache = getattr(ctx, "cache", None)
    if cache is None or not hasattr(cache, "health"):
        return CheckResult(status="skipped", details={"reason": "no cache configured"})
    started = time.perf_counter()
    try:
        answer = cache.health()
        if inspect.isawaitable(answer):
            answer = await within(answer, _timeout(ctx))
    except Exception as exc:  # noqa: BLE001
        return CheckResult(status="degraded", error=_error_text(ctx, exc))
    took = round((time.perf_counter() - started) * 1000, 3)
    details = dict(answer) if isinstance(answer, dict) else {"healthy": bool(answer)}
    ok = details.get("status", "healthy" if details.get("healthy", True) else "degraded") == "healthy"
    error: Any = details.pop("error", None)
    if error:
        error = scrub(str(error), ctx.settings)
    elif not ok:
        error = "cache unavailable"
    return CheckResult(status="healthy" if ok else "degraded", response_time_ms=took, details=details, error=error)


def check_pool(ctx: DataContext) -> CheckResult:
    try:
        stats = pool_stats()
    except Exception as exc:  # noqa: BLE001
        return CheckResult(status="skipped", error=_error_text(ctx, exc))
    details = {**stats.model_dump(), "saturation": round(stats.saturation, 3)}
    if stats.saturated:
        return CheckResult(status="degraded", details=details,
                           error=f"pool saturated: {stats.in_use}/{stats.max} in use, {stats.waiting} waiting")
    return CheckResult(status="healthy", details=details)


async def check_replicas(ctx: DataContext) -> CheckResult | None:
    """Each read replica's ``state`` and ``lag_ms`` (milliseconds, measured now); ``None`` when none is
    configured. A replica skipped (down, lagging, promoted) degrades the report: its reads go to the primary."""
    try:
        replicas = getattr(root_client(CONNECTION_NAME), "replicas", None)
    except Exception:  # noqa: BLE001 - nothing initialised
        return None
    if replicas is None:
        return None
    started, error = time.perf_counter(), None
    try:
        await within(replicas.check(), _timeout(ctx))
    except Exception as exc:  # noqa: BLE001
        error = _error_text(ctx, exc)
    took = round((time.perf_counter() - started) * 1000, 3)
    statuses = replicas.status()
    skipped = [f"{s['name']} is {s['state']}" + (f" ({s['error']})" if s["error"] else "")
               for s in statuses if s["state"] != "healthy"]
    error = scrub("; ".join(skipped), ctx.settings) if skipped else error
    return CheckResult(status="degraded" if error else "healthy", response_time_ms=took, error=error,
                       details={"replicas": statuses, "max_lag_ms": replicas.max_lag_ms,
                                "primary_reads": replicas.primary_reads})


async def check_tunnel(ctx: DataContext) -> CheckResult | None:
    """The SSH tunnel (``SSH_HOST``): its state, server, a fresh round trip in ms and its reconnect count;
    ``None`` without one. Reconnecting degrades the report; closed or given up makes it unhealthy."""
    if not getattr(ctx.settings, "ssh_host", None):
        return None
    from datalayer.tunnel import shared_tunnel  # lazy: the tunnel package is only for apps that tunnel

    tunnel = shared_tunnel()
    if tunnel is None:
        return CheckResult(status="unhealthy", error="SSH_HOST is set but no SSH tunnel is open")
    error = None
    if tunnel.state == "connected":
        try:
            await tunnel.round_trip()
        except Exception as exc:  # noqa: BLE001 - any failure is the answer
            error = _error_text(ctx, exc)
    stats = tunnel.stats()
    if error is None and stats.state != "connected":
        error = f"SSH tunnel {stats.state}" + (f": {stats.last_error}" if stats.last_error else "")
    status: CheckStatus = "healthy" if error is None else (
        "degraded" if stats.state in ("connected", "reconnecting") else "unhealthy")
    return CheckResult(status=status, response_time_ms=stats.last_round_trip_ms if error is None else None,
                       error=error, details={"state": stats.state, "server": stats.server, "remote": stats.remote,
                                            "last_round_trip_ms": stats.last_round_trip_ms,
                                            "reconnects": stats.reconnects, "local_port": stats.local_port})


def _skipped(reason: str) -> CheckResult:
    return CheckResult(status="skipped", details={"reason": reason})


async def check_health(ctx: DataContext) -> HealthReport:
    """Every check, in order; never raises (a failure is a check's ``error``)."""
    started = time.perf_counter()
    checks: dict[str, CheckResult] = {"pool": check_pool(ctx)}
    checks["connectivity"] = await check_connectivity(ctx, checks["pool"].status == "degraded")
    if checks["connectivity"].status == "healthy":
        checks["latency"] = await check_latency(ctx)
        checks["tables"], tables = await check_tables(ctx)
        checks["migrations"] = await check_migrations(ctx, tables)
    else:
        reason = "the database did not answer"
        checks.update(latency=_skipped(reason), tables=_skipped(reason), migrations=_skipped(reason))
    checks["cache"] = await check_cache(ctx)
    if (replicas := await check_replicas(ctx)) is not None:
        checks["replicas"] = replicas
    if (tunnel := await check_tunnel(ctx)) is not None:
        checks["tunnel"] = tunnel
    report = HealthReport(
        status=overall_status(checks), target=ctx.target.describe(), engine=ctx.target.engine,
        checks={name: checks[name] for name in ("connectivity", "latency", "tables", "migrations", "cache", "pool",
                                                "replicas", "tunnel") if name in checks},
        uptime_seconds=round(time.monotonic() - getattr(ctx, "opened_at", time.monotonic()), 3),
        checked_at=datetime.now(timezone.utc), response_time_ms=round((time.perf_counter() - started) * 1000, 3),
    )
    if report.status != "healthy":
        log.warning("health %s: %s", report.status, "; ".join(report.errors),
                    extra={"status": report.status, "errors": report.errors, "target": report.target})
    return report


async def quick_health(ctx: DataContext) -> bool:
    """``True`` when ``SELECT 1`` answers within the connection timeout (for liveness probes)."""
    try:
        await ping(ctx)
    except Exception:  # noqa: BLE001
        return False
    return True
