"""Scaling out, on real servers started here on loopback: read replicas (a streaming standby built with
``pg_basebackup -R``), failover to a promoted standby through a multi-host URL, and PgBouncer in transaction
pooling mode. Run with ``-s`` to see the figures.

The server tests are PostgreSQL-only (SQLite has no replicas, failover or pooler); the settings tests need no
server. One primary+standby pair serves the whole module; the failover test runs last: it promotes the standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as redis
from pydantic import SecretStr
from tortoise import Tortoise

from datalayer import (
    ConfigurationError,
    DatabaseUnavailableError,
    DataContext,
    DataLayerError,
    close_context,
    get_context,
)
from datalayer.backends import root_client
from datalayer.cache import CacheSettings, build_cache
from datalayer.config import connection_config, tortoise_config
from tests.conftest import PG_SERVER, TEST_MODELS, create_pg_database, drop_pg_database, make_settings
from tests.models import Article, CachedNote
from tests.replication_support import PgBouncer, RedisSentinelGroup, ReplicatedPostgres

_ARTICLE_READS = "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE '%FROM \"test_article\"%'"


def test_a_multi_host_url_reaches_asyncpg_as_host_and_port_lists():
    settings = make_settings("postgres://app:s3cret@db1:5432,[::1]:5433/app?target_session_attrs=read-write")
    credentials = connection_config(settings)["credentials"]
    assert (credentials["host"], credentials["port"]) == (["db1", "::1"], [5432, 5433])
    assert credentials["target_session_attrs"] == "read-write"
    assert credentials["password"]() == "s3cret"
    assert settings.target.describe() == "postgres://app:***@db1:5432,[::1]:5433/app"


def test_a_bad_multi_host_url_names_the_variable_and_hides_the_password():
    for url, says in (("postgres://app:s3cret@db1:5432,db2:x/app", "not a valid URL"),
                      ("postgres://app:s3cret@db1,db2/app?target_session_attrs=writable", "target_session_attrs"),
                      ("postgres://app:s3cret@db1/app?statement_cache_size=-1", "statement_cache_size")):
        with pytest.raises(ConfigurationError, match=says) as caught:
            make_settings(url).target  # noqa: B018 - parsing raises
        assert "DATABASE_URL" in str(caught.value) and "s3cret" not in str(caught.value)


def test_replica_urls_split_at_each_scheme_and_never_show_a_password():
    settings = make_settings("postgres://app@primary/app", DATABASE_REPLICA_URLS=(
        "postgres://app:pw1@r1:5432,r2:5433/app, postgresql://app:pw2@r3/app"))
    assert [t.describe() for t in settings.replica_targets] == [
        "postgres://app:***@r1:5432,r2:5433/app", "postgres://app:***@r3:5432/app"]
    replicas = connection_config(settings)["credentials"]["replicas"]
    assert [(r["host"], r["port"]) for r in replicas] == [(["r1", "r2"], [5432, 5433]), ("r3", 5432)]
    assert "pw1" not in repr(settings) and "pw1" not in repr(connection_config(settings))
    with pytest.raises(ConfigurationError, match="DATABASE_REPLICA_URLS") as caught:
        make_settings("postgres://app@primary/app", DATABASE_REPLICA_URLS="postgres://app:pw1@/app").replica_targets  # noqa: B018
    assert "pw1" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="SQLite"):
        connection_config(make_settings("sqlite:///x.sqlite3", DATABASE_REPLICA_URLS="postgres://app@r1/app"))
    assert "replicas" not in tortoise_config(settings, with_aerich=True)["connections"]["default"]["credentials"]


def test_pgbouncer_turns_asyncpg_s_statement_cache_off():
    direct = connection_config(make_settings("postgres://app@db/app"))["credentials"]
    assert "statement_cache_size" not in direct  # asyncpg's default cache
    assert connection_config(make_settings("postgres://app@db/app", DB_PGBOUNCER=True))["credentials"][
        "statement_cache_size"] == 0
    assert connection_config(make_settings("postgres://app@db/app?statement_cache_size=0"))["credentials"][
        "statement_cache_size"] == 0


@pytest.fixture(scope="module")
def pair():
    cluster = ReplicatedPostgres()
    try:  # a failed start still stops what it started
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@contextlib.asynccontextmanager
async def opened(url: str, *, migrate: bool = True, **settings: object) -> AsyncIterator[DataContext]:
    """The process context on ``url`` (the suite's own is closed first and reopened by the next test)."""
    await close_context()
    context = await get_context(settings=make_settings(url, **settings), models=TEST_MODELS, migrate=migrate)
    try:
        yield context
    finally:
        await close_context()


async def _served_by_replica() -> bool:
    """Whether a plain read outside a transaction was answered by a standby."""
    rows = await Tortoise.get_connection("default").execute_query_dict("SELECT pg_is_in_recovery() AS standby")
    return rows[0]["standby"]


async def _until(predicate, within_s: float, what: str) -> float:
    """Poll ``predicate`` (async) every 20 ms until true; returns the seconds it took."""
    started = time.monotonic()
    for _ in range(int(within_s / 0.02)):
        if await predicate():
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what} did not happen within {within_s} s")


def _replica_status() -> dict:
    [status] = root_client().replicas.status()
    return status


@contextlib.asynccontextmanager
async def replicated(pair: ReplicatedPostgres, **settings: object) -> AsyncIterator[DataContext]:
    """The process context on the pair's primary, with its standby as the read replica."""
    await pair.prepare()
    async with opened(pair.primary.url(), DATABASE_REPLICA_URLS=pair.standby.url(), **settings) as context:
        await pair.wait_replayed()
        yield context


@pytest.mark.postgres_only
async def test_reads_go_to_the_replica_and_a_writer_reads_its_own_writes(backend, pair):
    async with replicated(pair, DB_REPLICA_MAX_LAG_MS=60_000, DB_REPLICA_CHECK_INTERVAL_MS=50) as ctx:
        articles = ctx.manager(Article)
        seed = await articles.create({"title": "seed"})
        await pair.wait_replayed()
        await _until(_served_by_replica, 5, "reads going to the replica")
        before = await pair.standby_sql(_ARTICLE_READS)
        for _ in range(100):
            assert (await articles.get(seed.id)).title == "seed"
        on_standby = await pair.standby_sql(_ARTICLE_READS) - before

        # read-your-writes: with replay paused the standby never gets these rows, yet the writer reads each back
        await pair.standby_sql("SELECT pg_wal_replay_pause()")
        missing, written = 0, []
        try:
            for n in range(20):
                if n % 2 == 0:  # the first create outside a transaction (the one-statement path)
                    row = await articles.create({"title": f"mine-{n}"})
                else:
                    async with ctx.transaction() as tx:
                        row = await tx.manager(Article).create({"title": f"mine-{n}"})
                written.append(row.id)
                found = await articles.find(row.id)
                page = await articles.find_many({"title": f"mine-{n}"})
                missing += (found is None) + (len(page.items) != 1)
            on_standby_now = await pair.standby_sql("SELECT count(*) FROM test_article WHERE title LIKE 'mine-%'")
        finally:
            await pair.standby_sql("SELECT pg_wal_replay_resume()")
        # a SELECT of a function that writes: the replica refuses it, the primary runs it, and it counts as a write
        admin = await pair.primary.connect()
        await admin.execute("CREATE TABLE IF NOT EXISTS bumps (n int); CREATE OR REPLACE FUNCTION bump() RETURNS int "
                            "LANGUAGE sql AS 'INSERT INTO bumps VALUES (1) RETURNING n'")
        await pair.wait_replayed()
        await _until(_served_by_replica, 5, "reads going back to the replica")
        bumped = await Tortoise.get_connection("default").execute_query_dict("SELECT bump() AS n")
        pinned = not await _served_by_replica()
        bumps = await admin.fetchval("SELECT count(*) FROM bumps")
        await admin.execute("DROP FUNCTION bump(); DROP TABLE bumps")
        await admin.close()
        status = _replica_status()
        print(f"\nreplica reads: 100 gets -> {on_standby} statements on the standby (pg_stat_statements); "
              f"read-your-writes: 20 creates (half in a transaction) each read back at once (find + find_many): {missing} missing, "
              f"{on_standby_now} of them on the paused standby; replica {status}")
        assert on_standby >= 100
        assert missing == 0
        assert on_standby_now == 0, "the standby had the rows: the test proved nothing"
        assert bumped == [{"n": 1}] and bumps == 1
        assert pinned, "a write the replica refused was not noted for read-your-writes"


@pytest.mark.postgres_only
async def test_a_stopped_replica_is_skipped_with_no_failed_read(backend, pair):
    async with replicated(pair, DB_REPLICA_CHECK_INTERVAL_MS=100, DB_CONNECTION_TIMEOUT_MS=1000) as ctx:
        articles = ctx.manager(Article)
        seed = await articles.create({"title": "seed"})
        await _until(_served_by_replica, 5, "reads going to the replica")
        failed: Counter[str] = Counter()
        reads = 0
        stop_at = time.monotonic() + 2.0

        async def reader() -> None:
            nonlocal reads
            while time.monotonic() < stop_at:
                try:
                    assert (await articles.get(seed.id)).id == seed.id
                    await articles.find_many({"status": "draft"}, limit=5)
                    reads += 2
                except Exception as exc:  # noqa: BLE001 - counted: none may happen
                    failed[type(exc).__name__] += 1
                await asyncio.sleep(0.002)

        async def stop_standby() -> None:
            await asyncio.sleep(0.6)
            await asyncio.to_thread(pair.standby.stop)  # immediate: the postmaster of postmaster.pid

        reads_before = _replica_status()["reads"]
        await asyncio.gather(*(reader() for _ in range(4)), stop_standby())
        report = await ctx.health()
        replica_check = report.checks["replicas"]
        status = _replica_status()
        await asyncio.to_thread(pair.standby.start)
        back = await _until(_served_by_replica, 10, "reads going to the restarted replica")
        print(f"\nstandby stopped under 4 readers: {reads} reads, failed {dict(failed) or 0}; replica served "
              f"{status['reads'] - reads_before} of them before it stopped; health {replica_check.status}: "
              f"{replica_check.error}; reads back on it {back:.2f} s after it restarted")
        assert not failed
        assert status["reads"] > reads_before, "the replica served no read before it stopped"
        assert status["state"] == "down"
        assert replica_check.status == "degraded" and report.status == "degraded"


@pytest.mark.postgres_only
async def test_a_lagging_replica_is_skipped_after_the_threshold(backend, pair):
    async with replicated(pair, DB_REPLICA_MAX_LAG_MS=300, DB_REPLICA_CHECK_INTERVAL_MS=50) as ctx:
        await _until(_served_by_replica, 5, "reads going to the replica")
        healthy_lag = _replica_status()["lag_ms"]
        other = await pair.primary.connect()  # another process's writes: they do not pin this one's reads
        await other.execute("CREATE TABLE IF NOT EXISTS lag_probe (n int)")
        await pair.wait_replayed()
        await pair.standby_sql("SELECT pg_wal_replay_pause()")
        stop = asyncio.Event()

        async def writes() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                await other.execute("INSERT INTO lag_probe VALUES ($1)", n)
                await asyncio.sleep(0.02)

        writer = asyncio.create_task(writes())
        try:
            async def skipped() -> bool:
                return _replica_status()["state"] == "lagging"

            took = await _until(skipped, 10, "the lagging replica being skipped")
            seen = _replica_status()
            on_replica = await _served_by_replica()
            report = await ctx.health()
            latest = await other.fetchval("SELECT max(n) FROM lag_probe")
            read_back = await Tortoise.get_connection("default").execute_query_dict(
                "SELECT max(n) AS n FROM lag_probe")
        finally:
            stop.set()
            await writer
            await pair.standby_sql("SELECT pg_wal_replay_resume()")
        caught_up = await _until(_served_by_replica, 10, "reads going back to the caught-up replica")
        await other.execute("DROP TABLE lag_probe")
        await other.close()
        print(f"\nreplay paused under writes: skipped after {took:.2f} s at "
              f"lag {seen['lag_ms']} ms (threshold 300 ms; {healthy_lag} ms while healthy); health "
              f"{report.checks['replicas'].status} {report.checks['replicas'].details['replicas'][0]['lag_ms']} ms; "
              f"reads back on it {caught_up:.2f} s after replay resumed")
        assert healthy_lag is not None and healthy_lag <= 300
        assert seen["lag_ms"] > 300
        assert not on_replica
        assert read_back[0]["n"] >= latest, "a read went to the lagging replica"
        assert report.checks["replicas"].status == "degraded"


@pytest.mark.postgres_only
async def test_writes_follow_the_primary_to_a_promoted_standby(backend, pair):
    """Last in the module: the standby becomes the primary. Synchronous replication, so an acknowledged write
    is on the standby before the primary crashes (asynchronous replication may lose the last ones: a
    property of PostgreSQL, not of the layer)."""
    await pair.prepare()
    admin = await pair.primary.connect()
    await admin.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
    await admin.execute("SELECT pg_reload_conf()")

    async def synchronous() -> bool:
        return await admin.fetchval("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") == 1

    await _until(synchronous, 10, "synchronous replication")
    await admin.close()
    primary, standby = pair.primary.port, pair.standby.port
    url = f"postgres://postgres@127.0.0.1:{primary},127.0.0.1:{standby}/postgres?target_session_attrs=read-write"
    async with opened(url, DB_CONNECTION_TIMEOUT_MS=1000, DB_MAX_CONNECTIONS=10) as ctx:
        articles = ctx.manager(Article)
        acknowledged: dict[str, float] = {}
        maybe: set[str] = set()
        outcomes: Counter[str] = Counter()
        moments: dict[str, float] = {}
        deadline = time.monotonic() + 30

        async def writer(n: int) -> None:
            i = 0
            while time.monotonic() < deadline and time.monotonic() < moments.get("promoted", deadline) + 1.5:
                title = f"f{n}-{i}"
                i += 1
                outcomes["attempted"] += 1
                try:
                    await articles.create({"title": title})
                    acknowledged[title] = time.monotonic()
                    outcomes["succeeded"] += 1
                except DatabaseUnavailableError as exc:
                    outcomes[f"DatabaseUnavailableError(maybe_committed={exc.maybe_committed})"] += 1
                    if exc.maybe_committed:
                        maybe.add(title)
                    await asyncio.sleep(0.05)
                except DataLayerError as exc:
                    outcomes[type(exc).__name__] += 1
                except Exception as exc:  # noqa: BLE001 - counted: none may happen
                    outcomes[f"RAW {type(exc).__module__}.{type(exc).__name__}"] += 1

        async def fail_over() -> None:
            await asyncio.sleep(1.0)
            moments["stopped"] = time.monotonic()
            await asyncio.to_thread(pair.primary.stop)  # immediate: a crash
            await asyncio.to_thread(pair.promote_standby)
            moments["promoted"] = time.monotonic()

        await asyncio.gather(*(writer(n) for n in range(10)), fail_over())
        after = [at for at in acknowledged.values() if at > moments["promoted"]]
        new_primary = await pair.standby.connect()
        try:
            stored = Counter(row["title"] for row in await new_primary.fetch(
                "SELECT title FROM test_article WHERE title LIKE 'f%'"))
            in_recovery = await new_primary.fetchval("SELECT pg_is_in_recovery()")
        finally:
            await new_primary.close()
        times = sorted(acknowledged.values())
        gap = max((b - a for a, b in itertools.pairwise(times)), default=float("nan"))  # longest with no write acknowledged
        print(f"\nfailover under 10 writers: {dict(outcomes)}; acknowledged {len(acknowledged)} ({len(after)} after the "
              f"promotion); crash + promote took {moments['promoted'] - moments['stopped']:.2f} s; write gap {gap:.2f} s "
              f"(longest time with no write acknowledged); rows on the new primary {len(stored)}; "
              f"target {ctx.target.describe()}")
        assert not in_recovery
        assert not [name for name in outcomes if name.startswith("RAW")], outcomes
        assert after, "no write succeeded after the failover: the layer did not follow the primary"
        assert set(acknowledged) <= set(stored), "an acknowledged write is missing on the new primary"
        assert all(count == 1 for count in stored.values()), "a write was stored twice"
        assert set(stored) <= set(acknowledged) | maybe, "a row nobody was told about"


@pytest.fixture
async def bouncer_database():
    url = await create_pg_database("datalayer_bouncer")
    bouncer = PgBouncer(PG_SERVER.target.port or 5432, pool_size=4)
    try:
        bouncer.start()
        yield bouncer, url.rsplit("/", 1)[1].split("?")[0]
    finally:
        await close_context()
        bouncer.destroy()  # first: PgBouncer holds server connections to the database
        await drop_pg_database(url)


async def _workload(ctx: DataContext, tasks: int) -> Counter[str]:
    """``tasks`` concurrent callers each creating, reading, updating, listing, bulk-creating and running a
    transaction; returns the errors by class and message start."""
    articles = ctx.manager(Article)
    errors: Counter[str] = Counter()

    async def caller(n: int) -> None:
        try:
            row = await articles.create({"title": f"b{n}"})
            assert (await articles.get(row.id)).title == f"b{n}"
            await articles.update(row.id, {"views": n})
            assert (await articles.get(row.id)).views == n
            assert len((await articles.find_many({"title": f"b{n}"})).items) == 1
            await articles.bulk_create([{"title": f"bulk{n}-{i}"} for i in range(20)])
            async with ctx.transaction() as tx:
                inner = tx.manager(Article)
                made = await inner.create({"title": f"tx{n}"})
                await inner.update(made.id, {"status": "published"})
                assert (await inner.get(made.id)).status == "published"
        except Exception as exc:  # noqa: BLE001 - counted: none may happen
            errors[f"{type(exc).__name__}: {str(exc)[:60]}"] += 1

    await asyncio.gather(*(caller(n) for n in range(tasks)))
    return errors


@pytest.mark.postgres_only
async def test_every_path_works_through_pgbouncer_transaction_pooling(backend, bouncer_database):
    bouncer, database = bouncer_database
    tasks = 40
    # migrations hold a session advisory lock, which transaction pooling cannot keep: they run direct
    async with opened(PG_SERVER.url(database)):
        pass
    async with opened(bouncer.url(database), DB_PGBOUNCER=True, DB_MAX_CONNECTIONS=20, migrate=False) as ctx:
        admin = await asyncpg.connect(PG_SERVER.url(database))
        busiest = 0

        async def watch_servers() -> None:
            nonlocal busiest
            while True:
                busiest = max(busiest, await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", database))
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch_servers())
        started = time.perf_counter()
        try:
            errors = await _workload(ctx, tasks)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        took = time.perf_counter() - started
        stored = await ctx.manager(Article).count()
        clients = root_client().pool_stats().size
        await admin.close()
    print(f"\nthrough PgBouncer (pool_mode=transaction, default_pool_size={bouncer.pool_size}): {tasks} concurrent "
          f"callers over {clients} client connections, at most {busiest} server connections; {took:.2f} s; "
          f"errors {dict(errors) or 0}; rows {stored}")
    assert not errors
    assert stored == tasks * 22
    assert clients > bouncer.pool_size >= busiest, "server connections were not shared: the test proved nothing"


@pytest.fixture
def sentinel_group():
    group = RedisSentinelGroup()
    try:
        group.start()
        yield group
    finally:
        group.destroy()


async def test_the_cache_follows_a_sentinel_failover_and_never_serves_what_the_old_master_dropped(
        ctx, sentinel_group):
    """A row is cached; its invalidation is confirmed by the master but never reaches the replica (paused);
    the master dies and Sentinel promotes the replica, which still holds the old row. The cache must not
    serve it. Both engines: the namespace epoch lives in the database tier."""
    group = sentinel_group
    namespace = f"scaling-{uuid.uuid4().hex[:8]}"
    settings = ctx.settings.model_copy(update={"redis_url": SecretStr(group.url)})
    cache = build_cache(settings, CacheSettings(namespace=namespace, timeout_ms=250, invalidation_guard_ms=50,
                                                reset_after_ms=200, epoch_check_ms=60_000, _env_file=None))
    previous = ctx.use_cache(cache)
    try:
        notes = ctx.manager(CachedNote)
        row = await notes.create({"title": "before"})
        await asyncio.sleep(0.1)  # past the write's invalidation guard
        assert (await notes.get(row.id)).title == "before"  # cached on the master
        master = redis.Redis(port=group.master_port, decode_responses=True)
        assert await master.wait(1, 2000) == 1  # ... and on the replica
        group.pause("replica")  # SIGSTOP, then its link cut: it receives nothing more from this master
        await master.execute_command("CLIENT", "KILL", "TYPE", "replica")
        await master.aclose()
        await notes.update(row.id, {"title": "after"})  # invalidated on the master only
        stats_before = cache.stats()
        failover_s = await asyncio.to_thread(group.kill_master_and_resume_replica)
        promoted = redis.Redis(port=group.replica_port, decode_responses=True)
        held = [key for key in await promoted.keys(f"{namespace}*") if str(row.id) in key and ":lock:" not in key]
        stale_there = [key for key in held if "before" in (await promoted.get(key) or "")]
        await promoted.aclose()
        titles: Counter[str] = Counter()
        hits_before = cache.stats()["hits"]
        started, healthy_after = time.monotonic(), None
        while time.monotonic() - started < 10 and (healthy_after is None or titles.total() < 200):
            titles[(await notes.get(row.id)).title] += 1
            if healthy_after is None and (await cache.health())["status"] == "healthy":
                healthy_after = time.monotonic() - started
            await asyncio.sleep(0.005)
        health = await cache.health()
        hits = cache.stats()["hits"] - hits_before
        print(f"\nSentinel failover in {failover_s:.2f} s; the promoted replica still held {len(stale_there)} stale "
              f"cache entr{'y' if len(stale_there) == 1 else 'ies'} of the row; reads after: {dict(titles)}, {hits} cache hits (cache healthy again after {healthy_after:.2f} s); epoch "
              f"{stats_before.get('epoch')} -> {cache.stats().get('epoch')}; cache {health['status']}, master "
              f"{cache.stats()['sentinel']['master']}")
        assert stale_there, "the replica got the invalidation: the test proved nothing"
        assert set(titles) == {"after"}, titles
        assert hits > 0, "the cache served nothing after the failover: the fix is not to stop caching"
        assert health["status"] == "healthy"
        assert cache.stats()["sentinel"]["master"] == f"127.0.0.1:{group.replica_port}"
    finally:
        ctx.use_cache(previous)
        await cache.close()
