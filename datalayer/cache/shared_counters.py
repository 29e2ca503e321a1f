"""Counters every process shares through Redis (``Cache.publish_stats``/``shared_stats``), mixed into ``Cache``:
each process adds its increments to one hash per namespace, at most every ``stats_interval`` seconds."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from datalayer.cache.backend import BackendUnavailable

if TYPE_CHECKING:
    from datalayer.cache.backend import CacheBackend
    from datalayer.cache.epoch import NamespaceEpoch
    from datalayer.cache.keys import Namespace
    from datalayer.cache.metrics import CacheMetrics


class SharedCounters:
    """``publish_stats`` and ``shared_stats`` over the backend's counter hash."""

    if TYPE_CHECKING:  # provided by Cache
        backend: CacheBackend
        ns: Namespace
        metrics: CacheMetrics
        epoch: NamespaceEpoch
        last_error: str | None
        _stats_published_at: float
        _publishing: asyncio.Task[None] | None

    async def publish_stats(self) -> None:
        """Add this process's counter increments to the namespace's shared totals (best effort, bounded)."""
        self._stats_published_at = time.monotonic()
        increments = self.metrics.unpublished()
        if increments:
            try:
                await self.backend.add_counters(self.ns.counters(), increments)
            except BackendUnavailable as exc:
                self.last_error = str(exc)
                self.epoch.doubt()

    async def _publish_in_background(self) -> None:
        try:
            await self.publish_stats()
        finally:
            self._publishing = None

    async def shared_stats(self) -> dict[str, Any]:
        """Totals every process using this namespace has published ({} when Redis is unreachable)."""
        try:
            totals = await self.backend.read_counters(self.ns.counters())
        except BackendUnavailable as exc:
            self.last_error = str(exc)
            self.epoch.doubt()
            return {}
        if not totals:
            return {}
        lookups = totals.get("hits", 0) + totals.get("misses", 0)
        calls = totals.get("calls", 0)
        return {
            **{name: int(totals.get(name, 0)) for name in ("hits", "misses", "errors", "sets", "deletes", "loads")},
            "hit_ratio": round(totals.get("hits", 0) / lookups, 4) if lookups else None,
            "avg_latency_ms": round(totals.get("total_ms", 0) / calls, 3) if calls else 0.0,
        }
