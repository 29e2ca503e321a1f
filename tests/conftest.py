"""Every data test runs on both backends: a session-scoped ``backend`` fixture parametrized over SQLite
and PostgreSQL, one fresh database per backend, tables emptied before each test.

PostgreSQL is never skipped: if it cannot be reached the run fails (CI must prove both backends).
Set ``DATALAYER_TEST_BACKENDS=sqlite`` locally to run one backend only.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from tortoise.connection import get_connection

from datalayer import Settings, close_context, get_context
from datalayer import context as context_module
from datalayer.context import DataContext
from tests.cache_support import PrivateRedis

# The suite is an app on datalayer: its models (tests/models.py) have their own migration history, and every
# test database is built by the migrations (datalayer's packs, then tests/migrations/models/), as production is.
# Tests that play another app (a copy of examples/app, a temporary one) unset it.
SUITE_MIGRATIONS = str(Path(__file__).resolve().parent / "migrations")
os.environ["DATALAYER_MIGRATIONS_DIR"] = SUITE_MIGRATIONS

PG_ADMIN_URL = os.environ.get("DATALAYER_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
BACKENDS = [b.strip() for b in os.environ.get("DATALAYER_TEST_BACKENDS", "sqlite,postgres").split(",") if b.strip()]
TEST_MODELS = ("tests.models",)


@dataclass
class Backend:
    name: str
    settings: Settings
    url: str

    @property
    def is_postgres(self) -> bool:
        return self.name == "postgres"


def make_settings(url: str, **overrides: object) -> Settings:
    env = {"DATALAYER_ENV": "test", "DB_RETRY_ATTEMPTS": 1, "BCRYPT_ROUNDS": 4, **overrides}
    return Settings(DATABASE_URL=url, _env_file=None, **env)


async def create_pg_database(prefix: str = "datalayer_test") -> str:
    """A fresh PostgreSQL database; returns its URL. Fails the run if the server is unreachable."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        admin = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is required for the test suite and is unreachable at {PG_ADMIN_URL}: {exc}",
                    pytrace=False)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


async def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest_asyncio.fixture(scope="session", params=BACKENDS)
async def backend(request, tmp_path_factory) -> Backend:
    if request.param == "postgres":
        url = await create_pg_database()
    else:
        url = f"sqlite://{Path(tmp_path_factory.mktemp('sqlite')) / 'test.sqlite3'}"
    yield Backend(request.param, make_settings(url), url)
    await close_context()
    if request.param == "postgres":
        await drop_pg_database(url)


@pytest_asyncio.fixture(params=BACKENDS)
async def empty_database_url(request, tmp_path) -> str:
    """The URL of a brand-new database with no tables, on each backend (for commands that build the schema)."""
    if request.param == "postgres":
        url = await create_pg_database("datalayer_empty")
        yield url
        await drop_pg_database(url)
    else:
        yield f"sqlite://{tmp_path / 'empty.sqlite3'}"


async def _empty_tables(context: DataContext) -> None:
    tables = [model._meta.db_table for model in context.models]
    connection = get_connection("default")
    if context.target.is_postgres:
        quoted = ", ".join(f'"{table}"' for table in tables)
        await connection.execute_script(f"TRUNCATE {quoted} CASCADE")
    else:
        statements = "".join(f'DELETE FROM "{t}";' for t in tables)
        await connection.execute_script("PRAGMA foreign_keys=OFF")
        try:
            await connection.execute_script(statements)
        finally:
            await connection.execute_script("PRAGMA foreign_keys=ON")


@pytest_asyncio.fixture
async def ctx(backend: Backend) -> DataContext:
    """The process context on this backend (schema built by the migrations), with every table empty."""
    current = context_module._current
    if current is not None and (current.settings is not backend.settings or current.project.models != TEST_MODELS):
        await close_context()  # a test left another backend's (or another app's) context open
    context = await get_context(settings=backend.settings, models=TEST_MODELS, migrate=True)
    await _empty_tables(context)
    yield context


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("postgres_only") and "[sqlite]" in item.nodeid:
            item.add_marker(pytest.mark.skip(reason="PostgreSQL-only feature; runs in the [postgres] pass"))


@pytest.fixture
def private_redis():
    """A throwaway redis-server of the test's own, to kill, pause and restart (stopped afterwards)."""
    server = PrivateRedis()
    server.start()
    yield server
    if server.process is not None:
        server.resume()
        server.kill()


@pytest.fixture
def app_folder(tmp_path, monkeypatch) -> Path:
    """A copy of ``examples/app`` (a user's app: its own models, migrations and seeds) outside the repository."""
    import shutil

    monkeypatch.delenv("DATALAYER_MIGRATIONS_DIR", raising=False)  # the app's own, from its pyproject.toml
    source = Path(__file__).resolve().parents[1] / "examples" / "app"
    target = tmp_path / "notes_app"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3*", "*.jsonl"))
    return target
