"""Per-shape statement timings, a bounded list of slow statements, and statement logging.

Every statement the instrumented engines run lands in ``QueryMonitor.record``: the hot path is a cached
shape lookup and a few additions, so monitoring stays cheap enough to leave on in production.
"""

from __future__ import annotations

import logging
import math
import random
from collections import deque
from datetime import datetime, timezone

from pydantic import BaseModel, Field

from datalayer.monitoring.shapes import statement_shape

log = logging.getLogger("datalayer.queries")

OTHER_SHAPES = "<other statements>"


class ShapeStats(BaseModel):
    """Timings of one statement shape, in milliseconds."""

    shape: str
    count: int
    errors: int
    total_ms: float
    mean_ms: float
    p95_ms: float
    max_ms: float


class SlowQuery(BaseModel):
    """One statement slower than ``DB_SLOW_QUERY_MS``: its shape and duration, never its parameters."""

    shape: str
    duration_ms: float
    at: datetime
    failed: bool = False


class QueryStats(BaseModel):
    """What ``ctx.stats().queries`` holds."""

    statements: int = 0
    errors: int = 0
    total_ms: float = 0.0
    slow_query_ms: float
    shapes: list[ShapeStats] = Field(default_factory=list)
    slow_queries: list[SlowQuery] = Field(default_factory=list)


class _Accumulator:
    """Running count/total/max and a bounded uniform reservoir of samples for the p95."""

    __slots__ = ("count", "errors", "max", "samples", "total")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.total = 0.0
        self.max = 0.0
        self.samples: list[float] = []

    def add(self, seconds: float, failed: bool, reservoir: int) -> None:
        self.count += 1
        self.total += seconds
        if failed:
            self.errors += 1
        self.max = max(self.max, seconds)
        if len(self.samples) < reservoir:
            self.samples.append(seconds)
        else:
            slot = random.randrange(self.count)
            if slot < reservoir:
                self.samples[slot] = seconds

    def summary(self, shape: str) -> ShapeStats:
        ordered = sorted(self.samples)
        p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] if ordered else 0.0
        return ShapeStats(
            shape=shape, count=self.count, errors=self.errors, total_ms=self.total * 1000,
            mean_ms=self.total / self.count * 1000 if self.count else 0.0, p95_ms=p95 * 1000,
            max_ms=self.max * 1000,
        )


class QueryMonitor:
    """Aggregates statement timings by shape; logs and keeps slow statements.

    Args:
        slow_query_ms: statements at least this slow are logged (WARNING) and kept.
        log_statements: log every statement's shape at DEBUG (``DB_LOGGING=true``).
        slow_capacity: how many slow statements are kept (oldest dropped first).
        reservoir: samples kept per shape for the p95.
        max_shapes: distinct shapes tracked; later ones are counted under ``<other statements>``.
    """

    def __init__(
        self,
        slow_query_ms: float = 200.0,
        log_statements: bool = False,
        *,
        slow_capacity: int = 100,
        reservoir: int = 256,
        max_shapes: int = 1000,
    ) -> None:
        self.slow_query_ms = slow_query_ms
        self.log_statements = log_statements
        self.reservoir = reservoir
        self.max_shapes = max_shapes
        self._slow_seconds = slow_query_ms / 1000
        self._shapes: dict[str, _Accumulator] = {}
        self._slow: deque[SlowQuery] = deque(maxlen=slow_capacity)

    def record(self, sql: str, seconds: float, failed: bool = False) -> None:
        """Count one statement that took ``seconds``; called by the engines after every statement."""
        shape = statement_shape(sql)
        accumulator = self._shapes.get(shape)
        if accumulator is None:
            if len(self._shapes) >= self.max_shapes:
                shape = OTHER_SHAPES
                accumulator = self._shapes.get(shape)
            if accumulator is None:
                accumulator = self._shapes[shape] = _Accumulator()
        accumulator.add(seconds, failed, self.reservoir)
        if self.log_statements:
            log.debug("statement %.2f ms: %s", seconds * 1000, shape,
                      extra={"shape": shape, "duration_ms": seconds * 1000, "failed": failed})
        if seconds >= self._slow_seconds:
            self._record_slow(shape, seconds, failed)

    def _record_slow(self, shape: str, seconds: float, failed: bool) -> None:
        duration_ms = round(seconds * 1000, 3)
        self._slow.append(SlowQuery(shape=shape, duration_ms=duration_ms, at=datetime.now(timezone.utc),
                                    failed=failed))
        log.warning("slow statement %.1f ms (threshold %.0f ms): %s", duration_ms, self.slow_query_ms, shape,
                    extra={"shape": shape, "duration_ms": duration_ms, "threshold_ms": self.slow_query_ms,
                           "failed": failed})

    def slow_queries(self) -> list[SlowQuery]:
        """The kept slow statements, oldest first."""
        return list(self._slow)

    def snapshot(self) -> QueryStats:
        """Every shape's figures, the busiest (by total time) first, plus the slow list."""
        shapes = sorted((acc.summary(shape) for shape, acc in self._shapes.items()),
                        key=lambda s: s.total_ms, reverse=True)
        return QueryStats(
            statements=sum(s.count for s in shapes), errors=sum(s.errors for s in shapes),
            total_ms=sum(s.total_ms for s in shapes), slow_query_ms=self.slow_query_ms,
            shapes=shapes, slow_queries=self.slow_queries(),
        )

    def reset(self) -> None:
        """Forget every timing and slow statement."""
        self._shapes.clear()
        self._slow.clear()
