"""``Cache``: the object on ``ctx.cache``. Generic get/set/delete/get_or_set/invalidate_prefix, seed 002's
named helpers, stampede protection, counters, and health.

Nothing here raises because the backend is down or slow: reads become misses (so callers load from the
database), writes become no-ops, and every call returns within the backend's timeout. Only a caller's own
mistakes (a bad key, a TTL <= 0, a value JSON cannot hold) raise ``ValidationError``.

A write the backend did not confirm (an invalidation, a delete, an overwrite) must not leave an older value
readable once it answers again, in this process or in any other. With Redis and the database tier the
namespace moves to a new epoch (``epoch``, whose docstring gives the rules); otherwise this process replays the
write before its next backend call, which holds only while this process lives.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from datalayer.cache import keys as cache_keys
from datalayer.cache.backend import BackendUnavailable, CacheBackend
from datalayer.cache.db_tier import PersistentCache
from datalayer.cache.epoch import DatabaseEpochStore, NamespaceEpoch
from datalayer.cache.grouped import GroupedCalls
from datalayer.cache.metrics import CacheMetrics
from datalayer.cache.missed import MissedWrites
from datalayer.cache.near import MISS, NearCache
from datalayer.cache.seed_helpers import SeedHelpers
from datalayer.cache.serialization import dumps, loads
from datalayer.cache.shared_counters import SharedCounters
from datalayer.cache.stampede import SingleFlight
from datalayer.cache.tracking import InvalidationListener
from datalayer.errors import ConfigurationError, DataLayerError, ValidationError
from datalayer.transactions import in_transaction_block

log = logging.getLogger("datalayer.cache")
T = TypeVar("T")

_TOMBSTONE = "\x00invalidated"  # never valid JSON, so never a stored value


class Cache(SeedHelpers, SharedCounters):
    """Namespaced JSON cache over a ``CacheBackend``, with an optional persistent database tier.

    Args:
        backend: ``RedisBackend`` or ``MemoryBackend``.
        namespace: prefix of every key, so apps and environments can share a Redis.
        default_ttl: seconds a value lives when a call does not say.
        lock_ttl: seconds the cross-process loader lock lives (and how long others wait for its holder).
        invalidation_guard: seconds after ``invalidate`` during which loads that started earlier cannot
            write their (possibly stale) result back.
        persistent: the database tier used by calls with ``persist=True``.
        read_through_models: model (or manager) names whose ``get`` by id is cached (see ``read_through``).
        row_ttl: seconds a read-through row lives (default ``default_ttl``).
        tracking: keeps process-local copies of what ``get_or_set(..., near=True)`` reads (read-through
            rows), dropped as soon as Redis reports a change to them (see ``tracking``).
        epoch_check: seconds between background re-reads of the namespace epoch from the database tier (with
            Redis and ``persistent`` only; see ``epoch``): the longest a process that never lost Redis serves a
            row whose writer could not reach Redis.
    """

    def __init__(
        self,
        backend: CacheBackend,
        *,
        namespace: str = "datalayer",
        default_ttl: float = 300.0,
        lock_ttl: float = 3.0,
        invalidation_guard: float = 0.5,
        persistent: PersistentCache | None = None,
        read_through_models: Iterable[str] = (),
        row_ttl: float | None = None,
        tracking: InvalidationListener | None = None,
        epoch_check: float = 1.0,
    ) -> None:
        self.backend = backend
        self.ns = cache_keys.Namespace(namespace)
        self.default_ttl = self._seconds(default_ttl, "default_ttl")
        self.lock_ttl = self._seconds(lock_ttl, "lock_ttl")
        self.invalidation_guard = self._seconds(invalidation_guard, "invalidation_guard")
        self.persistent = persistent
        self.read_through_models = frozenset(read_through_models)
        self.row_ttl = None if row_ttl is None else self._seconds(row_ttl, "row_ttl")
        self.metrics = CacheMetrics()
        self.last_error: str | None = None
        self.lock_poll = 0.02
        self._flight = SingleFlight()
        self._invalidations: GroupedCalls[str] = GroupedCalls(self._invalidate_now)
        self.missed = MissedWrites()
        self.stats_interval = 10.0
        self._stats_published_at = time.monotonic()
        self._publishing: asyncio.Task[None] | None = None
        self.tracking = tracking
        self.near: NearCache | None = tracking.near if tracking is not None else None
        store = DatabaseEpochStore(persistent, self.ns.epoch_record()) if persistent and backend.shared else None
        self.epoch = NamespaceEpoch(store, check_interval_s=self._seconds(epoch_check, "epoch_check"),
                                    runs=lambda: self.backend.runs, on_change=self._epoch_moved,
                                    run_id=lambda: getattr(self.backend, "answered_run", None))

    @property
    def namespace(self) -> str:
        return self.ns.name

    def __repr__(self) -> str:
        return f"<Cache {self.backend.name} namespace={self.namespace!r}>"

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _seconds(value: float, field: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValidationError({field: f"must be a number of seconds > 0, got {value!r:.40}"})
        return float(value)

    def _ttl_ms(self, ttl: float | None) -> int:
        seconds = self.default_ttl if ttl is None else self._seconds(ttl, "ttl")
        return max(1, int(seconds * 1000))

    async def _call(self, operation: Callable[[], Awaitable[T]], fallback: T) -> T:
        """Run one backend operation; a failure is counted and becomes ``fallback``."""
        started = time.perf_counter()
        try:
            if self.missed:
                await self.missed.replay(self.backend, self.ns.prefix)  # first: this answer must not predate them
            return await operation()
        except BackendUnavailable as exc:
            self._unavailable(exc)
            return fallback
        finally:
            self.metrics.observe((time.perf_counter() - started) * 1000)
            if time.monotonic() - self._stats_published_at >= self.stats_interval and self._publishing is None:
                self._publishing = asyncio.get_running_loop().create_task(self._publish_in_background())

    def _failed(self, exc: Exception) -> None:
        self.metrics.errors += 1
        self.last_error = str(exc)

    def _unavailable(self, exc: BackendUnavailable) -> None:
        self._failed(exc)
        self.epoch.doubt()  # this process may have missed an epoch change: check before trusting Redis again
        if self.near is not None:  # this process cannot reach Redis: serve no copies until it can
            self.near.set_live(False)

    async def _missed(self, names: list[str] | None) -> None:
        """The backend did not confirm removing or replacing ``names`` (None: a prefix): an older value may
        still be there. Move every process to a new epoch; without one, replay it from here later."""
        if not await self.epoch.advance():
            self.missed.remember(names)

    async def _read_epoch_for_write(self, names: list[str] | None) -> None:
        """Rule 2 of ``epoch``: invalidate under the epoch readers use, read after the write committed."""
        if not await self.epoch.refresh():
            self.missed.remember(names)  # replayed once this process knows the epoch again

    async def _record_run(self) -> None:
        """Redis confirmed a write: if from a run this process has not checked against the epoch row, check it
        now (rule 6 of ``epoch``), so a failover that loses the write moves every process to a new epoch."""
        await self.epoch.check_run()

    def _epoch_moved(self, epoch: int) -> None:
        """Every Redis key of the old epoch is dead: forget what this process holds and track the new rows."""
        old = self.ns.prefix
        self.ns.at(epoch)
        if self.near is not None:
            self.near.clear()
        if self.tracking is not None and self.tracking.prefix.startswith(old):
            self.tracking.retarget(self.ns.prefix + self.tracking.prefix[len(old):])

    async def _lookup(self, key: str, *, count: bool = True, near_ttl: float | None = None) -> tuple[bool, Any]:
        """``(found, value)`` under the current epoch. With ``near_ttl``, served from and kept in the near cache
        when it is live."""
        self.epoch.check_in_background()
        for _ in range(3):  # the epoch moves at most a few times during one lookup; then it is a miss
            found, value = await self._lookup_once(self.ns.prefix, key, near_ttl if self.epoch.trusted else None)
            if found is not _MOVED:
                self.metrics.hits += count * found
                self.metrics.misses += count * (not found)
                return found, value
        self.metrics.misses += count
        return False, None

    async def _lookup_once(self, prefix: str, key: str, near_ttl: float | None) -> tuple[Any, Any]:
        """``(found, value)``, or ``(_MOVED, None)`` when the epoch moved before the answer could be trusted."""
        full = prefix + cache_keys.checked(key)
        near, token = self.near if near_ttl is not None else None, None
        if near is not None and self.tracking is not None:
            value = near.get(full)
            if value is not MISS:
                return True, value
            self.tracking.ensure_running()
            token = near.begin_fill(full)
        try:
            raw = await self._call(lambda: self.backend.get(full), None)
            if raw is None or raw == _TOMBSTONE:
                return False, None
            if not self.epoch.trusted:  # Redis may hold what a write this process missed made stale (rules 3, 6)
                if not await self.epoch.refresh(answered=True):
                    return False, None
                if self.ns.prefix != prefix:
                    return _MOVED, None
            try:
                value = loads(raw)
            except (ValueError, KeyError, TypeError):
                log.warning("dropping an undecodable cache entry under %s", full)
                self.metrics.errors += 1
                return False, None
            if near is not None:
                near.fill(full, token, value, near_ttl)  # type: ignore[arg-type]
            return True, value
        finally:
            if near is not None:
                near.abandon_fill(full, token)

    async def _store(self, full: str, value: Any, ttl: float | None, *, only_if_absent: bool = False) -> bool:
        encoded = dumps(value)
        if self.near is not None and not only_if_absent:
            self.near.drop((full,))
        ttl_ms = self._ttl_ms(ttl)
        stored = await self._call(
            lambda: self.backend.set(full, encoded, ttl_ms, only_if_absent=only_if_absent), False
        )
        self.metrics.sets += int(stored)
        return stored

    def _tier(self) -> PersistentCache:
        if self.persistent is None:
            raise ConfigurationError("this Cache has no persistent tier; use ctx.cache or pass persistent=")
        return self.persistent

    # ------------------------------------------------------------------ generic API

    async def get(self, key: str, default: Any = None, *, persist: bool = False) -> Any:
        """The cached value, or ``default``. With ``persist``, a miss also looks in the database tier."""
        hit, value = await self._lookup(key)
        if hit:
            return value
        if persist:
            full = self.ns(key)
            try:
                found, value, left = await self._tier().get(self.ns.durable(key))
            except DataLayerError as exc:
                self._failed(exc)
                return default
            if found:
                self.metrics.persistent_hits += 1
                await self._store(full, value, left, only_if_absent=True)
                return value
        return default

    async def set(self, key: str, value: Any, ttl: float | None = None, *, persist: bool = False) -> bool:
        """Cache ``value`` for ``ttl`` seconds (default ``default_ttl``); False if the backend was unavailable."""
        stored = await self._store(self.ns(key), value, ttl)
        if not stored:  # the value it replaces may still be there
            await self._missed([key])
        else:
            await self._record_run()
        if persist:
            stored = await self._persist(key, value, ttl) and stored
        return stored

    async def _persist(self, key: str, value: Any, ttl: float | None) -> bool:
        tier = self._tier()
        try:
            await tier.set(self.ns.durable(key), value, self._ttl_ms(ttl) / 1000)
        except DataLayerError as exc:
            self._failed(exc)
            return False
        return True

    async def delete(self, *keys: str, persist: bool = False) -> int:
        """Remove ``keys``; how many were cached. A delete the backend missed never leaves the value readable
        once it is back (see the module docstring)."""
        names = [cache_keys.checked(key) for key in keys]
        if not names:
            return 0
        await self._read_epoch_for_write(names)
        full = [self.ns.prefix + name for name in names]
        if self.near is not None:
            self.near.drop(full)
        removed = await self._call(lambda: self.backend.delete(full), None)
        if removed is None:
            await self._missed(names)
            removed = 0
        else:
            await self._record_run()
        self.metrics.deletes += removed
        if persist:
            try:
                removed = max(removed, await self._tier().delete([self.ns.durable(name) for name in names]))
            except DataLayerError as exc:
                self._failed(exc)
        return removed

    async def invalidate(self, *keys: str) -> None:
        """Drop ``keys`` and, for ``invalidation_guard`` seconds, stop loads begun before now from refilling
        them with what they read (``get_or_set`` only fills absent keys). Concurrent invalidations share one
        epoch read and one Redis round trip (``grouped``); each returns once its keys are dropped."""
        names = [cache_keys.checked(key) for key in keys]
        if not names:
            return
        if self.near is not None:  # read-your-writes here at once; other processes hear it from Redis
            self.near.drop([self.ns.prefix + name for name in names])
        if in_transaction_block():  # the epoch is read on the transaction's connection, by this task only
            await self._invalidate_now(names)
        else:
            await self._invalidations.submit(names)

    async def _invalidate_now(self, names: list[str]) -> None:
        names = list(dict.fromkeys(names))
        await self._read_epoch_for_write(names)
        full = [self.ns.prefix + name for name in names]
        if self.near is not None:  # the epoch may have moved: drop them under the one readers use
            self.near.drop(full)
        guard_ms = int(self.invalidation_guard * 1000)
        done: bool | None = await self._call(
            lambda: self.backend.set_many([(k, _TOMBSTONE) for k in full], guard_ms), False)
        if done is False:
            await self._missed(names)
        else:
            await self._record_run()

    async def invalidate_prefix(self, prefix: str, *, persist: bool = False) -> int:
        """Remove every key starting with ``prefix`` (``""`` clears the whole namespace)."""
        await self._read_epoch_for_write(None)
        full = self.ns.prefix + prefix
        if self.near is not None:
            self.near.drop_prefix(full)
        removed: int | None = await self._call(lambda: self.backend.delete_prefix(full), None)
        if removed is None:
            await self._missed(None)
            removed = 0
        else:
            await self._record_run()
        if persist:
            try:
                removed = max(removed, await self._tier().delete_prefix(self.ns.base + prefix))
            except DataLayerError as exc:
                self._failed(exc)
        return removed

    async def get_or_set(
        self,
        key: str,
        loader: Callable[[], Awaitable[Any]],
        ttl: float | None = None,
        *,
        cache_none: bool = True,
        persist: bool = False,
        near: bool = False,
    ) -> Any:
        """The cached value, else ``await loader()`` stored for ``ttl`` seconds and returned.

        However many callers miss at once, in this process or in others sharing the Redis, the loader runs
        once and the rest get its result. A loader's own exception reaches every caller waiting on it.

        With ``near``, a value read from Redis is also kept in this process and later reads of it cost no
        round trip, for as long as Redis reports no change to the key. Only keys under the tracked prefix
        (the read-through rows, ``model:``) are reported, so ``near`` is ignored for any other key (see
        ``tracking``). Each caller gets its own copy.
        """
        near_ttl = None
        if near and self.tracking is not None and self.ns(key).startswith(self.tracking.prefix):  # else untracked
            near_ttl = self.default_ttl if ttl is None else ttl
        hit, value = await self._lookup(key, near_ttl=near_ttl)
        if hit:
            return value
        prefix = self.ns.prefix  # the epoch this load begins in, and stores under (rule 5 of ``epoch``)
        return await self._flight.run(
            prefix + key, lambda: self._load_once(key, prefix, loader, ttl, cache_none=cache_none, persist=persist)
        )

    async def _load_once(
        self, key: str, prefix: str, loader: Callable[[], Awaitable[Any]], ttl: float | None,
        *, cache_none: bool, persist: bool,
    ) -> Any:
        full, lock, token = prefix + key, self.ns.lock(key, prefix), uuid.uuid4().hex
        lock_ms = int(self.lock_ttl * 1000)
        locked = await self._call(lambda: self.backend.set(lock, token, lock_ms, only_if_absent=True), None)
        if locked is False:  # another process is loading: wait for its value
            deadline = time.monotonic() + self.lock_ttl
            while time.monotonic() < deadline:
                await asyncio.sleep(self.lock_poll)
                hit, value = await self._lookup(key, count=False)
                if hit:
                    return value
                if await self._call(lambda: self.backend.get(lock), None) is None:
                    break  # holder gone without a value (loader failed or returned None): load ourselves
        try:
            hit, value = await self._lookup(key, count=False)
            if hit:
                return value
            if persist:
                found = await self.get(key, _MISSING, persist=True)
                if found is not _MISSING:
                    return found
            value = await loader()
            self.metrics.loads += 1
            if value is not None or cache_none:
                await self._store(full, value, ttl, only_if_absent=True)
                if persist:
                    await self._persist(key, value, ttl)
            return value
        finally:
            if locked:
                await self._call(lambda: self.backend.release_lock(lock, token), False)

    # ------------------------------------------------------------------ observability

    def stats(self) -> dict[str, Any]:
        """Counters as a plain dict (for ``ctx.stats()`` and the ``stats`` command)."""
        return {
            "backend": self.backend.name,
            "namespace": self.namespace,
            **self.metrics.snapshot(),
            "pending_invalidations": self.missed.count(),
            **(self.epoch.describe() if self.epoch.store is not None else {}),
            "last_error": self.last_error,
            **({"near": self.near.describe()} if self.near is not None else {}),
            **self.backend.describe_state(),
        }

    async def health(self) -> dict[str, Any]:
        """``{"status": "healthy" | "degraded", "backend", "error", "latency_ms", "pending_invalidations"}``
        (and ``epoch`` with a durable epoch); never raises.

        ``degraded`` while the backend does not answer, or answers but this process cannot yet vouch for what
        it holds: invalidations it missed are not replayed, or the epoch could not be read. Checking replays
        and reads them. A cache in trouble degrades the app; it never makes it unhealthy.
        """
        started = time.perf_counter()
        error: str | None = None
        try:
            await self.backend.ping()
            error = await self._settle()
        except BackendUnavailable as exc:
            error = str(exc)
            self.epoch.doubt()
        except Exception as exc:  # noqa: BLE001 - health must answer whatever happens
            error = f"{type(exc).__name__}: {exc}"
        report: dict[str, Any] = {
            "status": "degraded" if error else "healthy",
            "backend": self.backend.name,
            "error": error,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "pending_invalidations": self.missed.count(),
            **({"epoch": self.epoch.value} if self.epoch.store is not None else {}),
        }
        circuit: Any = self.backend.describe_state().get("circuit")
        if circuit:
            report["circuit"] = circuit["state"]
        return report

    async def _settle(self) -> str | None:
        """With the backend answering: replay missed invalidations and confirm the epoch (None), or say what
        still is not. Raises ``BackendUnavailable`` if the backend stops answering meanwhile."""
        if self.missed:
            await self.missed.replay(self.backend, self.ns.prefix)
        if not self.epoch.trusted and not await self.epoch.refresh(answered=True):  # Redis just answered a ping
            return self.epoch.last_error
        return None

    async def close(self) -> None:
        if self._publishing is not None:
            await self._publishing
        await self.epoch.close()
        await self.publish_stats()
        if self.tracking is not None:
            await self.tracking.close()
        await self.backend.close()


_MISSING = object()
_MOVED = object()
