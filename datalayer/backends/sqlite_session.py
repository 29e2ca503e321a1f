"""Raw SQL on SQLite's one shared connection, with its session state scoped to the call or transaction.

Every request shares the connection, so a ``PRAGMA foreign_keys = OFF`` or a temp table left by raw SQL would
reach all later requests. SQLite runs one statement per call and has no built-in function that changes the
session, so the statement itself says what it changes: a session pragma's value is read before it is set and
restored when the scope ends (the raw call, or the transaction it ran in), temp objects are dropped then,
and ``ATTACH``/``DETACH`` (which would change the connection for everyone) and write-only pragmas are refused.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from datalayer.errors import ValidationError

log = logging.getLogger("datalayer.connection")

_LEADING_COMMENTS = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.DOTALL)
_PRAGMA_SET = re.compile(r"PRAGMA\s+(?:(?P<schema>\w+)\s*\.\s*)?(?P<name>\w+)\s*(?:=|\()", re.IGNORECASE)
_SHARED_CONNECTION = re.compile(r"(?:ATTACH|DETACH)\b", re.IGNORECASE)

# Pragmas that are settings of the connection (not of the database file, not queries).
SESSION_PRAGMAS = frozenset({
    "analysis_limit", "automatic_index", "busy_timeout", "cache_size", "cache_spill", "cell_size_check",
    "checkpoint_fullfsync", "defer_foreign_keys", "foreign_keys", "fullfsync", "ignore_check_constraints",
    "journal_mode", "journal_size_limit", "legacy_alter_table", "locking_mode", "max_page_count", "mmap_size",
    "query_only", "read_uncommitted", "recursive_triggers", "reverse_unordered_selects", "secure_delete",
    "synchronous", "temp_store", "threads", "trusted_schema", "wal_autocheckpoint", "writable_schema",
})
_WRITE_ONLY = frozenset({"case_sensitive_like"})  # cannot be read back, so cannot be restored: refused


def _statement(query: str) -> str:
    return query[_LEADING_COMMENTS.match(query).end():]  # type: ignore[union-attr]


def refuse_shared_changes(query: str) -> None:
    """Raises:
    ValidationError: the statement would attach or detach a database on the shared connection.
    """
    if _SHARED_CONNECTION.match(_statement(query)):
        raise ValidationError(
            {"sql": "ATTACH/DETACH would change SQLite's shared connection for every request; "
                    "open the other database with its own context instead"},
            model="raw SQL",
        )


async def remember_pragma(connection: Any, query: str, saved: dict[str, Any]) -> None:
    """Before ``query`` runs: when it sets a session pragma, keep that pragma's current value in ``saved``
    (the first value seen in the scope wins).

    Raises:
        ValidationError: it sets a pragma that cannot be read back (``case_sensitive_like``).
    """
    match = _PRAGMA_SET.match(_statement(query))
    if match is not None and match["name"].lower() in _WRITE_ONLY:
        raise ValidationError({"sql": f"PRAGMA {match['name']} cannot be read back, so a change could not be "
                                      "undone for the next request; it is set by datalayer's engine"},
                              model="raw SQL")
    if match is None or match["name"].lower() not in SESSION_PRAGMAS:
        return
    name = f'{match["schema"]}.{match["name"]}' if match["schema"] else match["name"]
    if name.lower() in saved:
        return
    rows = await connection.execute_fetchall(f"PRAGMA {name}")
    if rows:
        saved[name.lower()] = (name, rows[0][0])


async def restore_session(connection: Any, saved: dict[str, Any]) -> None:
    """At the end of the scope: put remembered pragmas back and drop temp tables, views and triggers.
    Never raises (a failure is logged): the caller's outcome stands."""
    try:
        for name, value in saved.values():
            rows = await connection.execute_fetchall(f"PRAGMA {name}")
            if not rows or rows[0][0] != value:
                literal = value if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"
                await connection.execute_fetchall(f"PRAGMA {name} = {literal}")
        saved.clear()
        temp = await connection.execute_fetchall(
            "SELECT type, name FROM temp.sqlite_master WHERE type IN ('trigger', 'view', 'table') "
            "ORDER BY type = 'table'"
        )
        for kind, name in temp:
            await connection.execute_fetchall(f'DROP {kind.upper()} IF EXISTS temp."{name.replace(chr(34), chr(34) * 2)}"')
    except Exception:
        log.warning("could not restore SQLite's session after raw SQL", exc_info=True)
