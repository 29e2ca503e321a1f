"""Health of the data layer: ``await ctx.health()``, ``await ctx.quick_health()`` and background monitoring."""

from datalayer.health.checks import check_health, quick_health
from datalayer.health.monitor import HealthCallback, HealthMonitor
from datalayer.health.report import CheckResult, CheckStatus, HealthReport, Status

__all__ = [
    "CheckResult",
    "CheckStatus",
    "HealthCallback",
    "HealthMonitor",
    "HealthReport",
    "Status",
    "check_health",
    "quick_health",
]
