"""Every driver failure is a datalayer error: asyncpg's whole exception tree, sqlite3/aiosqlite's, redis-py's and
socket errors, raw or wrapped by Tortoise, come out of the one translator as the library's own.

The class walks need no database; the last tests make the failures happen for real (a closed asyncpg
connection, a closed aiosqlite connection, a refused port).
"""

from __future__ import annotations

import socket
import sqlite3

import aiosqlite
import asyncpg
import asyncpg.pgproto.pgproto
import pytest
import redis.asyncio as redis_asyncio
from redis import exceptions as redis_errors
from tortoise import exceptions as orm

from datalayer import (
    CacheUnavailableError,
    ConflictError,
    DatabaseUnavailableError,
    DataLayerError,
    TransactionAbortedError,
    ValidationError,
)
from datalayer.translate import translated
from tests.cache_support import free_port
from tests.conftest import PG_ADMIN_URL


def _subclasses(root: type) -> list[type]:
    found, todo = [], [root]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in found:
                found.append(sub)
                todo.append(sub)
    return found


def _asyncpg_classes() -> list[type[BaseException]]:
    """Every exception class asyncpg defines (its signals between connect attempts excepted)."""
    classes = {cls for cls in _subclasses(BaseException) if cls.__module__.startswith("asyncpg")}
    return sorted((cls for cls in classes if not cls.__name__.startswith("_") and not issubclass(cls, Warning)),
                  key=lambda cls: cls.__qualname__)


def _instance(cls: type[BaseException]) -> BaseException:
    if issubclass(cls, asyncpg.exceptions._base.PostgresMessage):
        return cls.new({"M": f"{cls.__name__} happened", "C": getattr(cls, "sqlstate", None) or "XX000"})
    return cls(f"{cls.__name__} happened")


def _made(cls: type[BaseException], message: str) -> BaseException:
    """``cls(message)``, or an instance made without ``__init__`` for classes that need structured arguments."""
    try:
        return cls(message)
    except (TypeError, ValueError):
        exc = cls.__new__(cls)
        Exception.__init__(exc, message)
        return exc


def _translated(exc: BaseException) -> BaseException:
    with pytest.raises(Exception) as caught, translated("Thing"):
        raise exc
    return caught.value


ASYNCPG = _asyncpg_classes()


def test_the_walk_sees_asyncpg_s_whole_tree():
    names = {cls.__name__ for cls in ASYNCPG}
    assert len(ASYNCPG) > 250
    assert {"InternalClientError", "InterfaceError", "ProtocolError", "ConnectionDoesNotExistError",
            "AdminShutdownError", "UniqueViolationError", "SerializationError"} <= names


@pytest.mark.parametrize("cls", ASYNCPG, ids=lambda cls: cls.__name__)
def test_every_asyncpg_exception_becomes_a_datalayer_error(cls):
    error = _translated(_instance(cls))
    assert isinstance(error, DataLayerError), f"{cls.__name__} leaked as {type(error).__name__}"
    assert error.__class__.__module__ == "datalayer.errors"


@pytest.mark.parametrize("cls", ASYNCPG, ids=lambda cls: cls.__name__)
def test_asyncpg_exceptions_wrapped_by_tortoise_are_translated_too(cls):
    for wrapper in (orm.OperationalError, orm.IntegrityError, orm.TransactionManagementError):
        inner = _instance(cls)
        outer = wrapper(inner)
        outer.__cause__ = inner
        assert isinstance(_translated(outer), DataLayerError)


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (asyncpg.exceptions._base.InternalClientError, DatabaseUnavailableError),
        (asyncpg.exceptions.ProtocolError, DatabaseUnavailableError),
        (asyncpg.exceptions.InterfaceError, DatabaseUnavailableError),
        (asyncpg.exceptions.ConnectionDoesNotExistError, DatabaseUnavailableError),
        (asyncpg.exceptions.AdminShutdownError, DatabaseUnavailableError),
        (asyncpg.exceptions.CrashShutdownError, DatabaseUnavailableError),
        (asyncpg.exceptions.CannotConnectNowError, DatabaseUnavailableError),
        (asyncpg.exceptions.TooManyConnectionsError, DatabaseUnavailableError),
        (asyncpg.exceptions.TargetServerAttributeNotMatched, DatabaseUnavailableError),
        (asyncpg.exceptions.SerializationError, TransactionAbortedError),
        (asyncpg.exceptions.DeadlockDetectedError, TransactionAbortedError),
        (asyncpg.exceptions.UniqueViolationError, ConflictError),
        (asyncpg.exceptions.NotNullViolationError, ValidationError),
        (asyncpg.exceptions.NumericValueOutOfRangeError, ValidationError),
        (asyncpg.exceptions._base.DataError, ValidationError),  # a value the client's codec refused
    ],
    ids=lambda value: value.__name__,
)
def test_each_kind_of_failure_gets_the_error_a_caller_can_act_on(cls, expected):
    error = _translated(_instance(cls))
    assert type(error) is expected or isinstance(error, expected)
    if isinstance(error, DatabaseUnavailableError):
        assert error.retryable is True and error.maybe_committed is False


def test_a_database_that_was_dropped_is_unavailable_and_not_worth_retrying():
    error = _translated(_instance(asyncpg.exceptions.InvalidCatalogNameError))
    assert isinstance(error, DatabaseUnavailableError) and error.retryable is False


def test_client_configuration_mistakes_are_not_reported_as_an_outage():
    error = _translated(_instance(asyncpg.exceptions.ClientConfigurationError))
    assert isinstance(error, DataLayerError) and not isinstance(error, DatabaseUnavailableError)


@pytest.mark.parametrize("cls", [sqlite3.Error, *_subclasses(sqlite3.Error)], ids=lambda cls: cls.__name__)
def test_every_sqlite3_exception_becomes_a_datalayer_error(cls):
    assert isinstance(_translated(cls("it failed")), DataLayerError)


@pytest.mark.parametrize("message", ["database is locked", "unable to open database file", "disk I/O error"])
def test_sqlite_busy_or_missing_files_are_an_unavailable_database(message):
    assert isinstance(_translated(sqlite3.OperationalError(message)), DatabaseUnavailableError)


REDIS = [redis_errors.RedisError, *_subclasses(redis_errors.RedisError)]


@pytest.mark.parametrize("cls", REDIS, ids=lambda cls: f"{cls.__module__}.{cls.__name__}")
def test_every_redis_exception_becomes_a_datalayer_error(cls):
    assert isinstance(_translated(_made(cls, "redis failed")), DataLayerError)


def test_redis_that_does_not_answer_is_a_cache_unavailable_error():
    for cls in (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.BusyLoadingError):
        assert isinstance(_translated(cls("down")), CacheUnavailableError)


OS_ERRORS = [OSError, TimeoutError, *_subclasses(OSError)]


@pytest.mark.parametrize("cls", OS_ERRORS, ids=lambda cls: f"{cls.__module__}.{cls.__name__}")
def test_socket_and_os_errors_are_an_unavailable_database(cls):
    assert isinstance(_translated(_made(cls, "socket failed")), DatabaseUnavailableError)


def test_a_caller_s_own_exceptions_pass_through_untouched():
    for exc in (ValueError("mine"), KeyError("mine"), RuntimeError("mine")):
        assert _translated(exc) is exc


async def test_a_closed_aiosqlite_connection_is_an_unavailable_database(tmp_path):
    connection = await aiosqlite.connect(tmp_path / "closed.sqlite3")
    await connection.close()
    with pytest.raises(DatabaseUnavailableError, match="SQLite connection is closed"), translated("Thing"):
        await connection.execute("SELECT 1")


@pytest.mark.postgres_only
async def test_a_closed_asyncpg_connection_is_an_unavailable_database():
    connection = await asyncpg.connect(PG_ADMIN_URL)
    await connection.close()
    with pytest.raises(DatabaseUnavailableError) as caught, translated("Thing"):
        await connection.fetch("SELECT 1")
    assert caught.value.retryable


async def test_a_refused_port_is_an_unavailable_database():
    port = free_port()
    with pytest.raises(DatabaseUnavailableError), translated("Thing"):
        await asyncpg.connect(f"postgres://postgres@127.0.0.1:{port}/postgres", timeout=2)
    client = redis_asyncio.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    try:
        with pytest.raises(CacheUnavailableError), translated("Thing"):
            await client.ping()
    finally:
        await client.aclose()


def test_no_translated_error_is_a_driver_class():
    """The translator's output is always one of datalayer's classes, never a subclass from a driver."""
    for cls in ASYNCPG[:40] + [socket.gaierror, sqlite3.DatabaseError]:
        exc = _instance(cls) if cls in ASYNCPG else cls("x")
        assert type(_translated(exc)).__module__ == "datalayer.errors"


def test_a_timeout_says_which_setting_bounds_the_wait():
    error = _translated(TimeoutError())
    assert isinstance(error, DatabaseUnavailableError)
    assert "DB_COMMAND_TIMEOUT_MS" in str(error) and "DB_CONNECTION_TIMEOUT" in str(error)
