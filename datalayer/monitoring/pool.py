"""Connection pool figures, shared by the PostgreSQL pool and SQLite's single locked connection."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class PoolStats(BaseModel):
    """How busy the connections are.

    On SQLite the "pool" is one connection guarded by a lock: ``size`` is 1 once opened, ``in_use`` is 1
    while a statement or transaction holds the lock, and ``waiting`` counts tasks queued for it.
    """

    engine: Literal["postgres", "sqlite", "unknown"]
    size: int = 0
    min: int = 0
    max: int = 0
    idle: int = 0
    in_use: int = 0
    waiting: int = 0
    acquire_timeout_ms: float = 0.0
    timeouts: int = 0
    """Acquires that gave up since the pool was created (each raised ``PoolExhaustedError``)."""

    @property
    def saturation(self) -> float:
        """Share of the maximum in use, 0.0 to 1.0."""
        return self.in_use / self.max if self.max else 0.0

    @property
    def saturated(self) -> bool:
        """Every connection is busy and the pool cannot grow, or tasks are queued for one."""
        return self.waiting > 0 or (self.max > 0 and self.in_use >= self.max)
