"""A throwaway PostgreSQL database and the datalayer context on it, with a raw asyncpg pool beside."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic import SecretStr

from datalayer import DataContext, Settings, close_context, get_context
from datalayer.cache import Cache, CacheSettings, build_cache

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
POOL_SIZE = 10


def server_urls() -> tuple[str, str]:
    """PostgreSQL and Redis from the settings (DATABASE_URL, REDIS_URL), else the local defaults."""
    settings = Settings()
    target = settings.database_url.get_secret_value() if settings.database_url else DEFAULT_PG
    if not target.startswith(("postgres://", "postgresql://")):
        raise SystemExit(f"the benchmarks compare against asyncpg: DATABASE_URL must be PostgreSQL, not {target.split(':')[0]}")
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else DEFAULT_REDIS
    return target, redis_url


def database_url(server_url: str, name: str) -> str:
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@asynccontextmanager
async def scratch_database(server_url: str) -> AsyncIterator[str]:
    """A new empty database on the server of ``server_url``, dropped afterwards; yields its URL."""
    name = f"datalayer_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(database_url(server_url, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield database_url(server_url, name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _keep_session(connection: asyncpg.Connection) -> None:
    """asyncpg's pool runs ``Connection.reset()`` on release unless given this; datalayer skips it too."""


@dataclass
class Stage:
    """Everything one benchmark run works with."""

    ctx: DataContext
    pool: asyncpg.Pool
    url: str
    round_trip_cache: Cache  # same Redis and namespace as ctx.cache, without the near cache

    async def sql(self, statement: str, *args: Any) -> str:
        return await self.pool.execute(statement, *args)


@asynccontextmanager
async def stage(url: str, redis_url: str, *, bcrypt_rounds: int = 12) -> AsyncIterator[Stage]:
    settings = Settings(DATABASE_URL=url, DB_MAX_CONNECTIONS=POOL_SIZE, BCRYPT_ROUNDS=bcrypt_rounds,
                        DATALAYER_ENV="test", _env_file=None)
    ctx = await get_context(settings=settings, models=["benchmarks.models"], generate_schemas=True)
    # built as an app's ctx.cache is (near cache included), in a namespace of its own
    with_redis = settings.model_copy(update={"redis_url": SecretStr(redis_url)})
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    cache_options = {"namespace": namespace, "default_ttl": 600, "timeout_ms": 500, "_env_file": None}
    ctx.use_cache(build_cache(with_redis, CacheSettings(**cache_options)))
    round_trip_cache = build_cache(with_redis, CacheSettings(**cache_options, near_max_entries=0))
    # like datalayer's own pool (DB_RESET_ON_RELEASE off), no RESET ALL round trip on every release
    pool = await asyncpg.create_pool(url, min_size=POOL_SIZE, max_size=POOL_SIZE, reset=_keep_session)
    try:
        yield Stage(ctx, pool, url, round_trip_cache)
    finally:
        await pool.close()
        await round_trip_cache.close()
        await ctx.cache.invalidate_prefix("")
        await close_context()
