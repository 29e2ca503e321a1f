"""The observability half of ``DataContext``: health, background monitoring, pool and query statistics."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel

from datalayer.backends import pool_stats, query_monitor
from datalayer.health.checks import check_health, quick_health
from datalayer.health.database_stats import database_stats
from datalayer.health.monitor import HealthCallback, HealthMonitor
from datalayer.health.report import HealthReport
from datalayer.monitoring import PoolStats, QueryStats

if TYPE_CHECKING:
    from datalayer.context import DataContext


class DataLayerStats(BaseModel):
    """What ``ctx.stats()`` returns: statement timings by shape, slow statements, the pool and the cache."""

    queries: QueryStats
    pool: PoolStats
    cache: dict[str, Any] | None = None


class ObservabilityMixin:
    """Mixed into ``DataContext``; see the README's "Health and monitoring" section."""

    _health_monitor: HealthMonitor | None = None

    async def health(self) -> HealthReport:
        """Check connectivity, latency, tables, migrations, cache and pool. Never raises."""
        return await check_health(cast("DataContext", self))

    async def quick_health(self) -> bool:
        """``True`` when the database answers ``SELECT 1`` (for liveness probes)."""
        return await quick_health(cast("DataContext", self))

    @property
    def health_monitor(self) -> HealthMonitor:
        if self._health_monitor is None:
            self._health_monitor = HealthMonitor(self.health, upkeep=self._upkeep)
        return self._health_monitor

    async def _upkeep(self) -> None:
        """The monitor's hourly upkeep: the log partitions due (``datalayer.maintenance.maintain``)."""
        from datalayer.maintenance import maintain  # lazy: maintenance sits above the context

        await maintain(cast("DataContext", self).settings)

    @property
    def last_health(self) -> HealthReport | None:
        """The background monitor's latest report (``None`` before its first check)."""
        return self._health_monitor.last_report if self._health_monitor else None

    def start_monitoring(self, interval: float = 30.0) -> HealthMonitor:
        """Run the health check every ``interval`` seconds in the background until stopped or closed."""
        monitor = self.health_monitor
        monitor.start(interval)
        return monitor

    def stop_monitoring(self) -> None:
        """Stop background monitoring (``close_context()`` does it too)."""
        if self._health_monitor is not None:
            self._health_monitor.stop()

    def on_health_change(self, callback: HealthCallback) -> Callable[[], None]:
        """``callback(report, previous_status)`` on every status change; returns an unsubscribe function."""
        return self.health_monitor.on_change(callback)

    async def _close_monitoring(self) -> None:
        if self._health_monitor is not None:
            await self._health_monitor.aclose()

    def pool_stats(self) -> PoolStats:
        """Size, min, max, idle, in use and waiting tasks of the connection pool (SQLite: its one connection)."""
        return pool_stats()

    def stats(self) -> DataLayerStats:
        """Statement timings by shape, the slow list, pool figures and the cache's counters."""
        monitor = query_monitor()
        queries = monitor.snapshot() if monitor is not None else QueryStats(slow_query_ms=0.0)
        cache: Any = getattr(self, "cache", None)
        return DataLayerStats(queries=queries, pool=pool_stats(),
                              cache=cache.stats() if hasattr(cache, "stats") else None)

    def reset_stats(self) -> None:
        """Forget statement timings and slow statements (pool figures are live, not accumulated)."""
        monitor = query_monitor()
        if monitor is not None:
            monitor.reset()

    async def get_database_stats(self) -> dict[str, Any]:
        """Rows per table, recent activity, tasks by status and the database size in bytes."""
        return await database_stats(cast("DataContext", self))
