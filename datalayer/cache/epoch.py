"""The namespace epoch: no process serves a row older than the last committed write once Redis answers again,
whatever it missed while Redis was away.

Redis keys carry the namespace's epoch (``keys.Namespace``: ``<ns>:<key>`` at epoch 0, ``<ns>#<epoch>:<key>``
after). Moving to a new epoch makes every key of the old one invisible at once, whatever Redis kept (AOF),
restored or hears later. The epoch's source of truth is one row of the database tier (``cache_entry``, key
``#epoch:<ns>``), so it outlives every process and every Redis restart. Five rules make it work:

1. A write whose invalidation Redis did not confirm (down, slow, unreachable from this process) advances the
   epoch in the database (one atomic statement) and uses the new one at once: read-your-writes here, and every
   other process drops the old keys as soon as it reads the epoch. Every such failure advances it again, so a
   later write in the same outage is covered after readers filled the new epoch.
2. An invalidation reads the epoch from the database first (after its write committed), so it lands in the
   epoch readers use even when this process had not heard of an advance yet.
3. A value read from Redis is trusted only when nothing since the last epoch read can have hidden an advance:
   no failed Redis call, and no connection to a Redis run (``INFO`` ``run_id``) not seen before (a restart, a
   failover). Otherwise the epoch is read again after the answer and, if it moved, the read is repeated under
   the new epoch. During an outage calls fail before that point, so this costs one database read when Redis
   answers again, not one per call.
4. In any case the epoch is re-read in the background at most every ``check_interval_s``
   (``CACHE_EPOCH_CHECK_MS``), never on a read's path: a process that never lost Redis (only a writer was cut
   off from it) moves to the new epoch within that interval. That interval is the only staleness left. For
   ``RECOVERY_INTERVALS`` intervals after a failed Redis call of its own, a process re-reads it every
   ``RECOVERY_CHECK_S`` instead: after an outage every process's writes may still miss Redis for a while (a
   circuit that has not closed yet) and advance the epoch after this process read it again; the short checks
   bound what it serves meanwhile to that much (measured: up to 0.97 s stale with the interval alone).
5. A load stores its result under the epoch it began in, so a load that read the database before a write
   committed can only fill an epoch that write already abandoned.
6. The epoch row records the Redis run it is used on: reading the epoch after Redis answered from another run
   (a Sentinel failover to a replica that missed the last invalidations, a restart from an AOF or RDB older
   than them) moves every process to a new epoch, once per change of run (``db_tier.enter_run``). Only a run
   that just answered counts (a dead one is never recorded). An advance clears the record, and the next read
   records the run again; an invalidation confirmed on a run this process has not recorded reads the epoch
   once more, so no confirmed invalidation rests on a run the record does not name.

Inside a transaction the epoch is read and advanced on the transaction's connection, and nothing starts in
the background (a task started there would outlive its connection). The in-process backend needs none of this
(one process). A ``Cache`` without a database tier has no durable
epoch: a missed invalidation is replayed by the process that missed it, before its next Redis call, and is
lost if that process exits first (``manager``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from datalayer.cache.db_tier import PersistentCache
from datalayer.transactions import in_transaction_block

log = logging.getLogger("datalayer.cache")
T = TypeVar("T")

RECOVERY_CHECK_S = 0.1
"""Seconds between background epoch reads while recovering from a failed Redis call (rule 4)."""
RECOVERY_INTERVALS = 5
"""How long recovery lasts after the last failed call, in ``check_interval_s``."""


class FreshFlight(Generic[T]):
    """One async call shared by concurrent callers, each sharing only a run that began after it asked.

    At most one run is in flight; callers that asked after it began wait for it to end and share the next.
    """

    def __init__(self, call: Callable[[], Coroutine[Any, Any, T]]) -> None:
        self._call = call
        self._running: asyncio.Task[T] | None = None
        self._began = 0.0

    async def run(self, asked: float) -> T:
        """The result of a run that began at or after ``asked`` (``time.monotonic()``); its exception if it failed."""
        loop = asyncio.get_running_loop()
        while True:
            running = self._running
            if running is None or running.done() or running.get_loop() is not loop:
                self._began = time.monotonic()
                running = self._running = loop.create_task(self._call())
                running.add_done_callback(_retrieve)
            if self._began >= asked:
                return await asyncio.shield(running)
            await asyncio.wait((running,))


def _retrieve(task: asyncio.Task[T]) -> None:
    """Mark a run's exception as seen: every caller got it, or none was left waiting."""
    if not task.cancelled():
        task.exception()


class DatabaseEpochStore:
    """The epoch of one namespace in the database tier: read it, advance it."""

    def __init__(self, tier: PersistentCache, key: str) -> None:
        self.tier = tier
        self.key = key

    async def read(self, run: str | None = None) -> int:
        """The epoch, once used on Redis run ``run`` (rule 6: a run other than the recorded one moves it on)."""
        epoch, recorded = await self.tier.read_record(self.key)
        if run is None or run == recorded:
            return epoch
        moved = await self.tier.enter_run(self.key, run)
        return epoch if moved is None else moved

    async def advance(self, floor: int) -> int:
        """One past the current epoch, and at least ``floor``; the new epoch."""
        return await self.tier.advance(self.key, step=1, floor=floor)

    async def raise_to(self, floor: int) -> int:
        """Put back an epoch the row lost (deleted, truncated): ``max(current, floor)``."""
        return await self.tier.advance(self.key, step=0, floor=floor)


class NamespaceEpoch:
    """This process's view of its namespace's epoch. Without a store it stays 0 and is always trusted.

    Args:
        store: where the epoch lives (None: no durable epoch).
        check_interval_s: seconds between background re-reads (rule 4).
        runs: how many Redis runs the backend has met so far (``CacheBackend.runs``).
        on_change: called with the new epoch whenever it moves (never backwards).
        run_id: the Redis run of the backend's last successful call (``None``: it failed since, or not Redis).
    """

    def __init__(
        self,
        store: DatabaseEpochStore | None,
        *,
        check_interval_s: float,
        runs: Callable[[], int],
        on_change: Callable[[int], None],
        run_id: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.store = store
        self.value = 0
        self.check_interval_s = check_interval_s
        self.last_error: str | None = None
        self.checked_at = float("-inf")
        self._failed_at = float("-inf")
        self._runs = runs
        self._run_id = run_id
        self._recorded_run: str | None = None  # the run this process checked against the row, at this epoch
        self._on_change = on_change
        self._doubts = 0
        self._doubted_at = float("-inf")
        self._confirmed: tuple[int, int] | None = None
        self._reads = FreshFlight(self._read)
        self._advances = FreshFlight(self._advance)
        self._background: asyncio.Task[bool] | None = None

    @property
    def trusted(self) -> bool:
        """Whether a Redis answer under the current epoch can be served without reading the epoch again (and,
        from a run this process has not checked against the row, checking that: rule 6)."""
        if self.store is None:
            return True
        run = self._run_id()
        return self._confirmed == (self._doubts, self._runs()) and (run is None or run == self._recorded_run)

    def doubt(self) -> None:
        """A Redis call failed: this process may have missed an advance (rule 3), and others' writes may miss
        Redis for a while yet (rule 4: check often)."""
        self._doubts += 1
        self._doubted_at = time.monotonic()

    def _check_interval(self) -> float:
        """Rule 4's interval: ``check_interval_s``, or ``RECOVERY_CHECK_S`` shortly after a failed call."""
        if time.monotonic() - self._doubted_at < self.check_interval_s * RECOVERY_INTERVALS:
            return min(self.check_interval_s, RECOVERY_CHECK_S)
        return self.check_interval_s

    async def refresh(self, asked: float | None = None, *, answered: bool = False) -> bool:
        """Read the epoch (sharing a read that began after ``asked``, default now); with ``answered`` (Redis
        just answered this process), check its run against the row too (``check_run``). False if it could not
        be read, or the last attempt failed less than ``check_interval_s`` ago; never raises."""
        if self.store is None:
            return True
        if self._backing_off():
            return False
        try:
            if in_transaction_block():  # on the transaction's connection, shared with no other task
                await self._read()
            else:
                await self._reads.run(time.monotonic() if asked is None else asked)
        except Exception as exc:  # noqa: BLE001 - the database is down or refused: the caller degrades
            self._failed("read", exc)
            return False
        return await self.check_run() if answered else True

    async def check_run(self) -> bool:
        """Rule 6: when Redis last answered from a run this process has not checked against the epoch row,
        record it there, moving every process to a new epoch if the row named another run. Call it only right
        after a call Redis answered (a run that merely was seen may be gone). False if the database did not
        answer; never raises."""
        run = self._run_id()
        if self.store is None or run is None or run == self._recorded_run:
            return True
        if self._backing_off():
            return False
        try:
            epoch = await self.store.read(run)
            if epoch < self.value:  # the row was deleted: put it back (unrecorded; the next call records it)
                epoch = await self.store.raise_to(self.value)
                run = None
        except Exception as exc:  # noqa: BLE001 - as in refresh
            self._failed("check the Redis run of", exc)
            return False
        self._adopt(epoch)
        self._recorded_run = run
        return True

    async def advance(self) -> bool:
        """Move every process to a new epoch (rule 1) and use it here at once. False if there is no store or the
        database did not answer (now or less than ``check_interval_s`` ago); never raises."""
        if self.store is None or self._backing_off():
            return False
        try:
            if in_transaction_block():
                await self._advance()
            else:
                await self._advances.run(time.monotonic())
        except Exception as exc:  # noqa: BLE001 - as in refresh
            self._failed("advance", exc)
            return False
        return True

    def check_in_background(self) -> None:
        """Start a background read when the last one began ``check_interval_s`` ago or more (rule 4). No I/O."""
        if self.store is None or time.monotonic() - self.checked_at < self._check_interval() or in_transaction_block():
            return
        task = self._background
        loop = asyncio.get_running_loop()
        if task is not None and not task.done() and task.get_loop() is loop:
            return
        self.checked_at = time.monotonic()  # one attempt per interval, even while the database does not answer
        self._background = loop.create_task(self.refresh(), name="datalayer-cache-epoch")

    async def _read(self) -> None:
        token = (self._doubts, self._runs())
        self.checked_at = time.monotonic()
        assert self.store is not None
        epoch = await self.store.read()
        if epoch < self.value:  # the row was deleted: put it back, or processes would split between epochs
            epoch = await self.store.raise_to(self.value)
        self._adopt(epoch)
        self._confirmed = token
        self.last_error, self._failed_at = None, float("-inf")

    async def _advance(self) -> None:
        assert self.store is not None
        self._adopt(await self.store.advance(self.value + 1))
        self.last_error, self._failed_at = None, float("-inf")

    def _adopt(self, epoch: int) -> None:
        if epoch > self.value:
            log.info("cache epoch %d -> %d", self.value, epoch)
            self.value = epoch
            self._recorded_run = None  # an advance cleared the row's run: the next answered call records it
            self._on_change(epoch)

    def _backing_off(self) -> bool:
        """After a failure, the database is not asked again for ``check_interval_s`` (it may be slow to fail)."""
        return time.monotonic() - self._failed_at < self.check_interval_s

    def _failed(self, what: str, exc: BaseException) -> None:
        self._failed_at = time.monotonic()
        first = self.last_error is None
        self.last_error = f"could not {what} the cache epoch: {type(exc).__name__}: {exc}"
        log.log(logging.WARNING if first else logging.DEBUG, "%s", self.last_error)

    def describe(self) -> dict[str, object]:
        return {"epoch": self.value, "epoch_trusted": self.trusted}

    async def close(self) -> None:
        task, self._background = self._background, None
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            await asyncio.gather(task, return_exceptions=True)
