"""SQL scripts inside a SQLite transaction, one statement at a time.

Python's ``sqlite3.executescript`` (which Tortoise's ``execute_script`` calls) first COMMITs any open
transaction, then runs the script in autocommit mode: a migration that aerich runs "in a transaction"
(``RUN_IN_TRANSACTION = True``, the default) was committed statement by statement, so one that failed or
was killed half-way left its first statements applied and unrecorded, and running ``upgrade`` again failed
on them for good ("duplicate column name"). Inside a transaction a script is split into its statements
(``sqlite3.complete_statement`` decides where each ends, as the sqlite3 shell does: semicolons in strings,
comments and trigger bodies do not end one) and each is executed in the transaction, so the script and what
follows it commit or roll back together, as on PostgreSQL.

Two kinds of statement cannot keep that promise and are refused before anything runs: transaction control
(``BEGIN``, ``COMMIT``, ``END``, ``ROLLBACK``; the script already runs in one) and ``PRAGMA foreign_keys``
(a no-op inside a transaction, so a table rebuild written for it would run with foreign keys still on, and
its ``DROP TABLE`` would fire ``ON DELETE`` actions). Such a script belongs in a migration with
``RUN_IN_TRANSACTION = False``, which runs it as written, as SQLite's documented table-rebuild procedure asks.
"""

from __future__ import annotations

import re
import sqlite3

from datalayer.errors import ConfigurationError

_OUTSIDE_A_TRANSACTION = re.compile(
    r"^(?:(?:BEGIN|COMMIT|END|ROLLBACK(?!\s+(?:TRANSACTION\s+)?TO\b))\b|PRAGMA\s+(?:\w+\s*\.\s*)?foreign_keys\s*=)", re.IGNORECASE)
_LEADING_COMMENTS = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.DOTALL)


def statements(script: str) -> list[str]:
    """The statements of ``script`` in order, each with its comments; a last one may lack its semicolon.

    Raises:
        ConfigurationError: a statement that cannot run inside the caller's transaction (see the module).
    """
    found, start = [], 0
    for at, character in enumerate(script):
        if character == ";" and sqlite3.complete_statement(script[start:at + 1]):
            found.append(script[start:at + 1])
            start = at + 1
    found.append(script[start:])
    kept = [text for text in found if _LEADING_COMMENTS.sub("", text).strip(" \t\r\n;")]
    for text in kept:
        body = _LEADING_COMMENTS.sub("", text)
        if _OUTSIDE_A_TRANSACTION.match(body):
            raise ConfigurationError(
                f"the script runs inside a transaction, where SQLite cannot honour "
                f"{' '.join(body.split())[:60]!r}: remove it, or (a table rebuild that turns foreign keys off) "
                "put the script in a migration with RUN_IN_TRANSACTION = False, which runs it as written"
            )
    return kept
