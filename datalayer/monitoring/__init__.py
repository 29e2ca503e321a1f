"""Query timings by statement shape, slow statements, and pool figures."""

from datalayer.monitoring.pool import PoolStats
from datalayer.monitoring.queries import QueryMonitor, QueryStats, ShapeStats, SlowQuery
from datalayer.monitoring.shapes import statement_shape

__all__ = ["PoolStats", "QueryMonitor", "QueryStats", "ShapeStats", "SlowQuery", "statement_shape"]
