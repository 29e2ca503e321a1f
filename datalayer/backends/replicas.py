"""Read replicas: reads outside a transaction served by a healthy streaming standby, the rest by the primary.

Routing (``route_reads``, set up by the PostgreSQL pool client when ``DATABASE_REPLICA_URLS`` is set): a
statement the pool client runs outside a transaction that ``is_read`` goes to a usable replica; writes,
scripts, raw SQL (``ctx.raw``), everything in a transaction and everything under ``primary_only()`` go to the
primary. A replica read that fails is run on the primary instead, so a caller never sees a replica's failure;
a replica whose connection failed is skipped until a check reaches it again.

Read-your-writes, by WAL position rather than by a time window: every ``DB_REPLICA_CHECK_INTERVAL_MS`` the
monitor samples the primary's WAL insert position and each replica's replay position. A replica serves reads
only once it has replayed a primary position sampled after this process's last write (statement or
transaction) returned, so a caller that wrote always reads its write back, however far behind a replica
falls. A fixed window (route to the primary for N ms after a write) would be a guess: shorter than a lag
spike it reads stale rows, longer it sends reads to the primary for nothing, and it needs no less machinery.
The cost: after a write, reads go to the primary until the next check shows a replica caught up (about one
interval). Scope: the process (its ``DataContext``); writes of other processes show on replicas within the
lag bound.

Lag (milliseconds): how long ago the primary was at the newest position the replica has replayed, measured
at each check; 0 when it has replayed the latest sample (a paused replica that nothing was written since is
not behind). A replica more than ``DB_REPLICA_MAX_LAG_MS`` behind, unreachable, or no longer in recovery
(promoted) is skipped until a check finds it fit again.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from time import monotonic, perf_counter
from typing import Any, Literal

import asyncpg

from datalayer.backends.retry import is_read
from datalayer.errors import DatabaseUnavailableError
from datalayer.monitoring import QueryMonitor
from datalayer.translate import is_connection_lost

log = logging.getLogger("datalayer.replicas")

ReplicaState = Literal["unknown", "healthy", "lagging", "down"]


class OnPrimary(enum.Enum):
    """Why a read goes to the primary after all."""

    READ = "read"
    """No replica fit (or ``primary_only()``), or the replica failed."""
    WRITE = "write"
    """The replica refused it as a write (a ``SELECT`` of a function that writes): noted as a write."""


#: the primary's WAL insert position (every acknowledged commit ends at or before it) and the page sizes
#: needed to compare it with a replay position
PRIMARY_POSITION = (
    "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint AS position, "
    "current_setting('wal_block_size')::int AS block, "
    "(SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') AS segment"
)
_REPLAY_POSITION = (
    "SELECT pg_is_in_recovery() AS standby, pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint AS replayed"
)
_SHORT_PAGE_HEADER, _LONG_PAGE_HEADER = 24, 40
_SAMPLES_KEPT = 512
_primary_only: ContextVar[bool] = ContextVar("datalayer_primary_only", default=False)


@contextlib.contextmanager
def primary_only() -> Iterator[None]:
    """``with primary_only(): ...`` sends every read of the block (and of tasks it starts) to the primary.

    For reads that must see other processes' latest writes (a check before a payment, filling a cache).
    """
    token = _primary_only.set(True)
    try:
        yield
    finally:
        _primary_only.reset(token)


def end_position(position: int, block: int, segment: int) -> int:
    """The insert position ``position`` as a record *end* position, which replay positions are.

    At a page boundary the insert position points past the new page's header, while the last record ended
    before it; without this an idle replica would look one header behind for ever.
    """
    if position % segment == _LONG_PAGE_HEADER:
        return position - _LONG_PAGE_HEADER
    if position % block == _SHORT_PAGE_HEADER:
        return position - _SHORT_PAGE_HEADER
    return position


def lag_ms(samples: list[tuple[float, int]], replayed: int) -> float:
    """Milliseconds from when the primary was at position ``replayed`` to the newest sample: 0 when that one
    is replayed, else interpolated between the samples around ``replayed`` (under steady writes a check
    always finds the newest few records unreplayed; the interval alone would overstate the lag), at least
    the whole span of ``samples`` (``(monotonic s, position)``, oldest first) when none is replayed."""
    newest_at, newest = samples[-1]
    if replayed >= newest:
        return 0.0
    after_at, after = newest_at, newest
    for sampled_at, position in reversed(samples[:-1]):
        if position <= replayed:
            share = (replayed - position) / (after - position) if after > position else 1.0
            return (newest_at - (sampled_at + share * (after_at - sampled_at))) * 1000
        after_at, after = sampled_at, position
    return (newest_at - samples[0][0]) * 1000


class Replica:
    """One read replica: its pool, its state and figures (``lag_ms`` in milliseconds)."""

    def __init__(self, name: str, pool: asyncpg.Pool) -> None:
        self.name = name
        self.pool = pool
        self.state: ReplicaState = "unknown"
        self.lag_ms: float | None = None
        self.fresh_as_of = float("-inf")
        """Monotonic time of the newest primary sample this replica has replayed."""
        self.reads = 0
        self.failed_reads = 0
        self.error: str | None = None

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state,
                "lag_ms": None if self.lag_ms is None else round(self.lag_ms, 1),
                "reads": self.reads, "failed_reads": self.failed_reads, "error": self.error}


class ReplicaSet:
    """The replicas of one primary, checked every ``interval_s`` seconds by a background task.

    Args:
        servers: asyncpg ``create_pool`` arguments of each replica (host, port, user, password, database, pool
            options); each gets its own pool when the set starts, with ``min_size=0`` (none connects up front).
        primary_position: ``(monotonic time taken just before reading, row of PRIMARY_POSITION)``.
        max_lag_ms: milliseconds behind past which a replica is skipped.
        interval_s: seconds between checks.
        timeout_s: seconds a check or a replica read waits for a connection.
        monitor: the pool client's statement monitor (replica reads are timed like any other).
    """

    def __init__(self, servers: list[dict[str, Any]], primary_position: Callable[[], Awaitable[tuple[float, Any]]],
                 *, max_lag_ms: float, interval_s: float, timeout_s: float, monitor: QueryMonitor) -> None:
        self.servers = servers
        self.replicas: list[Replica] = []
        self._primary_position = primary_position
        self.max_lag_ms = max_lag_ms
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.monitor = monitor
        self.primary_reads = 0
        """Reads outside a transaction that went to the primary (no replica fresh enough)."""
        self._samples: deque[tuple[float, int]] = deque(maxlen=_SAMPLES_KEPT)
        self._usable: tuple[Replica, ...] = ()
        self._next = 0
        self._last_write = float("-inf")
        self._checking = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None

    # -- routing ---------------------------------------------------------------------------------------

    def wrote(self) -> None:
        """A write (or a transaction) of this process returned: replicas serve reads again only once they
        have replayed a primary position sampled after now."""
        self._last_write = monotonic()

    def pick(self) -> Replica | None:
        """A usable replica that has replayed this process's last write (round robin), else ``None``."""
        usable = self._usable
        for _ in range(len(usable)):
            self._next = (self._next + 1) % len(usable)
            replica = usable[self._next]
            if replica.fresh_as_of > self._last_write:
                return replica
        return None

    async def read(self, query: str, values: list | None) -> list | OnPrimary:
        """The rows of ``query`` read on a replica, or why the primary must run it (no replica fit,
        ``primary_only()``, the replica failed: then it is skipped until a check reaches it, or it refused a
        write).

        Raises:
            DatabaseUnavailableError: the statement outlived ``DB_COMMAND_TIMEOUT_MS`` (not repeated).
        """
        replica = None if _primary_only.get() else self.pick()
        if replica is None:
            self.primary_reads += 1
            return OnPrimary.READ
        started = perf_counter()
        try:
            connection = await replica.pool.acquire(timeout=self.timeout_s)
        except Exception as exc:  # noqa: BLE001 - no connection (down, unreachable, busy): the primary answers
            return await self._read_failed(replica, query, started, exc)
        try:
            rows = await connection.fetch(query, *(values or ()))
        except (TimeoutError, asyncio.TimeoutError) as exc:  # DB_COMMAND_TIMEOUT_MS: cancelled, and not repeated
            self.monitor.record(query, perf_counter() - started, True)
            raise DatabaseUnavailableError(
                f"a read on replica {replica.name} outlived DB_COMMAND_TIMEOUT_MS; the statement was cancelled",
                retryable=True, maybe_committed=False) from exc
        except Exception as exc:  # noqa: BLE001 - lost connection, recovery conflict, a write: the primary answers
            return await self._read_failed(replica, query, started, exc)
        finally:
            with contextlib.suppress(Exception):
                await replica.pool.release(connection)
        self.monitor.record(query, perf_counter() - started, False)
        replica.reads += 1
        return rows

    async def _read_failed(self, replica: Replica, query: str, started: float, exc: Exception) -> OnPrimary:
        self.monitor.record(query, perf_counter() - started, True)
        self.primary_reads += 1
        if isinstance(exc, asyncpg.exceptions.ReadOnlySQLTransactionError):
            return OnPrimary.WRITE
        replica.failed_reads += 1
        if is_connection_lost(exc):
            self._set(replica, "down", f"{exc.__class__.__name__}: {exc}")
            await _expire(replica)
        log.info("a read on replica %s failed (%s); the primary answers it", replica.name, exc.__class__.__name__)
        return OnPrimary.READ

    # -- checks ----------------------------------------------------------------------------------------

    async def check(self) -> None:
        """Sample the primary's WAL position, then every replica's state and lag (concurrently)."""
        async with self._checking:
            sample = None
            try:
                sampled_at, row = await asyncio.wait_for(self._primary_position(), self.timeout_s)
                sample = (sampled_at, end_position(row["position"], row["block"], row["segment"]))
                self._samples.append(sample)
            except Exception as exc:  # noqa: BLE001 - replicas are still probed; lags keep their last value
                log.debug("could not sample the primary's WAL position: %s", exc.__class__.__name__)
            await asyncio.gather(*(self._probe(replica, sample) for replica in self.replicas))
            self._usable = tuple(r for r in self.replicas if r.state == "healthy")

    async def _probe(self, replica: Replica, sample: tuple[float, int] | None) -> None:
        try:
            async with replica.pool.acquire(timeout=self.timeout_s) as connection:
                row = await asyncio.wait_for(connection.fetchrow(_REPLAY_POSITION), self.timeout_s)
        except Exception as exc:  # noqa: BLE001 - any failure: skipped until it answers
            self._set(replica, "down", f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__)
            await _expire(replica)
            return
        if not row["standby"]:
            self._set(replica, "down", "not in recovery (promoted, or not a standby): skipped")
            return
        replayed = row["replayed"]
        if replayed is None:  # a standby that has replayed nothing yet
            self._set(replica, "unknown", "has not replayed any WAL yet")
            return
        for sampled_at, position in reversed(self._samples):
            if position <= replayed:
                replica.fresh_as_of = max(replica.fresh_as_of, sampled_at)
                break
        if sample is not None:  # else (the primary did not answer) the lag stays as last measured
            replica.lag_ms = lag_ms(list(self._samples), replayed)
        if replica.lag_ms is None:
            self._set(replica, "unknown", "the primary's position could not be read yet")
        elif replica.fresh_as_of == float("-inf"):
            self._set(replica, "lagging", f"has replayed no primary position sampled since start (at least "
                                          f"{replica.lag_ms:.0f} ms behind)")
        elif replica.lag_ms > self.max_lag_ms:
            self._set(replica, "lagging", f"{replica.lag_ms:.0f} ms behind the primary, over DB_REPLICA_MAX_LAG_MS="
                                          f"{self.max_lag_ms:g}")
        else:
            self._set(replica, "healthy", None)

    def _set(self, replica: Replica, state: ReplicaState, error: str | None) -> None:
        if state != replica.state:
            level = logging.INFO if state == "healthy" else logging.WARNING
            log.log(level, "replica %s is %s%s", replica.name, state, f": {error}" if error else "",
                    extra={"replica": replica.name, "state": state, "lag_ms": replica.lag_ms})
        replica.state, replica.error = state, error
        if state != "healthy" and replica in self._usable:
            self._usable = tuple(r for r in self._usable if r is not replica)

    def status(self) -> list[dict[str, Any]]:
        """Each replica's ``name`` (no password), ``state``, ``lag_ms`` (ms, at the last check), ``reads``,
        ``failed_reads`` and ``error``."""
        return [replica.status() for replica in self.replicas]

    # -- lifetime --------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open each replica's pool (no connection yet) and start the checks in the background; until the
        first check has judged a replica, reads go to the primary."""
        if self._watcher is not None:
            return
        replicas = []
        for server in self.servers:
            name = _name(server)
            replicas.append(Replica(name, await asyncpg.create_pool(None, min_size=0, **server)))
        self.replicas, self._usable = replicas, ()
        self._watcher = asyncio.get_running_loop().create_task(self._watch(), name="datalayer-replica-checks")

    async def _watch(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # a bug here must never stop the checks for good
                log.exception("replica check failed")
            await asyncio.sleep(self.interval_s)

    async def close(self) -> None:
        """Stop the checks and close every replica's pool (terminated after 5 s); ``start`` opens them again."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
        replicas, self.replicas, self._usable = self.replicas, [], ()
        for replica in replicas:
            try:
                await asyncio.wait_for(replica.pool.close(), 5)
            except Exception:  # noqa: BLE001
                replica.pool.terminate()


def _name(server: dict[str, Any]) -> str:
    """``postgres://user@host:port/db`` of a replica's pool arguments: never the password."""
    hosts, ports = server.get("host"), server.get("port")
    pairs = list(zip(hosts, ports or ())) if isinstance(hosts, list) else [(hosts, ports)]
    user = f"{server['user']}@" if server.get("user") else ""
    return f"postgres://{user}{','.join(f'{h}:{p}' for h, p in pairs)}/{server.get('database')}"


async def _expire(replica: Replica) -> None:
    with contextlib.suppress(Exception):
        await replica.pool.expire_connections()


def route_reads(client: Any, replicas: ReplicaSet) -> None:
    """Route ``client``'s statements (the pool's own, so outside any transaction): reads to ``replicas``
    when one is fit, all else to the primary, each write noted for read-your-writes. Set on the instance, so
    a client without replicas pays nothing."""
    on_primary_query, on_primary_dict = client.execute_query, client.execute_query_dict
    writes = {name: getattr(client, name) for name in ("execute_insert", "execute_many", "execute_script", "run_raw")}

    async def execute_query(query: str, values: list | None = None) -> Any:
        routed = await replicas.read(query, values) if is_read(query) else OnPrimary.WRITE
        if isinstance(routed, list):
            return len(routed), routed
        if routed is OnPrimary.READ:
            return await on_primary_query(query, values)
        try:
            return await on_primary_query(query, values)
        finally:
            replicas.wrote()

    async def execute_query_dict(query: str, values: list | None = None) -> list[dict]:
        routed = await replicas.read(query, values) if is_read(query) else OnPrimary.WRITE
        if isinstance(routed, list):
            return [dict(row) for row in routed]
        if routed is OnPrimary.READ:
            return await on_primary_dict(query, values)
        try:
            return await on_primary_dict(query, values)
        finally:
            replicas.wrote()

    def noting_writes(call: Callable[..., Awaitable[Any]], *, maybe_read: bool) -> Callable[..., Awaitable[Any]]:
        async def write(query: str, *args: Any) -> Any:
            try:
                return await call(query, *args)
            finally:
                if not (maybe_read and is_read(query)):  # raw SQL runs on the primary; a raw SELECT wrote nothing
                    replicas.wrote()
        return write

    client.execute_query, client.execute_query_dict = execute_query, execute_query_dict
    for name, call in writes.items():
        setattr(client, name, noting_writes(call, maybe_read=name == "run_raw"))
