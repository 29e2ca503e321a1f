"""Real scale-out topologies on loopback for tests/test_scaling.py: a PostgreSQL primary with a streaming standby
(``pg_basebackup -R``), PgBouncer in transaction pooling mode, and a Redis master, replica and Sentinel. Every server is started on a free port and
stopped by its pid (``pg_ctl`` signals the postmaster named in ``postmaster.pid``; PgBouncer is our child).

Servers run as the ``postgres`` user when the tests run as root (``initdb`` and PgBouncer refuse root).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import ClassVar

import asyncpg
import pytest
import redis

from tests.cache_support import free_port
from tests.private_postgres import PrivatePostgres, _bin

PGBOUNCER = "/usr/sbin/pgbouncer"


class ClusterMember(PrivatePostgres):
    """A private cluster started with extra server settings (``-c name=value``)."""

    def __init__(self, settings: dict[str, str]) -> None:
        super().__init__()
        self.settings = settings

    def start(self) -> None:
        if not os.path.exists(self.data):
            self._run(_bin("initdb"), "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        extra = " ".join(f"-c {name}={value}" for name, value in self.settings.items())
        self._run(_bin("pg_ctl"), "-D", self.data, "-w", "-t", "60", "-l", os.path.join(self.root, "log"),
                  "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off {extra}", "start")
        self.running = True

    @property
    def pid(self) -> int:
        """The postmaster's pid (first line of ``postmaster.pid``)."""
        with open(os.path.join(self.data, "postmaster.pid")) as handle:
            return int(handle.readline())

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.url(), timeout=5)


class ReplicatedPostgres:
    """A primary and a hot standby streaming from it, on two loopback ports.

    ``pg_stat_statements`` is loaded on both, so a test counts the statements the standby served.
    """

    SETTINGS: ClassVar[dict[str, str]] = {"shared_preload_libraries": "pg_stat_statements", "wal_receiver_status_interval": "1",
                "max_standby_streaming_delay": "-1"}

    def __init__(self) -> None:
        self.primary = ClusterMember(self.SETTINGS)
        self.standby = ClusterMember(self.SETTINGS)

    def start(self) -> None:
        self.primary.start()
        self.primary._run(_bin("pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres",
                          "-D", self.standby.data, "-R", "-X", "stream", "--checkpoint=fast")
        self.standby.start()

    def destroy(self) -> None:
        for member in (self.standby, self.primary):
            with contextlib.suppress(Exception):  # the other one must still go
                member.destroy()

    async def prepare(self) -> None:
        """``pg_stat_statements`` created on the primary (it replicates), and the standby streaming."""
        admin = await self.primary.connect()
        try:
            await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        finally:
            await admin.close()
        await self.wait_streaming()
        await self.wait_replayed()

    async def wait_streaming(self, within_s: float = 20) -> None:
        admin = await self.primary.connect()
        try:
            for _ in range(int(within_s / 0.05)):
                if await admin.fetchval("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"):
                    return
                await asyncio.sleep(0.05)
        finally:
            await admin.close()
        raise AssertionError(f"the standby did not start streaming within {within_s} s")

    async def wait_replayed(self, within_s: float = 20) -> None:
        """Until the standby has replayed everything the primary has written now."""
        admin, standby = await self.primary.connect(), await self.standby.connect()
        try:
            target = await admin.fetchval("SELECT pg_current_wal_lsn()")
            for _ in range(int(within_s / 0.02)):
                if await standby.fetchval("SELECT pg_last_wal_replay_lsn()") >= target:  # asyncpg: pg_lsn as int
                    return
                await asyncio.sleep(0.02)
        finally:
            await admin.close()
            await standby.close()
        raise AssertionError(f"the standby did not replay the primary's WAL within {within_s} s")

    async def standby_sql(self, sql: str, *args: object) -> object:
        connection = await self.standby.connect()
        try:
            return await connection.fetchval(sql, *args)
        finally:
            await connection.close()

    def promote_standby(self) -> None:
        self.standby._run(_bin("pg_ctl"), "-D", self.standby.data, "-w", "-t", "60", "promote")


class PgBouncer:
    """PgBouncer in front of a PostgreSQL server, transaction pooling, trust auth, on a free loopback port."""

    def __init__(self, server_port: int, *, pool_size: int = 4) -> None:
        if not os.path.exists(PGBOUNCER):
            pytest.fail(f"PgBouncer is required at {PGBOUNCER} for the PgBouncer tests", pytrace=False)
        self.port = free_port()
        self.root = tempfile.mkdtemp(prefix="datalayer-pgbouncer-")
        self.as_postgres = os.geteuid() == 0
        ini = os.path.join(self.root, "pgbouncer.ini")
        with open(os.path.join(self.root, "userlist.txt"), "w") as handle:
            handle.write('"postgres" ""\n')
        with open(ini, "w") as handle:
            handle.write(
                f"[databases]\n* = host=127.0.0.1 port={server_port}\n\n[pgbouncer]\n"
                f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
                f"auth_type = trust\nauth_file = {self.root}/userlist.txt\npool_mode = transaction\n"
                f"default_pool_size = {pool_size}\nmax_client_conn = 500\nlogfile = {self.root}/pgbouncer.log\n"
                "ignore_startup_parameters = extra_float_digits\n"
            )
        if self.as_postgres:
            for name in (self.root, ini, os.path.join(self.root, "userlist.txt")):
                shutil.chown(name, "postgres", "postgres")
        self.ini = ini
        self.process: subprocess.Popen[bytes] | None = None
        self.pool_size = pool_size

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self.process = subprocess.Popen([PGBOUNCER, self.ini], user="postgres" if self.as_postgres else None,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.process.returncode}: {self.log()}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"pgbouncer did not listen on {self.port} within 10 s: {self.log()}")

    def log(self) -> str:
        try:
            with open(os.path.join(self.root, "pgbouncer.log")) as handle:
                return handle.read()[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGTERM)  # immediate shutdown: server connections closed
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class RedisSentinelGroup:
    """A Redis master, a replica of it and one Sentinel watching them (quorum 1), on loopback ports.

    ``url`` is the cache's ``redis+sentinel://`` URL; ``kill_master_and_resume_replica()`` kills the master by
    pid and waits until the Sentinel has promoted the replica.
    """

    SERVICE = "datalayer"

    def __init__(self) -> None:
        self.root = tempfile.mkdtemp(prefix="datalayer-sentinel-")
        self.master_port, self.replica_port, self.sentinel_port = free_port(), free_port(), free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        server = shutil.which("redis-server")
        if server is None:
            pytest.fail("redis-server is required on PATH for the Redis Sentinel tests", pytrace=False)
        self.server = server

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{self.SERVICE}/0"

    def _redis(self, name: str, port: int, *extra: str) -> None:
        self.processes[name] = subprocess.Popen(
            [self.server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", self.root, *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> None:
        self._redis("master", self.master_port, "--repl-diskless-sync-delay", "0")
        self._redis("replica", self.replica_port, "--replicaof", "127.0.0.1", str(self.master_port))
        conf = os.path.join(self.root, "sentinel.conf")
        with open(conf, "w") as handle:
            handle.write(f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.root}\nlogfile {self.root}/sentinel.log\n"
                         f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.master_port} 1\n"
                         f"sentinel down-after-milliseconds {self.SERVICE} 400\n"
                         f"sentinel failover-timeout {self.SERVICE} 2000\n")
        self.processes["sentinel"] = subprocess.Popen([self.server, conf, "--sentinel"],
                                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait(lambda: self._replica_linked(), 10, "the replica to sync with the master")
        self._wait(lambda: self.master_address() == ("127.0.0.1", self.master_port), 10, "the Sentinel")
        self._wait(self._sentinel_knows_the_replica, 15, "the Sentinel discovering the replica")

    def _sentinel_knows_the_replica(self) -> bool:
        with contextlib.closing(self._client(self.sentinel_port)) as client:
            replicas = client.sentinel_slaves(self.SERVICE)
        return any(int(replica.get("port", 0)) == self.replica_port for replica in replicas)

    def _client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=0.5, decode_responses=True)

    def _replica_linked(self) -> bool:
        with contextlib.closing(self._client(self.replica_port)) as client:
            return client.info("replication").get("master_link_status") == "up"

    def master_address(self) -> tuple[str, int] | None:
        with contextlib.closing(self._client(self.sentinel_port)) as client:
            found = client.execute_command("SENTINEL", "get-master-addr-by-name", self.SERVICE)
        return (found[0], int(found[1])) if found else None

    @staticmethod
    def _wait(ready: Callable[[], bool], within_s: float, what: str) -> float:
        started = time.monotonic()
        while time.monotonic() - started < within_s:
            try:
                if ready():
                    return time.monotonic() - started
            except (redis.RedisError, OSError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"{what} did not happen within {within_s} s")

    def pause(self, name: str) -> None:
        """SIGSTOP a server by pid: it reads nothing, the replication stream included, until resumed."""
        self.processes[name].send_signal(signal.SIGSTOP)

    def kill_master_and_resume_replica(self) -> float:
        """Kill the master (SIGKILL, by pid), resume the replica if paused; the seconds until the Sentinel named
        the replica master (and it answers as one)."""
        process = self.processes.pop("master")
        process.kill()
        process.wait(timeout=10)
        self.processes["replica"].send_signal(signal.SIGCONT)

        def promoted() -> bool:
            if self.master_address() != ("127.0.0.1", self.replica_port):
                return False
            with contextlib.closing(self._client(self.replica_port)) as client:
                return client.info("replication").get("role") == "master"

        try:
            return self._wait(promoted, 20, "the Sentinel failover")
        except AssertionError as exc:
            with open(os.path.join(self.root, "sentinel.log")) as log:
                raise AssertionError(f"{exc}; Sentinel's log: {log.read()[-3000:]}") from None

    def destroy(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGCONT)
            process.kill()
            process.wait(timeout=10)
        self.processes.clear()
        shutil.rmtree(self.root, ignore_errors=True)
