"""datalayer's pytest plugin (the ``datalayer`` entry point in ``pytest11``): installed with datalayer, so every
suite has it; it does nothing until a test asks for one of its fixtures (except, in an app whose
``pyproject.toml`` holds both ``[tool.datalayer]`` and the pytest configuration, putting the app's ``src`` on
``sys.path``).

Fixtures:
    ``ctx`` / ``datalayer_context``: the process ``DataContext`` with the app's models (``[tool.datalayer]``),
        on the session's database, isolated from the other tests (``datalayer_isolation``).
    ``datalayer_database`` (session): a ``TestDatabase`` (engine, url, settings) built by the migrations.
    ``datalayer_empty_database``: a brand-new database without tables, for the test alone.
    ``datalayer_engine`` (session): ``"sqlite"`` or ``"postgres"``; every test using a database fixture runs
        once per engine chosen (``--datalayer-engines``, ``DATALAYER_TEST_ENGINES``, ``datalayer_engines``).
    ``datalayer_project`` (session): the app's ``Project``; override it to load other models.

A PostgreSQL server that does not answer fails the tests that need it; they are never skipped.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from datalayer.context import DataContext, close_context, get_context
from datalayer.errors import ConfigurationError, DatabaseUnavailableError
from datalayer.migration_files import version_files
from datalayer.project import Project, load_project, read_section
from datalayer.testing.databases import (
    PostgresServer,
    TestDatabase,
    fresh_database,
    postgres_server,
    select_engines,
)
from datalayer.testing.isolation import ISOLATION_MODES, empty_tables, rolled_back

try:
    import pytest_asyncio

    _ASYNCIO = int(pytest_asyncio.__version__.split(".")[0]) >= 1
except (ImportError, ValueError):  # reported when a test asks for a database fixture, not at pytest's start
    _ASYNCIO = False


def _async_fixture(*, scope: str = "function", loop_scope: str) -> Any:
    if _ASYNCIO:
        return pytest_asyncio.fixture(scope=scope, loop_scope=loop_scope)  # type: ignore[call-overload]
    return pytest.fixture(scope=scope)  # type: ignore[call-overload]  # never set up: pytest_runtest_setup fails the test first


_ENGINES = pytest.StashKey[tuple[str, ...]]()
_DIRTY = pytest.StashKey[set[str]]()
"""Engines whose session database may hold rows (a rolled-back test empties it first)."""
_PROJECT_SET = pytest.StashKey[bool]()

LOOP_ADVICE = (
    "datalayer's fixtures keep one connection pool for the whole session, on the session's event loop: "
    "tests using them must run on it too. Add to your pytest configuration "
    "(pyproject.toml [tool.pytest.ini_options]): asyncio_default_test_loop_scope = \"session\" and "
    "asyncio_default_fixture_loop_scope = \"session\" (or mark the test @pytest.mark.asyncio(loop_scope=\"session\"))"
)


class DatalayerTestWarning(UserWarning):
    """Something the plugin did for the suite that the app should know about."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("datalayer", "datalayer test databases")
    group.addoption("--datalayer-engines", metavar="ENGINES", default=None,
                    help="engines to run database tests on: sqlite, postgres or sqlite,postgres "
                         "(default: DATALAYER_TEST_ENGINES, the datalayer_engines ini option, else postgres "
                         "when TEST_DATABASE_URL/TEST_POSTGRES_* name a server, else sqlite)")
    group.addoption("--datalayer-postgres-url", metavar="URL", default=None,
                    help="PostgreSQL server (and database to connect to) where each session creates its "
                         "own database (default: DATALAYER_TEST_PG_URL, TEST_DATABASE_URL, TEST_POSTGRES_*, "
                         "postgres://postgres@127.0.0.1:5432/postgres)")
    parser.addini("datalayer_engines", "engines to run database tests on (sqlite,postgres)", default="")
    parser.addini("datalayer_postgres_url", "PostgreSQL server where test databases are created", default="")
    parser.addini("datalayer_isolation", "truncate (empty every table before each test) or rollback "
                  "(run each test in a transaction rolled back afterwards)", default="truncate")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "datalayer_isolation(mode): 'truncate' or 'rollback' for this test")
    config.addinivalue_line("markers", "datalayer_engines(*engines): run this test on these engines only")
    config.stash[_DIRTY] = set()
    config.stash[_PROJECT_SET] = _find_app_project(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(_PROJECT_SET, False):
        os.environ.pop("DATALAYER_PROJECT", None)


def _find_app_project(config: pytest.Config) -> bool:
    """When the pytest configuration file is an app's ``pyproject.toml`` (it has ``[tool.datalayer]``):
    make it the project (``DATALAYER_PROJECT``, so ``pytest app/tests`` works from any folder) and put the
    app's ``src`` on ``sys.path`` so test modules import its models, as the CLI does. Returns whether
    ``DATALAYER_PROJECT`` was set here."""
    inipath = config.inipath
    if inipath is None or inipath.name != "pyproject.toml":
        return False
    try:
        if not read_section(inipath):
            return False
    except ConfigurationError:  # not ours to report: pytest itself read this file
        return False
    set_here = "DATALAYER_PROJECT" not in os.environ
    if set_here:
        os.environ["DATALAYER_PROJECT"] = str(inipath)
    try:
        source = str(load_project().src)
    except ConfigurationError:  # the fixtures report it, to the tests that need the project
        return set_here
    if source not in sys.path:
        sys.path.insert(0, source)
    return set_here


def _engines(config: pytest.Config) -> tuple[str, ...]:
    if _ENGINES not in config.stash:
        try:
            config.stash[_ENGINES] = select_engines(config.getoption("datalayer_engines"),
                                                    config.getini("datalayer_engines"))
        except ConfigurationError as exc:
            raise pytest.UsageError(str(exc)) from None
    return config.stash[_ENGINES]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test using a database fixture runs once per engine, grouped by engine (one database each)."""
    if "datalayer_engine" not in metafunc.fixturenames:
        return
    engines = _engines(metafunc.config)
    metafunc.parametrize("datalayer_engine", engines, indirect=True, scope="session", ids=list(engines))


def _isolation(item: pytest.Item) -> str:
    marker = item.get_closest_marker("datalayer_isolation")
    if marker is not None:
        value, source = (marker.args[0] if marker.args else marker.kwargs.get("mode")), "datalayer_isolation marker"
    else:
        value, source = item.config.getini("datalayer_isolation") or "truncate", "datalayer_isolation ini option"
    if value not in ISOLATION_MODES:
        pytest.fail(f"the {source} must be 'truncate' or 'rollback', got {value!r}", pytrace=False)
    return value


def _engine_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("datalayer_engine") if callspec is not None else None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before a database test: pytest-asyncio and the session loop are there, the engine is one the test
    runs on, and the session database is remembered as holding rows unless the test is rolled back."""
    if "datalayer_engine" not in getattr(item, "fixturenames", ()):
        return
    if not (_ASYNCIO and item.config.pluginmanager.has_plugin("asyncio")):
        pytest.fail("datalayer's fixtures need pytest-asyncio 1.0 or newer: pip install 'pytest-asyncio>=1.0'",
                    pytrace=False)
    marker = item.get_closest_marker("asyncio")
    if marker is not None:
        scope = marker.kwargs.get("loop_scope") or marker.kwargs.get("scope") or _ini(item.config,
                                                                                      "asyncio_default_test_loop_scope")
        if scope != "session":
            pytest.fail(f"{item.nodeid} runs on a {scope or 'function'}-scoped event loop. {LOOP_ADVICE}", pytrace=False)
    engine = _engine_of(item)
    only = item.get_closest_marker("datalayer_engines")
    if only is not None and engine is not None and engine not in only.args:
        pytest.skip(f"runs on {', '.join(only.args)} only (datalayer_engines marker)")
    rolled_back = "datalayer_context" in getattr(item, "fixturenames", ()) and _isolation(item) == "rollback"
    if not rolled_back:
        item.config.stash[_DIRTY].update([engine] if engine else _engines(item.config))


def _ini(config: pytest.Config, name: str) -> str | None:
    try:
        return config.getini(name)
    except ValueError:  # an older pytest-asyncio without that option
        return None


def _server(config: pytest.Config, engine: str) -> PostgresServer | None:
    """Where this session's PostgreSQL databases are created (``None`` on SQLite)."""
    if engine != "postgres":
        return None
    with _as_failure():
        return postgres_server(config.getoption("datalayer_postgres_url"), config.getini("datalayer_postgres_url"))


@contextmanager
def _as_failure() -> Iterator[None]:
    """datalayer's errors (PostgreSQL unreachable, a bad configuration) fail the test with their message."""
    try:
        yield
    except (DatabaseUnavailableError, ConfigurationError) as exc:
        failure = pytest.fail.Exception(f"{exc.__class__.__name__}: {exc}", pytrace=False)
        raise failure from None  # the message says it all: no driver traceback


@pytest.fixture(scope="session")
def datalayer_engine(request: pytest.FixtureRequest) -> str:
    """The engine of this pass: ``"sqlite"`` or ``"postgres"``."""
    return getattr(request, "param", None) or _engines(request.config)[0]


@pytest.fixture(scope="session")
def datalayer_project() -> Project:
    """The app's project: its models, packs and migrations from ``[tool.datalayer]`` and ``DATALAYER_*``."""
    with _as_failure():
        return load_project()


@_async_fixture(scope="session", loop_scope="session")
async def datalayer_database(
    request: pytest.FixtureRequest, datalayer_engine: str, datalayer_project: Project,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[TestDatabase]:
    """This session's database on the pass's engine, built by the app's migrations (datalayer's packs,
    then the app's); PostgreSQL's is created for the session and dropped at its end."""
    folder = tmp_path_factory.mktemp(f"datalayer-{datalayer_engine}")
    with _as_failure():
        async with fresh_database(datalayer_engine, folder, _server(request.config, datalayer_engine)) as database:
            try:
                await _open_context(database, datalayer_project, announce=True)
                request.config.stash[_DIRTY].add(datalayer_engine)
                yield database
            finally:
                await close_context()


@_async_fixture(loop_scope="session")
async def datalayer_context(
    request: pytest.FixtureRequest, datalayer_database: TestDatabase, datalayer_project: Project,
) -> AsyncIterator[DataContext]:
    """The process ``DataContext`` on the session's database, isolated as ``datalayer_isolation`` says: every
    table emptied before the test (``truncate``), or the test run in a transaction rolled back afterwards
    (``rollback``). The cache starts empty either way."""
    with _as_failure():
        context = await _open_context(datalayer_database, datalayer_project)
    await context.cache.invalidate_prefix("")
    dirty = request.config.stash[_DIRTY]
    if _isolation(request.node) == "truncate":
        await empty_tables(context)
        yield context
        return
    if datalayer_database.engine in dirty:
        await empty_tables(context)
        dirty.discard(datalayer_database.engine)
    async with rolled_back():
        yield context


@pytest.fixture
def ctx(datalayer_context: DataContext) -> DataContext:
    """``datalayer_context``, by its short name."""
    return datalayer_context


@_async_fixture(loop_scope="session")
async def datalayer_empty_database(
    request: pytest.FixtureRequest, datalayer_engine: str, tmp_path: Path,
) -> AsyncIterator[TestDatabase]:
    """A brand-new database without tables on the pass's engine, for this test alone (dropped afterwards)."""
    server = _server(request.config, datalayer_engine)
    with _as_failure():
        async with fresh_database(datalayer_engine, tmp_path, server, prefix="datalayer_empty") as database:
            yield database


async def _open_context(database: TestDatabase, project: Project, *, announce: bool = False) -> DataContext:
    """The process context on ``database``; reopened when a test closed it or left another one open."""
    generate = bool(project.models) and not version_files(project.app_migrations)
    if generate and announce:
        warnings.warn(DatalayerTestWarning(
            f"the app's models ({', '.join(project.models)}) have no migration history in {project.app_migrations}; "
            "their tables were made by generate_schemas, not by migrations. Run `datalayer migrate init` so the "
            "tests build the schema as production does"), stacklevel=1)
    options: dict[str, Any] = {"settings": database.settings, "models": list(project.models),
                               "apps": list(project.pack_labels), "migrate": True, "generate_schemas": generate}
    try:
        return await get_context(**options)
    except ConfigurationError:  # another context is open (other settings, models or packs): replace it
        await close_context()
        return await get_context(**options)
