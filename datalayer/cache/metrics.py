"""Hit, miss, error and latency counters of one ``Cache``, read by ``Cache.stats()``."""

from __future__ import annotations

from collections import deque

#: counters every process adds to the namespace's shared totals (``datalayer stats`` reads them)
SHARED_COUNTERS = ("hits", "misses", "errors", "sets", "deletes", "loads", "calls", "total_ms")


class CacheMetrics:
    """Plain counters plus the latencies of the last 1,000 backend calls (for a p95 that follows load)."""

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.errors = 0
        self.sets = 0
        self.deletes = 0
        self.loads = 0
        self.persistent_hits = 0
        self.calls = 0
        self.total_ms = 0.0
        self.max_ms = 0.0
        self._recent: deque[float] = deque(maxlen=1000)
        self._published: dict[str, float] = {}

    def observe(self, elapsed_ms: float) -> None:
        self.calls += 1
        self.total_ms += elapsed_ms
        self.max_ms = max(self.max_ms, elapsed_ms)
        self._recent.append(elapsed_ms)

    def unpublished(self) -> dict[str, float]:
        """What the counters gained since the last call: the increments ``Cache.publish_stats`` shares."""
        current = {name: float(getattr(self, name)) for name in SHARED_COUNTERS}
        gained = {name: value - self._published.get(name, 0.0) for name, value in current.items()}
        self._published = current
        return {name: amount for name, amount in gained.items() if amount}

    def snapshot(self) -> dict[str, object]:
        lookups = self.hits + self.misses
        recent = sorted(self._recent)
        p95 = recent[min(len(recent) - 1, int(len(recent) * 0.95))] if recent else 0.0
        return {
            "hits": self.hits,
            "misses": self.misses,
            "hit_ratio": round(self.hits / lookups, 4) if lookups else None,
            "errors": self.errors,
            "sets": self.sets,
            "deletes": self.deletes,
            "loader_calls": self.loads,
            "persistent_hits": self.persistent_hits,
            "latency_ms": {
                "calls": self.calls,
                "avg": round(self.total_ms / self.calls, 3) if self.calls else 0.0,
                "p95": round(p95, 3),
                "max": round(self.max_ms, 3),
            },
        }
