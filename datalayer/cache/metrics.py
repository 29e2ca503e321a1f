"""Hit, miss, error and latency counters of one ``Cache``, read by ``Cache.stats()``."""

from __future__ import annotations

from collections import deque


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

    def observe(self, elapsed_ms: float) -> None:
        self.calls += 1
        self.total_ms += elapsed_ms
        self.max_ms = max(self.max_ms, elapsed_ms)
        self._recent.append(elapsed_ms)

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
