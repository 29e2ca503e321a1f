"""The cache layer: ``ctx.cache`` (Redis or in-process), read-through for opted-in managers, a database tier.

    await ctx.cache.set("system_stats", stats, ttl=60)
    report = await ctx.cache.get_or_set(keys.api("/reports", params), build_report, ttl=30)
"""

from datalayer.cache import keys
from datalayer.cache.backend import BackendUnavailable, CacheBackend
from datalayer.cache.circuit import CircuitBreaker
from datalayer.cache.config import CacheSettings, build_cache
from datalayer.cache.db_tier import PersistentCache
from datalayer.cache.manager import Cache
from datalayer.cache.memory import MemoryBackend
from datalayer.cache.near import NearCache
from datalayer.cache.read_through import ReadThrough, apply_read_through, forget_cached_rows
from datalayer.cache.redis_backend import RedisBackend
from datalayer.cache.tracking import InvalidationListener

__all__ = [
    "BackendUnavailable",
    "Cache",
    "CacheBackend",
    "CacheSettings",
    "CircuitBreaker",
    "InvalidationListener",
    "MemoryBackend",
    "NearCache",
    "PersistentCache",
    "ReadThrough",
    "RedisBackend",
    "apply_read_through",
    "build_cache",
    "forget_cached_rows",
    "keys",
]
