"""The one place that turns Tortoise, asyncpg and sqlite3 errors into datalayer's own."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import asyncpg
import asyncpg.pgproto.pgproto
from redis import exceptions as redis_errors
from tortoise import Tortoise
from tortoise import exceptions as orm
from tortoise.fields.data import CharEnumFieldInstance, IntEnumFieldInstance
from tortoise.models import Model

from datalayer.errors import (
    CacheUnavailableError,
    ConfigurationError,
    ConflictError,
    DatabaseUnavailableError,
    DataLayerError,
    NotFoundError,
    TransactionAbortedError,
    ValidationError,
    shown,
)
from datalayer.schema import fields_of_columns, fields_of_unique_index

_SQL_LITERAL = re.compile(r"'(?:[^']|'')*'")
_SQL_CAST = re.compile(r"::\s*\"?[A-Za-z_][\w \"]*(?:\[\])?")
_SQL_IDENTIFIER = re.compile(r'"(?P<quoted>[^"]+)"|\b(?P<bare>[A-Za-z_]\w*)\b(?!\s*\()')
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (?:index '(?P<index>[^']+)'|(?P<cols>.+))")
_SQLITE_NOT_NULL = re.compile(r"NOT NULL constraint failed: (?P<col>\S+)")
_ASYNCPG_CLIENT_ERRORS = (
    asyncpg.exceptions.InterfaceError,  # the client refused or lost the connection
    asyncpg.exceptions._base.InternalClientError,  # protocol state broken (a connection killed mid-use)
    asyncpg.pgproto.pgproto.BufferError,
)
_DRIVER_ERRORS = (
    orm.BaseORMException,
    asyncpg.PostgresError,
    *_ASYNCPG_CLIENT_ERRORS,
    sqlite3.Error,
    redis_errors.RedisError,
    OSError,
    ConnectionError,
    TimeoutError,
    asyncio.TimeoutError,
)
# The connection is gone or cannot be made: the server restarting, crashed or shut down, a backend
# terminated, the network dropped, no primary among the hosts. Waiting (and a fresh connection) may help.
CONNECTION_LOST = (
    OSError,
    ConnectionError,
    TimeoutError,
    asyncio.TimeoutError,  # not TimeoutError before Python 3.11
    asyncpg.exceptions.PostgresConnectionError,  # SQLSTATE class 08, ConnectionDoesNotExistError included
    asyncpg.exceptions.InterfaceError,  # "connection is closed", "pool is closing"
    asyncpg.exceptions._base.InternalClientError,  # "cannot switch to state ...": a connection killed mid-use
    asyncpg.exceptions.AdminShutdownError,  # 57P01: pg_terminate_backend, a fast shutdown
    asyncpg.exceptions.CrashShutdownError,  # 57P02
    asyncpg.exceptions.CannotConnectNowError,  # 57P03: starting up, shutting down, in recovery
    asyncpg.exceptions.IdleSessionTimeoutError,  # 57P05
    asyncpg.exceptions.TooManyConnectionsError,  # 53300
    orm.DBConnectionError,
)
# The database itself went away under a running app (dropped or renamed): no retry will help.
_DATABASE_GONE = (asyncpg.exceptions.InvalidCatalogNameError, asyncpg.exceptions.DatabaseDroppedError)
# Mistakes in how the client was called or configured: not a lost connection, whatever their base class.
_CLIENT_MISUSE = (
    asyncpg.exceptions.ClientConfigurationError,
    asyncpg.exceptions.UnsupportedClientFeatureError,
    asyncpg.exceptions.UnsupportedServerFeatureError,
)
_SQLITE_UNAVAILABLE = ("database is locked", "unable to open database file", "disk i/o error",
                       "database or disk is full", "attempt to write a readonly database")
_AIOSQLITE_CLOSED = ("no active connection", "Connection closed")

def _root(exc: BaseException) -> BaseException:
    """Tortoise wraps the driver error as ``args[0]`` and ``__cause__``; dig it out."""
    seen = exc
    for _ in range(4):
        inner = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else seen.__cause__
        if inner is None or inner is seen:
            break
        seen = inner
    return seen


def _bare_column(name: str) -> str:
    return name.split(".")[-1].strip().strip('"')


def _key_parts(detail: str) -> list[str]:
    """The comma-separated items of PostgreSQL's ``Key (a, lower(b::text))=(...)``, nested parentheses kept."""
    start = detail.find("Key (")
    if start < 0:
        return []
    parts, current, depth = [], "", 0
    for char in detail[start + len("Key "):]:
        depth += (char == "(") - (char == ")")
        if depth == 0:
            break
        if char == "," and depth == 1:
            parts.append(current)
            current = ""
        elif depth > 1 or char != "(":
            current += char
    return [*parts, current]


def _column_of(expression: str) -> str | None:
    """The column an index key item reads: ``"email"``, ``lower(email::text)`` and ``(email)::text`` give email."""
    bare = _SQL_CAST.sub("", _SQL_LITERAL.sub("", expression))
    match = _SQL_IDENTIFIER.search(bare)
    return (match.group("quoted") or match.group("bare")) if match else None


def _pg_key_columns(detail: str | None) -> list[str]:
    return [column for column in map(_column_of, _key_parts(detail or "")) if column]


def _loaded_models() -> list[type[Model]]:
    apps = Tortoise.apps
    return list(apps.get_models_iterable()) if apps is not None else []


def _conflict(model: str, index: str | None, table: str | None, columns: Sequence[str]) -> ConflictError:
    """A ``ConflictError`` naming the model fields of the broken rule: by its name when a loaded model declares
    it (the only clue SQLite gives for an expression index), else by the columns the database reported."""
    models = _loaded_models()
    fields = fields_of_unique_index(index, models) if index else ()
    return ConflictError(model, fields or fields_of_columns(table, columns, models))


def _integrity(model: str, exc: BaseException) -> DataLayerError:
    root = _root(exc)
    if isinstance(root, asyncpg.exceptions.UniqueViolationError):
        return _conflict(model, root.constraint_name, root.table_name, _pg_key_columns(root.detail))
    if isinstance(root, asyncpg.exceptions.ForeignKeyViolationError):
        column = ", ".join(_pg_key_columns(root.detail)) or "reference"
        return ValidationError({column: "refers to a row that does not exist; pass the id of an existing row"}, model=model)
    if isinstance(root, asyncpg.exceptions.NotNullViolationError):
        return ValidationError({root.column_name or "field": "is required; give it a value"}, model=model)
    if isinstance(root, asyncpg.exceptions.CheckViolationError):
        return ValidationError({root.constraint_name or "__all__": "breaks a check rule of the table"}, model=model)
    text = str(root)
    if match := _SQLITE_UNIQUE.search(text):
        qualified = match.group("cols").split(",") if match.group("cols") else []
        table = qualified[0].strip().rsplit(".", 1)[0].strip('"') if qualified and "." in qualified[0] else None
        return _conflict(model, match.group("index"), table, [_bare_column(c) for c in qualified])
    if match := _SQLITE_NOT_NULL.search(text):
        return ValidationError({_bare_column(match.group("col")): "is required; give it a value"}, model=model)
    if "FOREIGN KEY constraint failed" in text:
        return ValidationError({"__all__": "a reference points to a row that does not exist"}, model=model)
    return ConflictError(model, (), message=f"{model}: the write breaks an integrity rule")


def is_connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` (or the driver error Tortoise wrapped in it) says the connection is gone."""
    root = _root(exc)
    if isinstance(root, _CLIENT_MISUSE) or isinstance(exc, _CLIENT_MISUSE):
        return False
    if isinstance(root, asyncpg.exceptions._base.DataError):  # a parameter the codec refused: bad input
        return False
    return isinstance(root, CONNECTION_LOST) or isinstance(exc, CONNECTION_LOST)


def _unavailable(root: BaseException) -> DatabaseUnavailableError:
    return DatabaseUnavailableError(f"database connection failed: {root.__class__.__name__}: {root}")


def translate(exc: BaseException, model: str = "record") -> DataLayerError:
    """Map one driver/ORM exception onto the library's hierarchy (never returns a driver error).

    Covers Tortoise's exceptions, asyncpg's whole tree (server errors by SQLSTATE class, client and
    protocol errors), sqlite3/aiosqlite's, redis-py's and socket ``OSError``s.
    """
    if isinstance(exc, DataLayerError):
        return exc
    if isinstance(exc, orm.DoesNotExist | orm.ObjectDoesNotExistError):
        return NotFoundError(model)
    if isinstance(exc, orm.IntegrityError):
        return _integrity(model, exc)
    root = _root(exc)
    if isinstance(root, DataLayerError):
        return root
    if isinstance(root, orm.IntegrityError | sqlite3.IntegrityError | asyncpg.IntegrityConstraintViolationError):
        return _integrity(model, root)
    if isinstance(root, asyncpg.exceptions.DataError | asyncpg.exceptions._base.DataError):
        return ValidationError({"__all__": f"the database refused a value ({root.__class__.__name__}: {root}); "
                                           "check the values and what the statement computes from them"}, model=model)
    if isinstance(exc, orm.ValidationError | orm.FieldError | orm.ParamsError):
        return ValidationError({"__all__": str(exc)}, model=model)
    if isinstance(root, asyncpg.exceptions.TransactionRollbackError):  # 40001 serialization, 40P01 deadlock
        return TransactionAbortedError(
            f"{model}: the database aborted the transaction ({root.__class__.__name__}: {root}); nothing was "
            "committed: rerun the whole transaction", sqlstate=getattr(root, "sqlstate", None))
    if isinstance(root, asyncpg.exceptions.InvalidCachedStatementError | asyncpg.exceptions.OutdatedSchemaCacheError):
        return DataLayerError(f"{model}: a table was altered after this statement was prepared; the statement "
                              "cache is cleared now: retry the call (inside a transaction, retry the transaction)")
    if isinstance(root, _DATABASE_GONE):
        return DatabaseUnavailableError(f"database connection failed: {root.__class__.__name__}: {root}",
                                        retryable=False)
    if isinstance(root, asyncpg.exceptions._base.TargetServerAttributeNotMatched):
        return DatabaseUnavailableError(f"no server in the target list accepts the session: {root}")
    if isinstance(root, redis_errors.ConnectionError | redis_errors.TimeoutError | redis_errors.BusyLoadingError):
        return CacheUnavailableError(f"Redis did not answer: {root.__class__.__name__}: {root}")
    if isinstance(root, redis_errors.RedisError):
        return DataLayerError(f"{model}: Redis refused the command: {root.__class__.__name__}: {root}")
    if isinstance(root, sqlite3.Error) and str(root).lower().startswith(_SQLITE_UNAVAILABLE):
        return DatabaseUnavailableError(f"the SQLite database is unavailable: {root}")
    if isinstance(root, TimeoutError | asyncio.TimeoutError):  # asyncpg's command_timeout, a connect timeout
        return DatabaseUnavailableError(
            "the database did not answer in time: a statement ran past DB_COMMAND_TIMEOUT_MS (it was cancelled)"
            " or a connection attempt past DB_CONNECTION_TIMEOUT")
    if is_connection_lost(exc):
        return _unavailable(root)
    return DataLayerError(f"{model}: database operation failed: {root.__class__.__name__}: {root}")


def _from_aiosqlite(exc: ValueError) -> bool:
    """aiosqlite reports a closed connection as a plain ``ValueError`` raised in its own code."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and "aiosqlite" in tb.tb_frame.f_code.co_filename and str(exc) in _AIOSQLITE_CLOSED


def _unlisted_enum_value(exc: ValueError) -> ConfigurationError | None:
    """The error to raise when ``exc`` is an enum field's ``to_python_value`` meeting a stored value its enum
    does not list (written by raw SQL, or by a version of the app whose enum had more members)."""
    tb = exc.__traceback__
    for _ in range(64):  # the frames between the read and the enum's constructor: a handful
        if tb is None:
            return None
        frame = tb.tb_frame
        field = frame.f_locals.get("self") if frame.f_code.co_name == "to_python_value" else None
        if isinstance(field, CharEnumFieldInstance | IntEnumFieldInstance):
            owner = getattr(getattr(field, "model", None), "__name__", "a model")
            enum_type = field.enum_type
            listed = ", ".join(repr(member.value) for member in enum_type)
            return ConfigurationError(
                f"{owner}.{field.model_field_name}: a stored row holds {shown(frame.f_locals.get('value'))}, which "
                f"{enum_type.__name__} does not list (it has {listed}); add the value to the enum (a newer version "
                "of the app or raw SQL may have written it) or correct the row"
            )
        tb = tb.tb_next
    return None


@contextmanager
def translated(model: str = "record") -> Iterator[None]:
    """``with translated("User"): ...`` re-raises ORM and driver errors as the library's own.

    Anything else (a caller's own exception raised inside a transaction block) passes through untouched.
    """
    try:
        yield
    except _DRIVER_ERRORS as exc:
        raise translate(exc, model) from exc
    except ValueError as exc:
        if (unlisted := _unlisted_enum_value(exc)) is not None:
            raise unlisted from None
        if not _from_aiosqlite(exc):
            raise
        raise DatabaseUnavailableError("the SQLite connection is closed (was the context closed?)") from exc
