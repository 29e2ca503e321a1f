"""Cache settings (``CACHE_*`` environment variables) and ``build_cache``: Redis when ``REDIS_URL`` is set,
else the in-process LRU."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from datalayer.cache.backend import CacheBackend
from datalayer.cache.circuit import CircuitBreaker
from datalayer.cache.db_tier import PersistentCache
from datalayer.cache.manager import Cache
from datalayer.cache.memory import MemoryBackend
from datalayer.cache.near import NearCache
from datalayer.cache.read_through import ROW_PREFIX
from datalayer.cache.redis_backend import RedisBackend
from datalayer.cache.tracking import InvalidationListener
from datalayer.settings import Settings


class CacheSettings(BaseSettings):
    """Every cache knob; durations ending in ``_ms`` are milliseconds, TTLs are seconds."""

    model_config = SettingsConfigDict(env_prefix="CACHE_", env_file=".env", env_file_encoding="utf-8",
                                      extra="ignore")

    namespace: str | None = Field(default=None, description="key prefix; default datalayer:<environment>")
    default_ttl: float = Field(default=300.0, gt=0)
    row_ttl: float | None = Field(default=None, gt=0, description="read-through rows; default default_ttl")
    models: str = Field(
        default="User,Configuration,CharacterTemplate,EndpointConfig",
        description="comma-separated model (or manager) names whose get() by id is read-through cached",
    )
    timeout_ms: float = Field(default=50.0, gt=0, le=10_000, description="bound on every Redis call")
    max_connections: int = Field(default=64, ge=1)
    failure_threshold: int = Field(default=5, ge=1, description="consecutive failures that open the circuit")
    reset_after_ms: float = Field(default=5_000.0, gt=0, description="how long the circuit stays open")
    lock_ttl_ms: float = Field(default=3_000.0, gt=0, description="cross-process loader lock lifetime")
    invalidation_guard_ms: float = Field(default=500.0, gt=0, description="after a write, loads may not refill")
    memory_max_entries: int = Field(default=10_000, ge=1)
    near_max_entries: int = Field(
        default=10_000, ge=0, description="read-through rows kept in process with Redis; 0 turns it off"
    )
    near_ttl: float = Field(default=60.0, gt=0, description="longest a row stays in process (seconds)")
    near_heartbeat_ms: float = Field(default=500.0, gt=0, description="how often a quiet invalidation link is checked")
    epoch_check_ms: float = Field(
        default=1_000.0, gt=0,
        description="how often the namespace epoch is re-read from the database in the background (with Redis): "
                    "the longest a row written by a process cut off from Redis is served stale elsewhere",
    )

    @property
    def model_names(self) -> frozenset[str]:
        return frozenset(name.strip() for name in self.models.split(",") if name.strip())


def build_cache(settings: Settings, cache_settings: CacheSettings | None = None) -> Cache:
    """The cache ``ctx.cache`` uses: Redis when ``settings.redis_url`` is set, else memory."""
    options = cache_settings or CacheSettings()
    namespace = options.namespace or f"datalayer:{settings.environment}"
    tracking = None
    if settings.redis_url is not None:
        url = settings.redis_url.get_secret_value()
        backend: CacheBackend = RedisBackend(
            url,
            timeout_s=options.timeout_ms / 1000,
            max_connections=options.max_connections,
            breaker=CircuitBreaker(options.failure_threshold, options.reset_after_ms / 1000),
        )
        if options.near_max_entries:
            near = NearCache(options.near_max_entries, options.near_ttl)
            tracking = InvalidationListener(url, f"{namespace}:{ROW_PREFIX}", near,
                                            heartbeat_s=options.near_heartbeat_ms / 1000)
    else:
        backend = MemoryBackend(options.memory_max_entries)
    return Cache(
        backend,
        namespace=namespace,
        default_ttl=options.default_ttl,
        lock_ttl=options.lock_ttl_ms / 1000,
        invalidation_guard=options.invalidation_guard_ms / 1000,
        persistent=PersistentCache(),
        read_through_models=options.model_names,
        row_ttl=options.row_ttl,
        tracking=tracking,
        epoch_check=options.epoch_check_ms / 1000,
    )
