"""The databases a test session runs on, and which engines run.

PostgreSQL: a database created for the session on a server found from the conventional variables (or
``--datalayer-postgres-url``), dropped ``WITH (FORCE)`` at the end. SQLite: a file in pytest's temporary
folder. Nothing here imports pytest: the plugin (``datalayer.testing.plugin``) turns these errors into
failures, and a suite's own helpers can call the same functions.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import asyncpg

from datalayer.errors import ConfigurationError, DatabaseUnavailableError
from datalayer.settings import DatabaseTarget, Settings, parse_database_url

ENGINES = ("sqlite", "postgres")
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_PREFIX = "datalayer_test"
TEST_BCRYPT_ROUNDS = 4
#: the environment variables naming the engines to run, newest name first
ENGINE_VARIABLES = ("DATALAYER_TEST_ENGINES", "DATALAYER_TEST_BACKENDS")
_PREFIX = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")
_CONNECT_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass(frozen=True)
class TestDatabase:
    """One database tests run on: its engine, its URL and the ``Settings`` a test context opens it with."""

    __test__ = False  # not a test class, even when imported into a test module

    engine: str
    """``"sqlite"`` or ``"postgres"``."""
    url: str
    settings: Settings

    @property
    def is_postgres(self) -> bool:
        return self.engine == "postgres"


def settings_for(url: str, **overrides: object) -> Settings:
    """The settings a test context uses on ``url``: the environment's, with ``DATALAYER_ENV=test``, the
    cheapest bcrypt cost (``BCRYPT_ROUNDS=4``) and one connection attempt (an unreachable server fails at once)."""
    values = {"DATALAYER_ENV": "test", "DB_RETRY_ATTEMPTS": 1, "BCRYPT_ROUNDS": TEST_BCRYPT_ROUNDS, **overrides}
    return Settings(DATABASE_URL=url, **values)


def parse_engines(value: str, source: str) -> tuple[str, ...]:
    """``"sqlite,postgres"`` -> ``("sqlite", "postgres")``.

    Raises:
        ConfigurationError: an unknown engine or an empty list, naming ``source``.
    """
    names = tuple(dict.fromkeys(part.strip().lower() for part in value.split(",") if part.strip()))
    unknown = [name for name in names if name not in ENGINES]
    if unknown or not names:
        raise ConfigurationError(
            f"{source} must list engines among {', '.join(ENGINES)} (comma-separated), got {value!r}"
        )
    return names


def select_engines(option: str | None = None, configured: str | None = None) -> tuple[str, ...]:
    """The engines a session runs every database test on.

    ``option`` (``--datalayer-engines``) first, then ``DATALAYER_TEST_ENGINES`` (or its older name
    ``DATALAYER_TEST_BACKENDS``), then ``configured`` (the ``datalayer_engines`` ini option); with none of
    them, PostgreSQL when the environment names a PostgreSQL test server (see ``postgres_server``), else SQLite.
    """
    if option:
        return parse_engines(option, "--datalayer-engines")
    for variable in ENGINE_VARIABLES:
        if os.environ.get(variable, "").strip():
            return parse_engines(os.environ[variable], variable)
    if configured and configured.strip():
        return parse_engines(configured, "the datalayer_engines ini option")
    return ("postgres",) if _server_from_environment() is not None else ("sqlite",)


@dataclass(frozen=True)
class PostgresServer:
    """Where test databases are created: the credentials, and the database to connect to for
    ``CREATE DATABASE`` (``postgres`` when that one does not exist)."""

    target: DatabaseTarget
    source: str
    """Where it was configured (an option or a variable), for messages."""

    def describe(self) -> str:
        """The server without its password."""
        return f"{self.target.describe()} (from {self.source})"

    def url(self, database: str) -> str:
        """The URL of ``database`` on this server, with the same credentials and options."""
        target = self.target
        auth = quote(target.user or "", safe="")
        if target.password is not None:
            auth += ":" + quote(target.password.get_secret_value(), safe="")
        host = f"[{target.host}]" if ":" in (target.host or "") else target.host
        options = {**target.options, **({"sslmode": target.ssl} if target.ssl else {})}
        query = f"?{urlencode(options)}" if options else ""
        return f"postgres://{auth + '@' if auth else ''}{host}:{target.port}/{quote(database, safe='')}{query}"

    async def _connect(self) -> asyncpg.Connection:
        target = self.target
        password = target.password.get_secret_value() if target.password else None
        options = {"host": target.host, "port": target.port, "user": target.user, "password": password,
                   "ssl": target.ssl, "timeout": 5}
        problem = None
        try:
            try:
                return await asyncpg.connect(database=target.database, **options)
            except asyncpg.InvalidCatalogNameError:
                if target.database == "postgres":
                    raise
                return await asyncpg.connect(database="postgres", **options)
        except _CONNECT_ERRORS as exc:
            problem = f"{exc.__class__.__name__}: {exc}"
            if password:
                problem = problem.replace(password, "***")
        raise DatabaseUnavailableError(f"PostgreSQL is unreachable at {self.describe()}: {problem}")

    async def create_database(self, prefix: str = DEFAULT_PREFIX) -> str:
        """Create ``<prefix>_<pid>_<random>`` and return its URL (the pid keeps parallel workers apart).

        Raises:
            DatabaseUnavailableError: the server does not answer.
            ConfigurationError: the server refused (the role needs ``CREATEDB``).
        """
        if not _PREFIX.match(prefix):
            raise ConfigurationError(f"a test database prefix is lower-case letters, digits and _, got {prefix!r}")
        name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        admin = await self._connect()
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.PostgresError as exc:
            raise ConfigurationError(
                f"cannot create the test database {name} on {self.describe()} ({exc}); "
                "the role needs CREATEDB"
            ) from None
        finally:
            await admin.close()
        return self.url(name)

    async def drop_database(self, url: str) -> None:
        """Drop the database ``url`` names, closing the connections still open on it."""
        name = parse_database_url(url).database.replace('"', '""')
        admin = await self._connect()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def postgres_server(option: str | None = None, configured: str | None = None) -> PostgresServer:
    """The server test databases are created on.

    ``option`` (``--datalayer-postgres-url``) first; then ``DATALAYER_TEST_PG_URL``, ``TEST_DATABASE_URL``
    (a ``postgres://`` one) or ``TEST_POSTGRES_HOST``/``PORT``/``USER``/``PASSWORD``/``DB``; then
    ``configured`` (the ``datalayer_postgres_url`` ini option); else ``postgres://postgres@127.0.0.1:5432/postgres``.

    Raises:
        ConfigurationError: a malformed URL, naming where it came from (never its password).
    """
    if option:
        return PostgresServer(parse_database_url(option, source="--datalayer-postgres-url"), "--datalayer-postgres-url")
    found = _server_from_environment()
    if found is not None:
        return found
    if configured and configured.strip():
        source = "the datalayer_postgres_url ini option"
        return PostgresServer(parse_database_url(configured.strip(), source=source), source)
    return PostgresServer(parse_database_url(DEFAULT_POSTGRES_URL), "the default")


def _server_from_environment() -> PostgresServer | None:
    """The PostgreSQL test server the environment names, if it names one (see ``postgres_server``)."""
    url = os.environ.get("DATALAYER_TEST_PG_URL", "").strip()
    if url:
        return PostgresServer(parse_database_url(url, source="DATALAYER_TEST_PG_URL"), "DATALAYER_TEST_PG_URL")
    settings = Settings(DATALAYER_ENV="test")  # reads TEST_* from the environment and .env, as the app would
    if settings.test_database_url is not None:
        target = parse_database_url(settings.test_database_url.get_secret_value(), source="TEST_DATABASE_URL")
        return PostgresServer(target, "TEST_DATABASE_URL") if target.is_postgres else None
    parts = (settings.test_db_host, settings.test_db_port, settings.test_db_name, settings.test_db_user,
             settings.test_db_password)
    if all(part is None for part in parts):
        return None
    target = DatabaseTarget("postgres", host=settings.db_host, port=settings.db_port,
                            database=settings.test_db_name or "postgres", user=settings.db_user,
                            password=settings.db_password)
    return PostgresServer(target, "TEST_POSTGRES_*")


@asynccontextmanager
async def fresh_database(
    engine: str, folder: Path, server: PostgresServer | None = None, *, prefix: str = DEFAULT_PREFIX,
    **settings_overrides: object,
) -> AsyncIterator[TestDatabase]:
    """A new, empty database on ``engine`` for the block: on PostgreSQL created on ``server`` and dropped
    afterwards; on SQLite a file in ``folder``."""
    if engine not in ENGINES:
        raise ConfigurationError(f"unknown engine {engine!r}; choose among {', '.join(ENGINES)}")
    if engine == "sqlite":
        url = f"sqlite://{Path(folder).resolve() / f'{prefix}.sqlite3'}"
        yield TestDatabase(engine, url, settings_for(url, **settings_overrides))
        return
    server = server or postgres_server()
    url = await server.create_database(prefix)
    try:
        yield TestDatabase(engine, url, settings_for(url, **settings_overrides))
    finally:
        await server.drop_database(url)
