"""The one place that turns Tortoise, asyncpg and sqlite3 errors into datalayer's own."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import asyncpg
from tortoise import Tortoise
from tortoise import exceptions as orm
from tortoise.models import Model

from datalayer.errors import (
    ConflictError,
    DatabaseUnavailableError,
    DataLayerError,
    NotFoundError,
    ValidationError,
)
from datalayer.schema import fields_of_columns, fields_of_unique_index

_SQL_LITERAL = re.compile(r"'(?:[^']|'')*'")
_SQL_CAST = re.compile(r"::\s*\"?[A-Za-z_][\w \"]*(?:\[\])?")
_SQL_IDENTIFIER = re.compile(r'"(?P<quoted>[^"]+)"|\b(?P<bare>[A-Za-z_]\w*)\b(?!\s*\()')
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (?:index '(?P<index>[^']+)'|(?P<cols>.+))")
_SQLITE_NOT_NULL = re.compile(r"NOT NULL constraint failed: (?P<col>\S+)")
_DRIVER_ERRORS = (
    orm.BaseORMException,
    asyncpg.PostgresError,
    asyncpg.exceptions.InterfaceError,
    sqlite3.Error,
    OSError,
    ConnectionError,
    TimeoutError,
)
_CONNECTION_ERRORS = (
    OSError,
    ConnectionError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    orm.DBConnectionError,
    # the database went away under a running app: dropped or renamed, the server shut down or crashed
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.DatabaseDroppedError,
)


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


def translate(exc: BaseException, model: str = "record") -> DataLayerError:
    """Map one driver/ORM exception onto the library's hierarchy (never returns a driver error)."""
    if isinstance(exc, DataLayerError):
        return exc
    if isinstance(exc, orm.DoesNotExist | orm.ObjectDoesNotExistError):
        return NotFoundError(model)
    if isinstance(exc, orm.IntegrityError):
        return _integrity(model, exc)
    root = _root(exc)
    if isinstance(root, orm.IntegrityError | sqlite3.IntegrityError | asyncpg.IntegrityConstraintViolationError):
        return _integrity(model, root)
    if isinstance(root, asyncpg.exceptions.DataError):
        return ValidationError({"__all__": f"a value does not fit its column ({root.__class__.__name__}: {root})"}, model=model)
    if isinstance(exc, orm.ValidationError | orm.FieldError | orm.ParamsError):
        return ValidationError({"__all__": str(exc)}, model=model)
    if isinstance(root, asyncpg.exceptions.InvalidCachedStatementError):  # asyncpg has cleared its caches
        return DataLayerError(f"{model}: a table was altered after this statement was prepared; the statement "
                              "cache is cleared now: retry the call (inside a transaction, retry the transaction)")
    if isinstance(root, _CONNECTION_ERRORS) or isinstance(exc, _CONNECTION_ERRORS):
        return DatabaseUnavailableError(f"database connection failed: {root.__class__.__name__}: {root}")
    return DataLayerError(f"{model}: database operation failed: {root.__class__.__name__}: {root}")


@contextmanager
def translated(model: str = "record") -> Iterator[None]:
    """``with translated("User"): ...`` re-raises ORM and driver errors as the library's own.

    Anything else (a caller's own exception raised inside a transaction block) passes through untouched.
    """
    try:
        yield
    except _DRIVER_ERRORS as exc:
        raise translate(exc, model) from exc
