"""SQLite text and time semantics made to match PostgreSQL's, installed on every connection datalayer opens.

SQLite's built-in ``lower``/``upper`` and its ``LIKE`` fold ASCII letters only, and ``LIKE`` ignores ASCII
case even where PostgreSQL's is case-sensitive. ``install`` replaces ``lower`` and ``upper`` with functions
that map every letter one character to one character (as PostgreSQL does: ``upper("é") == "É"``,
``lower("ΟΔΟΣ") == "οδοσ"``, ``upper("ß") == "ß"``) and makes ``LIKE`` case-sensitive. Tortoise builds
``iexact``/``icontains``/``istartswith``/``iendswith`` (and so ``search=``) as ``UPPER(column) LIKE
UPPER(pattern)``, so these then fold non-ASCII letters, and ``contains`` is case-sensitive on both engines.

Index expressions: a ``LiveUnique(..., lower=True)`` index is ``lower(column)``; its entries are computed by
the ``lower`` of the connection that writes the row. Rows written before this module existed, or by a tool
without it (the ``sqlite3`` shell), hold ASCII-only folded entries: run ``REINDEX`` once through datalayer
after upgrading a database whose such columns hold non-ASCII letters, and write through datalayer only.

Date-times: SQLite stores them as text and compares text, so ``12:00+08:00`` sorts after ``05:00+00:00``
though it is an earlier instant. The adapter registered here (replacing Tortoise's, process-wide for
``sqlite3``) writes every aware date-time as UTC text, so text order is time order; naive ones are left as
they are (datalayer's managers never send one: ``managers.values`` reads them as UTC first).
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import aiosqlite

_UTC = ZoneInfo("UTC")
_LAST_CASED = 0x1FFFF  # no code point beyond plane 1 has a case mapping


@cache
def _case_table(upper: bool) -> dict[int, str]:
    """Every code point whose case mapping is a single other character (PostgreSQL's per-character mapping)."""
    table = {}
    for point in range(_LAST_CASED + 1):
        if 0xD800 <= point <= 0xDFFF:
            continue
        char = chr(point)
        mapped = char.upper() if upper else char.lower()
        if mapped != char and len(mapped) == 1:
            table[point] = mapped
    if not upper:
        table[0x130] = "i"  # LATIN CAPITAL I WITH DOT ABOVE: "i" + combining dot in full mapping, "i" alone
    return table


def _text_of(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def fold_upper(value: Any) -> str | None:
    """SQL ``upper(x)``: NULL stays NULL; other values as text, every letter upper-cased."""
    text = _text_of(value)
    if text is None or text.isascii():
        return text if text is None else text.upper()
    return text.translate(_case_table(True))


def fold_lower(value: Any) -> str | None:
    """SQL ``lower(x)``: NULL stays NULL; other values as text, every letter lower-cased."""
    text = _text_of(value)
    if text is None or text.isascii():
        return text if text is None else text.lower()
    return text.translate(_case_table(False))


def _like_regex(pattern: str, escape: str | None) -> re.Pattern[str]:
    parts, chars = [], iter(pattern)
    for char in chars:
        if escape is not None and char == escape:
            parts.append(re.escape(next(chars, "")))
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


_like_cache = cache(_like_regex)


def case_sensitive_like(pattern: Any, value: Any, escape: Any = None) -> int | None:
    """SQL ``value LIKE pattern [ESCAPE escape]``, case-sensitive (used only where the pragma is missing)."""
    pattern, value = _text_of(pattern), _text_of(value)
    if pattern is None or value is None:
        return None
    return int(_like_cache(pattern, escape).fullmatch(value) is not None)


async def install(connection: aiosqlite.Connection) -> None:
    """Give ``connection`` PostgreSQL's case folding and case-sensitive ``LIKE``.

    Args:
        connection: a freshly opened aiosqlite connection (before any statement that folds text).
    """
    await connection.create_function("lower", 1, fold_lower, deterministic=True)
    await connection.create_function("upper", 1, fold_upper, deterministic=True)
    await connection.execute("PRAGMA case_sensitive_like = ON")
    async with connection.execute("SELECT 'a' LIKE 'A'") as cursor:
        folds_ascii = (await cursor.fetchone())[0]  # type: ignore[index]  # a SELECT has a row
    if folds_ascii:  # a build without the (deprecated) pragma: define LIKE itself
        await connection.create_function("like", 2, case_sensitive_like, deterministic=True)
        await connection.create_function("like", 3, case_sensitive_like, deterministic=True)


def utc_text(value: dt.datetime) -> str:
    """How a date-time parameter is written: aware ones as UTC (``2024-01-01 04:00:00+00:00``)."""
    if value.tzinfo is not None and value.utcoffset() is not None:
        value = value.astimezone(_UTC)
    return value.isoformat(" ")


def install_adapter() -> None:
    """Make ``utc_text`` sqlite3's adapter for datetimes. sqlite3 keeps one adapter per type for the whole
    process, and Tortoise registers its own when its SQLite executor is imported: importing that first
    makes ours the last word, whatever the import order of the app."""
    import tortoise.backends.sqlite.executor  # noqa: F401 - registers Tortoise's adapters; ours replaces one

    sqlite3.register_adapter(dt.datetime, utc_text)


install_adapter()
