"""``setup``: a database ready in one step (the seed project's ``npm run setup`` and ``npm run setup:test``).

``datalayer setup`` applies the pending migrations then the seed set; ``datalayer setup --test`` creates the
test database when it is missing (``TEST_POSTGRES_DB``/``TEST_POSTGRES_USER``/``TEST_POSTGRES_PASSWORD`` or
``TEST_DATABASE_URL``) and migrates it. Both are idempotent: a second run changes nothing and says so. With
``SSH_HOST`` set, everything goes through the SSH tunnel.
"""

from __future__ import annotations

import asyncio

import asyncpg
import typer
from rich.markup import escape

from datalayer import migrations, seeding
from datalayer.cli.app import command, console, current_project, fail, load_settings, run, user_errors
from datalayer.cli.seed import ENV_HELP, _print_report, _seed
from datalayer.connection import scrub
from datalayer.errors import ConfigurationError, DatabaseUnavailableError
from datalayer.project import Project
from datalayer.settings import DatabaseTarget, Settings
from datalayer.tunnel.target import database_target

_CONNECT_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


@command("setup")
def setup_command(
    test: bool = typer.Option(False, "--test", help="create (if missing) and migrate the test database: "
                                                    "TEST_POSTGRES_DB/USER/PASSWORD or TEST_DATABASE_URL"),
    env: str = typer.Option(None, "--env", "-e", help=ENV_HELP + "; 'none' skips seeding"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="list every seeded row"),
) -> None:
    """Apply every pending migration, then the seed set; --test prepares the test database instead. Idempotent."""
    if test:
        _setup_test_database()
        return
    settings = load_settings()
    project = current_project()
    with user_errors():
        migrations.history(project)  # refuses a broken history (two files numbered alike) before connecting
    applied, report = run(_setup(settings, project, env))
    _print_applied(applied, settings)
    if report is not None:
        _print_report(report, verbose)
    changed = applied or (report is not None and any(report.counts().get(action) for action in ("created", "updated")))
    console.print("Setup complete." if changed else "Nothing to do: the database was already set up.", markup=False)


async def _setup(settings: Settings, project: Project, environment: str | None) -> tuple[list[str], seeding.SeedReport | None]:
    applied = await migrations.upgrade(settings, project)
    if environment == "none":
        return applied, None
    return applied, await _seed(settings, environment or settings.environment, force=False, clear=False)


def _print_applied(applied: list[str], settings: Settings) -> None:
    for name in applied:
        console.print(f"Applied {escape(name)}")
    console.print(f"{len(applied)} migration(s) applied to {settings.target.describe()}." if applied
                  else f"Migrations: already up to date on {settings.target.describe()}.", markup=False)


def _setup_test_database() -> None:
    with user_errors():
        app_target = Settings(DATALAYER_ENV="development").target  # the app's own database: TEST_* ignored
    settings = load_settings(DATALAYER_ENV="test")  # TEST_* are read in the test environment only
    if settings.test_database_url is None and settings.test_db_name is None:
        raise fail("setup --test needs the test database: set TEST_POSTGRES_DB (with TEST_POSTGRES_USER and "
                   "TEST_POSTGRES_PASSWORD) or TEST_DATABASE_URL")
    if _same_database(app_target, settings.target):
        raise fail(f"the test database {settings.target.describe()} is the app's own database; name a separate one "
                   "in TEST_POSTGRES_DB or TEST_DATABASE_URL (tests empty its tables)")
    project = current_project()
    with user_errors():
        migrations.history(project)
    created, applied = run(_setup_test(settings, project))
    target = database_target(settings)
    if target.is_postgres:
        console.print(f"Created the test database {target.database}." if created
                      else f"The test database {target.database} already exists.", markup=False)
    _print_applied(applied, settings)
    console.print("Test database ready." if created or applied else
                  "Nothing to do: the test database was already set up.", markup=False)


def _same_database(one: DatabaseTarget, other: DatabaseTarget) -> bool:
    if one.is_postgres != other.is_postgres:
        return False
    return (one.host, one.port, one.database) == (other.host, other.port, other.database)


async def _setup_test(settings: Settings, project: Project) -> tuple[bool, list[str]]:
    created = await ensure_database(settings)
    return created, await migrations.upgrade(settings, project)


async def ensure_database(settings: Settings) -> bool:
    """Create the PostgreSQL database ``settings`` name unless it exists; ``True`` when it was created.

    Connects as the configured user, to the database itself first, else to ``postgres`` to create it.

    Raises:
        DatabaseUnavailableError: the server did not answer.
        ConfigurationError: the user may not create databases (the message says how to create it once).
    """
    target = settings.target
    if not target.is_postgres:
        return False  # SQLite creates its file on first use
    password = target.password.get_secret_value() if target.password else None
    options = {"host": target.host, "port": target.port, "user": target.user, "password": password,
               "ssl": target.ssl, "timeout": settings.db_connection_timeout_ms / 1000}
    name = target.database
    problem = None
    try:
        try:
            connection = await asyncpg.connect(database=name, **options)
        except asyncpg.InvalidCatalogNameError:
            admin = await asyncpg.connect(database="postgres", **options)
        else:
            await connection.close()
            return False
    except _CONNECT_ERRORS as exc:
        problem = scrub(f"{exc.__class__.__name__}: {exc}", settings)
    if problem is not None:
        raise DatabaseUnavailableError(f"cannot connect to {target.describe()} to create it: {problem}")
    quoted = name.replace('"', '""')
    try:
        await admin.execute(f'CREATE DATABASE "{quoted}"')
    except asyncpg.DuplicateDatabaseError:
        return False  # created meanwhile by someone else
    except asyncpg.InsufficientPrivilegeError:
        raise ConfigurationError(
            f"user {target.user} may not create the test database {name}; create it once as a superuser "
            f'(CREATE DATABASE "{quoted}" OWNER "{target.user}") or grant the user CREATEDB'
        ) from None
    finally:
        await admin.close()
    return True
