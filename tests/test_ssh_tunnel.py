"""PostgreSQL through the SSH tunnel, for real: a private OpenSSH server (``tests/ssh_support.py``) in front of
the local PostgreSQL, killed with SIGKILL mid-run and started again, keys it refuses, host keys it does not
match, 50 queries sharing one SSH connection, and the ``setup``/``verify``/``status`` commands through it.

PostgreSQL-only: the tunnel forwards a TCP port, and SQLite has no server to reach. Run with ``-s`` to see the
recovery figures.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from datalayer import (
    ConfigurationError,
    ConnectionEvent,
    DatabaseUnavailableError,
    Settings,
    close_context,
    connection_events,
    get_context,
    reset_tunnel,
    shared_tunnel,
)
from datalayer.tunnel import TunnelConfig, TunnelledTarget
from tests.conftest import PG_ADMIN_URL, TEST_MODELS, create_pg_database, drop_pg_database
from tests.models import Article
from tests.ssh_support import PrivateSSHD, listening

pytestmark = pytest.mark.postgres_only

REPO = Path(__file__).resolve().parents[1]
DB_PASSWORD = "db-pw-never-shown-42"  # the local server trusts 127.0.0.1: any password is accepted


@pytest.fixture
def sshd() -> Iterator[PrivateSSHD]:
    server = PrivateSSHD()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def module_database() -> AsyncIterator[str]:
    """One fresh database for the module (dropping one costs seconds here); each test migrates it first."""
    url = await create_pg_database("datalayer_ssh")
    yield url
    await drop_pg_database(url)


@pytest.fixture
async def database(backend, module_database) -> AsyncIterator[str]:
    """The module's database, its URL carrying a password (to prove it never shows); the session's context is
    closed first, and this test's context and tunnel afterwards."""
    await close_context()
    yield module_database.replace("postgres@", f"postgres:{DB_PASSWORD}@", 1)
    await close_context()
    await reset_tunnel()


@pytest.fixture
def events() -> Iterator[list[ConnectionEvent]]:
    seen: list[ConnectionEvent] = []
    unsubscribe = connection_events.subscribe(seen.append)
    yield seen
    unsubscribe()


def kinds(events: list[ConnectionEvent]) -> list[str]:
    return [event.kind for event in events if event.kind.startswith("tunnel_")]


async def wait_for_event(events: list[ConnectionEvent], kind: str, seconds: float = 15.0) -> ConnectionEvent:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [event for event in events if event.kind == kind]
        if found:
            return found[-1]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {kind} event within {seconds} s; saw {kinds(events)}")


async def wait_until(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


def ssh_connections(port: int) -> int:
    """Established TCP connections to 127.0.0.1:``port`` (the client side of each SSH connection)."""
    found = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                found += 1
    return found


async def backends_of(database: str) -> int:
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        return await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", database)
    finally:
        await admin.close()


def key_body(path: Path) -> list[str]:
    """The base64 lines of a private key file: none may appear in any output."""
    return [line for line in path.read_text().splitlines() if line and not line.startswith("-----")]


def assert_no_secret(text: str, sshd: PrivateSSHD) -> None:
    for secret in (DB_PASSWORD, sshd.passphrase, *key_body(sshd.client_key), *key_body(sshd.locked_key)):
        assert secret not in text, "a secret (password, passphrase or key material) was shown"


async def test_queries_go_through_the_tunnel_and_close_context_leaves_nothing_behind(database, sshd, events):
    settings = sshd.settings(database)
    ctx = await get_context(settings=settings, models=TEST_MODELS, migrate=True)
    tunnel = shared_tunnel()
    assert tunnel is not None and tunnel.state == "connected"
    local_port = tunnel.local_port
    assert isinstance(ctx.target, TunnelledTarget) and ctx.target.port == local_port
    assert f"via ssh://root@127.0.0.1:{sshd.port}" in repr(ctx)

    articles = ctx.manager(Article)
    created = await articles.create({"title": "through ssh"})
    assert (await articles.get(created.id)).title == "through ssh"
    assert ssh_connections(sshd.port) == 1
    report = await ctx.health()
    assert report.status == "healthy", report.errors
    check = report.checks["tunnel"]
    assert check.details["server"] == f"127.0.0.1:{sshd.port}" and check.details["state"] == "connected"
    assert check.details["reconnects"] == 0 and check.details["last_round_trip_ms"] > 0
    assert kinds(events) == ["tunnel_connected"]

    await close_context()
    assert shared_tunnel() is None
    assert not listening(local_port), "the tunnel's local port still accepts connections"
    assert await wait_until(lambda: not sshd.children()), f"sshd still serves a connection: {sshd.children()}"
    assert ssh_connections(sshd.port) == 0
    assert kinds(events)[-1] == "tunnel_closed"


async def test_a_killed_ssh_server_fails_calls_fast_then_the_layer_recovers_by_itself(database, sshd, events):
    settings = sshd.settings(database, SSH_RETRY_DELAY=100, SSH_MAX_RETRIES=30)
    ctx = await get_context(settings=settings, models=TEST_MODELS, migrate=True)
    articles = ctx.manager(Article)
    row = await articles.create({"title": "survives the outage"})
    await asyncio.gather(*(articles.get(row.id) for _ in range(5)))  # several pooled connections, all channels
    local_port = shared_tunnel().local_port

    killed_at = time.monotonic()
    sshd.kill()  # the listener and every per-connection sshd: the SSH connection dies as in a crash
    await wait_for_event(events, "tunnel_disconnected")
    assert not listening(local_port), "the local port must refuse while the tunnel is down"
    gap_failures, slowest = 0, 0.0
    for _ in range(3):
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailableError):
            await asyncio.wait_for(articles.get(row.id), 15)  # bounded: a hang fails the test instead
        slowest = max(slowest, time.monotonic() - started)
        gap_failures += 1
    health = await ctx.health()
    assert health.status == "unhealthy" and health.checks["tunnel"].details["state"] == "reconnecting"

    sshd.start()  # the same port, a new process: the supervisor's next attempt gets in
    restarted_at = time.monotonic()
    recovered = None
    for _ in range(400):  # bounded: 400 x 50 ms
        try:
            assert (await articles.get(row.id)).title == "survives the outage"
            recovered = time.monotonic()
            break
        except DatabaseUnavailableError:
            await asyncio.sleep(0.05)
    assert recovered is not None, f"no recovery; events {kinds(events)}"
    print(f"\n{gap_failures} calls in the gap failed fast (slowest {slowest * 1000:.0f} ms); recovered "
          f"{(recovered - restarted_at) * 1000:.0f} ms after sshd restarted, {(recovered - killed_at) * 1000:.0f} ms "
          f"after the kill; events {kinds(events)}")
    assert await articles.create({"title": "written after"})
    assert await wait_until(lambda: "tunnel_reconnected" in kinds(events))
    assert shared_tunnel().stats().reconnects == 1 and shared_tunnel().local_port == local_port
    assert (await ctx.health()).status == "healthy"
    reconnecting = [event for event in events if event.kind == "tunnel_reconnecting"]
    assert reconnecting and all(event.attempt >= 1 and event.delay > 0 for event in reconnecting)


async def test_an_ssh_server_that_never_comes_back_gives_up_after_the_retries(database, sshd, events):
    settings = sshd.settings(database, SSH_MAX_RETRIES=2, SSH_RETRY_DELAY=50)
    ctx = await get_context(settings=settings, models=TEST_MODELS, migrate=True)
    articles = ctx.manager(Article)
    row = await articles.create({"title": "stranded"})
    sshd.kill()

    gave_up = await wait_for_event(events, "tunnel_gave_up")
    assert gave_up.target == f"ssh://root@127.0.0.1:{sshd.port}" and gave_up.error
    assert [event.attempt for event in events if event.kind == "tunnel_reconnecting"] == [1, 2]
    assert shared_tunnel().state == "failed"
    with pytest.raises(DatabaseUnavailableError):
        await asyncio.wait_for(articles.get(row.id), 15)
    report = await ctx.health()
    assert report.status == "unhealthy"
    assert report.checks["tunnel"].status == "unhealthy" and report.checks["tunnel"].details["state"] == "failed"


async def test_a_refused_key_is_a_configuration_error_naming_the_server_never_the_key(database, sshd, events):
    settings = sshd.settings(database, SSH_KEY_PATH=str(sshd.stranger_key))
    with pytest.raises(ConfigurationError) as refused:
        await get_context(settings=settings, models=TEST_MODELS)
    message = str(refused.value)
    assert f"127.0.0.1:{sshd.port}" in message and "SSH_KEY_PATH" in message
    for line in key_body(sshd.stranger_key):
        assert line not in message
    assert "tunnel_reconnecting" not in kinds(events), "a refused key is not retried"
    assert shared_tunnel() is None
    assert await wait_until(lambda: not sshd.children()), f"sshd still serves a connection: {sshd.children()}"


async def test_an_unknown_host_key_is_refused_unless_checking_is_turned_off(database, sshd, tmp_path):
    other_host = tmp_path / "known_hosts"
    stranger = Path(f"{sshd.stranger_key}.pub").read_text().split()
    other_host.write_text(f"[127.0.0.1]:{sshd.port} {stranger[0]} {stranger[1]}\n")  # another key for this host
    with pytest.raises(ConfigurationError) as refused:
        await get_context(settings=sshd.settings(database, SSH_KNOWN_HOSTS=str(other_host)), models=TEST_MODELS)
    assert f"127.0.0.1:{sshd.port}" in str(refused.value) and "SSH_STRICT_HOST_KEY_CHECKING" in str(refused.value)
    with pytest.raises(ConfigurationError, match="SSH_KNOWN_HOSTS .* does not exist"):
        await get_context(settings=sshd.settings(database, SSH_KNOWN_HOSTS=str(tmp_path / "missing")),
                          models=TEST_MODELS)
    assert shared_tunnel() is None

    relaxed = sshd.settings(database, SSH_KNOWN_HOSTS=str(tmp_path / "missing"), SSH_STRICT_HOST_KEY_CHECKING=False)
    ctx = await get_context(settings=relaxed, models=TEST_MODELS, migrate=True)
    row = await ctx.manager(Article).create({"title": "unchecked host"})
    assert (await ctx.manager(Article).get(row.id)).title == "unchecked host"


async def test_a_password_or_a_missing_key_setting_is_refused_before_connecting(database):
    with pytest.raises(ConfigurationError, match="key-based authentication only") as refused:
        await get_context(settings=Settings(_env_file=None, DATABASE_URL=database, SSH_HOST="127.0.0.1",
                                            SSH_USER="root", SSH_KEY_PATH="/nonexistent", SSH_PASSWORD="hunter2-ssh"))
    assert "hunter2-ssh" not in str(refused.value)
    with pytest.raises(ConfigurationError, match="SSH_KEY_PATH"):
        await get_context(settings=Settings(_env_file=None, DATABASE_URL=database, SSH_HOST="127.0.0.1",
                                            SSH_USER="root"))
    with pytest.raises(ConfigurationError, match="SSH tunnel is for PostgreSQL"):
        TunnelConfig.from_settings(Settings(_env_file=None, DATABASE_URL="sqlite:///x.sqlite3", SSH_HOST="h",
                                            SSH_USER="u", SSH_KEY_PATH="/k"))


async def test_fifty_concurrent_queries_share_one_ssh_connection_with_a_pool_of_ten(database, sshd):
    settings = sshd.settings(database, DB_MAX_CONNECTIONS=10)
    ctx = await get_context(settings=settings, models=TEST_MODELS, migrate=True)
    articles = ctx.manager(Article)
    row = await articles.create({"title": "shared"})
    started = time.perf_counter()
    results = await asyncio.gather(*(articles.get(row.id) for _ in range(50)))
    took = time.perf_counter() - started
    print(f"\n50 concurrent gets through one SSH connection, pool of 10: {took * 1000:.0f} ms")
    assert [result.title for result in results] == ["shared"] * 50
    assert ssh_connections(sshd.port) == 1
    assert 1 <= await backends_of(ctx.target.database) <= 10
    assert ctx.pool_stats().size <= 10


async def test_an_encrypted_key_works_and_no_secret_reaches_any_output(database, sshd, events, caplog):
    caplog.set_level(logging.DEBUG)
    settings = sshd.settings(database, SSH_KEY_PATH=str(sshd.locked_key), SSH_KEY_PASSPHRASE=sshd.passphrase)
    ctx = await get_context(settings=settings, models=TEST_MODELS, migrate=True)
    await ctx.manager(Article).create({"title": "locked"})
    tunnel = shared_tunnel()
    report = await ctx.health()
    assert report.checks["tunnel"].status == "healthy"
    shown = [repr(settings), str(settings.target), repr(settings.target), repr(ctx), repr(tunnel),
             repr(tunnel.config), str(tunnel.stats()), report.model_dump_json(), *map(repr, events), caplog.text]
    await close_context()
    wrong = sshd.settings(database, SSH_KEY_PATH=str(sshd.locked_key), SSH_KEY_PASSPHRASE="not the passphrase")
    with pytest.raises(ConfigurationError, match="SSH_KEY_PASSPHRASE") as refused:
        await get_context(settings=wrong, models=TEST_MODELS)
    shown.append(str(refused.value))
    assert_no_secret("\n".join(shown), sshd)


def cli(sshd: PrivateSSHD, url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m datalayer ...`` as a user runs it, with the SSH_* settings of ``sshd`` (core pack only)."""
    environ = {**{k: v for k, v in os.environ.items() if k != "DATALAYER_MIGRATIONS_DIR"},
               "DATABASE_URL": url, "DATALAYER_ENV": "development", "DATALAYER_APPS": "core", "BCRYPT_ROUNDS": "4",
               "COLUMNS": "200", "SSH_HOST": "127.0.0.1", "SSH_PORT": str(sshd.port), "SSH_USER": "root",
               "SSH_KEY_PATH": str(sshd.client_key), "SSH_KNOWN_HOSTS": str(sshd.known_hosts),
               "SSH_MAX_RETRIES": "1", "SSH_RETRY_DELAY": "50", **env}
    return subprocess.run([sys.executable, "-m", "datalayer", *args], check=False, capture_output=True, text=True,
                          env=environ, cwd=REPO, timeout=120)


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


async def test_setup_verify_and_status_run_through_the_tunnel_and_say_when_there_is_nothing_to_do(database, sshd):
    name = f"datalayer_ssh_setup_{uuid.uuid4().hex[:8]}"  # made by `setup --test`, then set up as an app's own
    url = database.rsplit("/", 1)[0] + f"/{name}"
    outputs: list[str] = []
    try:
        created = succeeded(cli(sshd, database, "setup", "--test", TEST_DATABASE_URL=url))
        assert f"Created the test database {name}" in created and "migration(s) applied to" in created
        assert f"via ssh://root@127.0.0.1:{sshd.port}" in created
        exists = succeeded(cli(sshd, database, "setup", "--test", TEST_DATABASE_URL=url))
        assert f"{name} already exists" in exists and "Nothing to do" in exists

        seeded = succeeded(cli(sshd, url, "setup"))
        assert "already up to date" in seeded and "created" in seeded and "Setup complete" in seeded
        again = succeeded(cli(sshd, url, "setup"))
        assert "already up to date" in again and "unchanged" in again and "Nothing to do" in again

        verified = succeeded(cli(sshd, url, "verify"))
        assert f"tunnel       ssh://root@127.0.0.1:{sshd.port} -> 127.0.0.1:5432 connected, round trip" in verified
        status = succeeded(cli(sshd, url, "status"))
        assert "tunnel       ssh://root@" in status and "0 pending" in status

        refused = cli(sshd, url, "verify", SSH_KEY_PATH=str(sshd.stranger_key))
        assert refused.returncode == 1
        assert refused.stderr.count("\n") == 1 and "refused the key" in refused.stderr, refused.stderr
        outputs = [created, exists, seeded, again, verified, status, refused.stdout, refused.stderr]
        assert_no_secret("\n".join(outputs), sshd)
    finally:
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
