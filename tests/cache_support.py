"""Helpers for the cache tests: the shared Redis (required, never skipped) and private redis-servers."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis

from datalayer.cache import Cache, CircuitBreaker, MemoryBackend, PersistentCache, RedisBackend
from datalayer.cache.near import NearCache
from datalayer.cache.read_through import ROW_PREFIX
from datalayer.cache.tracking import InvalidationListener

REDIS_URL = "redis://127.0.0.1:6379/0"


def require_redis() -> None:
    """Fail (not skip) when the shared Redis is down: the cache tests must prove the real thing."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is required at {REDIS_URL} for the cache tests: {exc}", pytrace=False)
    finally:
        client.close()


def namespace() -> str:
    """A fresh namespace per test, so parallel runs sharing the Redis never collide."""
    return f"test-{uuid.uuid4().hex[:12]}"


def redis_cache(
    ns: str | None = None, url: str = REDIS_URL, *, near: bool = False, heartbeat_s: float = 0.5, **options: object
) -> Cache:
    """A Redis cache; with ``near``, also the in-process near cache kept true by Redis' invalidations."""
    breaker = CircuitBreaker(int(options.pop("failure_threshold", 3)), float(options.pop("reset_after_s", 0.5)))
    timeout_s = float(options.pop("timeout_s", 0.05))
    ns = ns or namespace()
    tracking = None
    if near:
        tracking = InvalidationListener(url, f"{ns}:{ROW_PREFIX}", NearCache(), heartbeat_s=heartbeat_s)
    return Cache(RedisBackend(url, timeout_s=timeout_s, breaker=breaker), namespace=ns, tracking=tracking,
                 **options)


def epoch_cache(url: str, ns: str, timeout_s: float = 0.5, epoch_check: float = 60) -> Cache:
    """A Redis cache with the database tier, as one process holds it; it re-reads the epoch only when it must
    (every ``epoch_check`` seconds in the background, default: not within a test)."""
    return Cache(RedisBackend(url, timeout_s=timeout_s), namespace=ns, persistent=PersistentCache(),
                 epoch_check=epoch_check, invalidation_guard=GUARD)


@asynccontextmanager
async def writer_behind_the_epoch() -> AsyncIterator[tuple[Cache, Cache, Cache]]:
    """``(reader, writer, cut_off)`` on one fresh namespace: the writer read the epoch (0) before ``cut_off``,
    whose Redis is unreachable, advanced it to 1 by a failed invalidation; the reader has the new epoch.
    Every key of the namespace is dropped and the three caches closed afterwards."""
    ns = namespace()
    reader, writer = epoch_cache(REDIS_URL, ns), epoch_cache(REDIS_URL, ns)
    cut_off = epoch_cache(f"redis://127.0.0.1:{free_port()}/0", ns, timeout_s=0.05)
    try:
        assert await writer.get("probe") is None  # the writer knows epoch 0
        await cut_off.invalidate("elsewhere")  # Redis unreachable from there: the epoch advances
        assert writer.epoch.value == 0 and cut_off.epoch.value == 1
        await reader.epoch.refresh()
        yield reader, writer, cut_off
    finally:
        await reader.invalidate_prefix("")
        for cache in (reader, writer, cut_off):
            await cache.close()


def memory_cache(ns: str | None = None, **options: object) -> Cache:
    return Cache(MemoryBackend(), namespace=ns or namespace(), **options)


def raw_redis() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL, decode_responses=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A throwaway ``redis-server`` on a loopback port, to kill, pause and restart for real.

    With ``appendonly``, it persists to an AOF in ``folder``, so a restart on the same port restores its data.
    """

    def __init__(self, *, appendonly: bool = False, folder: str | None = None) -> None:
        self.port = free_port()
        self.appendonly = appendonly
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is required on PATH for the Redis-down tests", pytrace=False)
        self.binary = binary

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        persistence = ["--appendonly", "yes" if self.appendonly else "no"]
        if self.folder is not None:
            persistence += ["--dir", self.folder]
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence,
             "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"private redis-server on port {self.port} did not start") from None
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


#: seconds after a write during which loads cannot refill a read-through row (the ``cached_ctx`` fixture's cache)
GUARD = 0.05
