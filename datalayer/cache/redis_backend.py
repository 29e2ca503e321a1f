"""Redis through ``redis.asyncio``: one pooled client, a hard per-call timeout and a circuit breaker.

A call that fails, times out or meets an open circuit raises ``BackendUnavailable`` within ``timeout_s``;
connection errors never surface as redis exceptions. The pool reconnects by itself once Redis is back; each new
connection asks the server for its ``run_id`` and counts a run it had not seen (``runs``), so the cache knows
when its answers may come from a restarted or failed-over Redis (see ``epoch``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from datalayer.cache.backend import BackendUnavailable, CacheBackend
from datalayer.cache.circuit import CircuitBreaker
from datalayer.cache.sentinel import is_sentinel_url, parse_sentinel_url

log = logging.getLogger("datalayer.cache.redis")
T = TypeVar("T")

_RELEASE_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
# SET of each KEYS[i] to ARGV[i + 1], for ARGV[1] ms (none when empty): many keys in one command and one reply,
# where a pipeline costs redis-py a command to pack and a reply to parse per key.
_SET_MANY = """
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  if ttl then redis.call('SET', key, ARGV[i + 1], 'PX', ttl) else redis.call('SET', key, ARGV[i + 1]) end
end
return #KEYS
"""
_BATCH = 500


# asyncio.timeout (3.11+) bounds a call without the extra task wait_for creates on every call
_deadline = getattr(asyncio, "timeout", None)


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def _run_id(info: object) -> str | None:
    """The ``run_id`` line of an ``INFO server`` answer (None if absent)."""
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith("run_id:"):
            return line[len("run_id:"):].strip() or None
    return None


class RedisBackend(CacheBackend):
    """A Redis server (``redis://``, ``rediss://`` or ``unix://``), or the master a Sentinel names
    (``redis+sentinel://``, see ``sentinel``), as cache storage."""

    name = "redis"
    shared = True

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 0.05,
        max_connections: int = 64,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.breaker = breaker or CircuitBreaker()
        self.run_id: str | None = None
        self.runs = 0
        self.answered_run: str | None = None
        """The run of the last call that succeeded; ``None`` after a failure (the run may be gone)."""
        connection: dict[str, Any] = {
            "max_connections": max_connections, "socket_timeout": timeout_s, "socket_connect_timeout": timeout_s,
            "retry": Retry(NoBackoff(), 0), "decode_responses": True, "redis_connect_func": self._connected,
        }
        self.sentinel = parse_sentinel_url(url) if is_sentinel_url(url) else None
        self._pool: ConnectionPool = (self.sentinel.pool(**connection) if self.sentinel is not None
                                      else BlockingConnectionPool.from_url(url, timeout=timeout_s, **connection))
        # Any: redis-py's types do not follow decode_responses=True (every value read here is a str)
        self._client: Any = Redis(connection_pool=self._pool)
        self._release = self._client.register_script(_RELEASE_LOCK)
        self._set_many = self._client.register_script(_SET_MANY)
        self._was_open = False

    async def _connected(self, connection: AbstractConnection) -> None:
        """Set up a new connection as redis-py does, then note which run of the server it reached."""
        await connection.on_connect()
        try:
            await connection.send_command("INFO", "server", check_health=False)
            run_id = _run_id(await connection.read_response())
        except ResponseError:  # INFO refused (renamed on some managed servers): every connection may be a new run
            run_id = None
        if run_id is None or run_id != self.run_id:
            if self.run_id is not None:
                log.warning("Redis restarted or failed over (new run id): cached answers are checked again")
            self.run_id = run_id
            self.runs += 1

    async def _run(self, call: Callable[[], Awaitable[T]]) -> T:
        if not self.breaker.allow():
            raise BackendUnavailable(f"circuit open after repeated failures ({self.breaker.last_error})")
        try:
            if _deadline is not None:
                async with _deadline(self.timeout_s):
                    result = await call()
            else:  # Python 3.10
                result = await asyncio.wait_for(call(), self.timeout_s)
        except asyncio.CancelledError:
            self.breaker.abandoned()
            raise
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            error = str(exc) or f"no answer within {self.timeout_s * 1000:.0f} ms"
            self.answered_run = None
            self.breaker.failed(error)
            if self.breaker.state != "closed" and not self._was_open:
                self._was_open = True
                log.warning("Redis unavailable, cache degraded (circuit open): %s", error)
            raise BackendUnavailable(error) from None
        self.breaker.succeeded()
        self.answered_run = self.run_id
        if self._was_open:
            self._was_open = False
            log.warning("Redis answers again, circuit closed")
        return result

    async def get(self, key: str) -> str | None:
        return await self._run(lambda: self._client.get(key))

    async def set(self, key: str, value: str, ttl_ms: int | None, *, only_if_absent: bool = False) -> bool:
        stored = await self._run(lambda: self._client.set(key, value, px=ttl_ms, nx=only_if_absent))
        return bool(stored)

    async def set_many(self, items: Sequence[tuple[str, str]], ttl_ms: int | None) -> None:
        if len(items) == 1:
            (key, value), = items
            await self.set(key, value, ttl_ms)
            return
        ttl = "" if ttl_ms is None else str(ttl_ms)
        for start in range(0, len(items), _BATCH):
            chunk = items[start:start + _BATCH]
            await self._run(lambda chunk=chunk: self._set_many(  # type: ignore[misc]  # a lambda with defaults
                keys=[key for key, _ in chunk], args=[ttl, *(value for _, value in chunk)]))

    async def delete(self, keys: Sequence[str]) -> int:
        removed = 0
        for start in range(0, len(keys), _BATCH):
            chunk = list(keys[start:start + _BATCH])
            removed += await self._run(lambda chunk=chunk: self._client.unlink(*chunk))  # type: ignore[misc]  # a lambda with defaults
        return removed

    async def delete_prefix(self, prefix: str) -> int:
        pattern, cursor, removed = _glob_escape(prefix) + "*", 0, 0
        while True:
            cursor, found = await self._run(
                lambda cursor=cursor: self._client.scan(cursor=cursor, match=pattern, count=_BATCH)  # type: ignore[misc]  # a lambda with defaults
            )
            if found:
                removed += await self._run(lambda found=found: self._client.unlink(*found))  # type: ignore[misc]  # a lambda with defaults
            if cursor == 0:
                return removed

    async def release_lock(self, key: str, token: str) -> bool:
        return bool(await self._run(lambda: self._release(keys=[key], args=[token])))

    async def add_counters(self, key: str, increments: Mapping[str, float]) -> None:
        async def add() -> None:
            async with self._client.pipeline(transaction=False) as pipe:
                for field, amount in increments.items():
                    pipe.hincrbyfloat(key, field, amount)
                await pipe.execute()

        await self._run(add)

    async def read_counters(self, key: str) -> dict[str, float]:
        raw = await self._run(lambda: self._client.hgetall(key))
        return {field: float(value) for field, value in raw.items()}

    async def ping(self) -> None:
        await self._run(self._client.ping)

    def describe_state(self) -> dict[str, object]:
        state: dict[str, object] = {"circuit": self.breaker.snapshot(), "timeout_ms": round(self.timeout_s * 1000, 1)}
        if self.sentinel is not None:
            master = getattr(self._pool, "master_address", None)
            state["sentinel"] = {"service": self.sentinel.service, "master": f"{master[0]}:{master[1]}" if master else None}
        return state

    async def close(self) -> None:
        try:
            await self._client.aclose()
            await self._pool.disconnect()
        except Exception:  # closing a dead connection must not fail shutdown
            log.debug("closing the Redis pool failed", exc_info=True)
