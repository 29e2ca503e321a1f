"""datalayer's suite is an app on datalayer, tested with datalayer's own pytest plugin (``datalayer.testing``):
every data test runs on SQLite and on PostgreSQL (``datalayer_engines`` in pyproject.toml;
``DATALAYER_TEST_ENGINES=sqlite`` runs one engine locally), one database per engine for the session, built by
the migrations, every table emptied before each test (``ctx``).

PostgreSQL is never skipped: if it cannot be reached the run fails (CI must prove both engines).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from datalayer import Settings
from datalayer.errors import DatabaseUnavailableError
from datalayer.project import Project, load_project
from datalayer.testing import TestDatabase, empty_tables, postgres_server, settings_for
from tests.cache_support import GUARD, PrivateRedis, redis_cache, require_redis

# The suite's models (tests/models.py) have their own migration history: every test database is built by the
# migrations (datalayer's packs, then tests/migrations/models/), as production is. Tests that play another app
# (a copy of examples/app, a temporary one) unset it.
SUITE_MIGRATIONS = str(Path(__file__).resolve().parent / "migrations")
os.environ["DATALAYER_MIGRATIONS_DIR"] = SUITE_MIGRATIONS

TEST_MODELS = ("tests.models",)
PG_SERVER = postgres_server()  # DATALAYER_TEST_PG_URL, else TEST_DATABASE_URL / TEST_POSTGRES_*, else local
PG_ADMIN_URL = PG_SERVER.url(PG_SERVER.target.database)
_empty_tables = empty_tables


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("datalayer"):
        raise pytest.UsageError("datalayer's pytest plugin is not registered: reinstall (pip install -e '.[test]')")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("postgres_only"):
            item.add_marker(pytest.mark.datalayer_engines("postgres"))


@dataclass
class Backend:
    """The session database of this pass, as the suite's tests name it."""

    name: str
    settings: Settings
    url: str

    @property
    def is_postgres(self) -> bool:
        return self.name == "postgres"


def make_settings(url: str, **overrides: object) -> Settings:
    return settings_for(url, _env_file=None, **overrides)


async def create_pg_database(prefix: str = "datalayer_test") -> str:
    """A fresh PostgreSQL database; returns its URL. Fails the run if the server is unreachable."""
    try:
        return await PG_SERVER.create_database(prefix)
    except DatabaseUnavailableError as exc:
        pytest.fail(f"PostgreSQL is required for the test suite: {exc}", pytrace=False)


async def drop_pg_database(url: str) -> None:
    await PG_SERVER.drop_database(url)


@pytest.fixture(scope="session")
def datalayer_project() -> Project:
    """The plugin's project: datalayer's packs plus the suite's models and their history."""
    return load_project(models=TEST_MODELS)


@pytest.fixture(scope="session")
def backend(datalayer_database: TestDatabase) -> Backend:
    return Backend(datalayer_database.engine, datalayer_database.settings, datalayer_database.url)


@pytest.fixture
def empty_database_url(datalayer_empty_database: TestDatabase) -> str:
    """The URL of a brand-new database with no tables, on each engine (for commands that build the schema)."""
    return datalayer_empty_database.url


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
    monkeypatch.delenv("DATALAYER_MIGRATIONS_DIR", raising=False)  # the app's own, from its pyproject.toml
    source = Path(__file__).resolve().parents[1] / "examples" / "app"
    target = tmp_path / "notes_app"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3*", "*.jsonl", "tests"))
    return target


@pytest.fixture
async def cached_ctx(ctx):
    """``ctx`` with a Redis cache in a private namespace (the default test cache is in-process), its write
    guard ``GUARD`` seconds."""
    require_redis()
    cache = redis_cache(timeout_s=0.5, invalidation_guard=GUARD)
    previous = ctx.use_cache(cache)
    yield ctx
    ctx.use_cache(previous)
    await cache.invalidate_prefix("")
    await cache.close()
