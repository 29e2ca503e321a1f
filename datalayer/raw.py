"""Raw SQL on either engine, with one placeholder style and no side effects on later requests.

``await ctx.raw("SELECT status, COUNT(*) AS n FROM test_article WHERE views > $1 GROUP BY status", [10])``

- Placeholders are PostgreSQL's ``$1, $2, ...`` on both engines (rewritten to SQLite's ``?1, ?2, ...``).
- Inside ``ctx.transaction()`` the statement runs in the transaction (one at a time with the block's other
  work); outside, on a pooled connection of its own.
- Session state the SQL changes (``SET`` without ``LOCAL``, ``pg_advisory_lock``, ``LISTEN``, temp tables,
  SQLite's session pragmas) is undone when the call ends, or when the transaction it ran in ends, before the
  connection serves anyone else.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from tortoise.connection import get_connection

from datalayer.config import CONNECTION_NAME
from datalayer.errors import ConfigurationError, ValidationError
from datalayer.transactions import in_transaction_block, transaction
from datalayer.translate import translated

_LABEL = "raw SQL"
# What can hide a "$1" or a ";" that is not one: quoted text, quoted names and comments.
_QUOTED = r"[Ee]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/"
_POSTGRES = re.compile(
    _QUOTED + r"|(?P<dollar_quote>\$(?:[A-Za-z_]\w*)?\$)|\$(?P<number>\d+)|(?P<end>;)", re.DOTALL
)
_SQLITE = re.compile(
    _QUOTED + r"|`[^`]*`|\[[^\]]*\]|\$(?P<number>\d+)|(?P<end>;)|(?P<foreign>\?\d*|[:@$][A-Za-z_]\w*)", re.DOTALL
)
_TRANSACTION_CONTROL = re.compile(
    r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*(?:BEGIN|START|COMMIT|END|ROLLBACK|ABORT|SAVEPOINT|RELEASE)\b", re.IGNORECASE | re.DOTALL
)


_PREPARED_STATEMENTS = re.compile(
    r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*(?:PREPARE|EXECUTE|DEALLOCATE|DISCARD\s+ALL)\b", re.IGNORECASE | re.DOTALL
)


def _invalid(message: str) -> ValidationError:
    return ValidationError({"sql": message}, model=_LABEL)


def prepare(sql: str, params: Sequence[Any], dialect: str) -> tuple[str, list[Any]]:
    """Check one statement and its ``$n`` parameters, and write it in ``dialect``'s placeholder style.

    Args:
        sql: one SQL statement with ``$1, $2, ...`` placeholders (a trailing ``;`` is allowed).
        params: the values, ``params[0]`` for ``$1``.
        dialect: ``"postgres"`` or ``"sqlite"``.
    Returns:
        The statement for the engine and the values as a list.
    Raises:
        ValidationError: not a string, several statements, transaction control (``BEGIN``, ``COMMIT``,
            ...), another placeholder style, or a parameter count that does not match the placeholders.
    """
    if not isinstance(sql, str) or not sql.strip():
        raise _invalid("expected one SQL statement as a non-empty string")
    if isinstance(params, (str, bytes, Mapping)) or not isinstance(params, Sequence):
        raise _invalid(f"params must be a list of values for $1, $2, ... (got {type(params).__name__})")
    if _TRANSACTION_CONTROL.match(sql):
        raise _invalid("transaction control is not allowed in raw SQL; use `async with ctx.transaction()`")
    if _PREPARED_STATEMENTS.match(sql):  # asyncpg owns the connection's prepared statements; DEALLOCATE ALL breaks them
        raise _invalid("PREPARE, EXECUTE, DEALLOCATE and DISCARD ALL are not allowed in raw SQL: the driver manages "
                       "prepared statements itself; pass values as $1, $2, ... instead")
    scanner = _POSTGRES if dialect == "postgres" else _SQLITE
    highest, done, position = 0, len(sql), 0
    while (match := scanner.search(sql, position)) is not None:
        position = match.end()
        if match.group("end"):
            done = min(done, match.start())
            continue
        if match.start() >= done:
            raise _invalid("one statement per call: split the SQL at the ';'")
        if dialect == "postgres" and match.group("dollar_quote"):  # $tag$ ... $tag$: skip the body
            close = sql.find(match.group("dollar_quote"), position)
            position = len(sql) if close < 0 else close + len(match.group("dollar_quote"))
        elif match.group("number"):
            number = int(match.group("number"))
            if number == 0:
                raise _invalid("placeholders start at $1")
            highest = max(highest, number)
        elif dialect != "postgres" and match.group("foreign"):
            raise _invalid(f"use $1, $2, ... placeholders on every engine, not {match.group('foreign')!r}")
    if sql[done:].strip(" \t\r\n;"):
        raise _invalid("one statement per call: split the SQL at the ';'")
    if highest != len(params):
        raise _invalid(f"the statement uses placeholders $1..${highest} but {len(params)} value(s) were given")
    if dialect == "postgres":
        return sql, list(params)
    statement = scanner.sub(_sqlite_placeholder, sql)
    return statement, [str(value) if isinstance(value, uuid.UUID) else value for value in params]


def _sqlite_placeholder(match: re.Match[str]) -> str:
    return f"?{match.group('number')}" if match.group("number") else match.group(0)


async def execute_raw(sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Run one raw SQL statement on the current connection (the transaction's, inside ``ctx.transaction()``).

    Args:
        sql: one statement with ``$1, $2, ...`` placeholders, the same on PostgreSQL and SQLite.
        params: the values for the placeholders, in order.
    Returns:
        The rows as dicts (column name -> value as the driver returns it); ``[]`` for statements without
        rows (an ``INSERT`` without ``RETURNING``).
    Raises:
        ValidationError: the statement or its parameters are malformed (see ``prepare``); ``ATTACH`` on
            SQLite; a value rejected by a constraint (``ConflictError`` for a unique one).
        TransactionClosedError: called from work that outlived its transaction block.
        DataLayerError: the database rejected the statement (syntax, missing table), translated.
    """
    if in_transaction_block():
        # a savepoint of its own, as a manager's write has: a failed statement that the caller catches leaves
        # the transaction usable (PostgreSQL would otherwise refuse everything after it, then roll it all back)
        async with transaction():
            return await _run(sql, params)
    return await _run(sql, params)


async def _run(sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    connection = get_connection(CONNECTION_NAME)
    run = getattr(connection, "run_raw", None)
    if run is None:
        raise ConfigurationError("raw SQL needs datalayer's engines (datalayer.backends.postgres or .sqlite)")
    statement, values = prepare(sql, params, connection.capabilities.dialect)
    with translated(_LABEL):
        return await run(statement, values)
