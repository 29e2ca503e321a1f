"""What a health check returns: a pydantic ``HealthReport`` made of one ``CheckResult`` per concern."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["healthy", "degraded", "unhealthy"]
CheckStatus = Literal["healthy", "degraded", "unhealthy", "skipped"]
_SEVERITY = {"skipped": 0, "healthy": 0, "degraded": 1, "unhealthy": 2}


class CheckResult(BaseModel):
    """One concern (connectivity, latency, tables, migrations, cache, pool; replicas and the SSH tunnel when
    configured). ``skipped`` never counts."""

    status: CheckStatus
    response_time_ms: float | None = None
    error: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class HealthReport(BaseModel):
    """The state of the data layer at ``checked_at``. It names the target without its password."""

    status: Status
    target: str
    engine: str
    checks: dict[str, CheckResult]
    uptime_seconds: float
    checked_at: datetime
    response_time_ms: float

    @property
    def healthy(self) -> bool:
        return self.status == "healthy"

    @property
    def errors(self) -> list[str]:
        """``"check: error"`` for every check that reported one."""
        return [f"{name}: {check.error}" for name, check in self.checks.items() if check.error]


def overall_status(checks: dict[str, CheckResult]) -> Status:
    """The worst status of any check (``skipped`` counts as healthy)."""
    worst = max((_SEVERITY[check.status] for check in checks.values()), default=0)
    return ("healthy", "degraded", "unhealthy")[worst]
