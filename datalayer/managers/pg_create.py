"""PostgreSQL's one-statement create: the row and its audit row in a single round trip.

The generic path needs BEGIN, INSERT, INSERT audit, COMMIT. Here the audit row's INSERT is a CTE of the
row's INSERT: one statement, atomic by itself (a unique violation writes neither row). The row is completed
in Python exactly as ``bulk_create`` completes rows (defaults, ``uuid7`` id, stamps), so both paths store
the same thing, and the audit ``changes`` are the same JSON text the COPY path writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache
from typing import Any

import asyncpg
from tortoise import timezone
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model

from datalayer.actor import current_actor, current_correlation_id
from datalayer.core.audit_log import AuditLog
from datalayer.errors import DatabaseUnavailableError
from datalayer.ids import uuid7
from datalayer.managers import auditing, pg_driver
from datalayer.managers.bulk import complete_rows, copy_records, insert_columns, saved_instances
from datalayer.transactions import in_transaction_block

log = logging.getLogger("datalayer.managers")


def supported(model: type[Model]) -> bool:
    """Models whose key is made in Python (every datalayer model), not by the database."""
    return model._meta.db_pk_column not in model._meta.generated_db_fields


@cache
def _statement(model: type[Model]) -> str:
    table, columns = model._meta.db_table, insert_columns(model)
    names = ", ".join(f'"{column}"' for column in columns)
    values = ", ".join(f"${position}" for position in range(1, len(columns) + 1))
    insert = f'INSERT INTO "{table}" ({names}) VALUES ({values})'
    if not getattr(model, "audited", True):
        return insert
    n = len(columns)  # then: audit id, now, actor, record id text, changes, correlation id
    audit_names = ", ".join(f'"{column}"' for column in auditing.AUDIT_COLUMNS)
    return (
        f'WITH aud AS (INSERT INTO "{AuditLog._meta.db_table}" ({audit_names}) '
        f"VALUES (${n + 1}, ${n + 2}, ${n + 2}, ${n + 3}, 'create', '{table}', ${n + 4}, ${n + 5}::jsonb, ${n + 6})) "
        + insert
    )


@cache
def _key_maker(model: type[Model]) -> Callable[[], Any] | None:
    default = model._meta.fields_map[model._meta.pk_attr].default
    return default if callable(default) else None


async def create_in_one_statement(model: type[Model], values: dict[str, Any], stamps: dict[str, Any],
                                  client: BaseDBAsyncClient | None = None) -> Any:
    """Insert ``values`` (validated) completed with defaults and ``stamps`` on ``client`` (default: the
    current connection); the stored row as an instance."""
    pk, make_key = model._meta.pk_attr, _key_maker(model)
    if make_key is not None and pk not in values:
        stamps = {**stamps, pk: make_key()}  # made here: complete_rows' batch maker costs more for one key
    row = complete_rows(model, [values], **stamps)[0]
    params: list[Any] = list(copy_records(model, [row])[0])
    if getattr(model, "audited", True):
        params += [uuid7(), timezone.now(), current_actor(), str(row[pk]),
                   auditing.creation_changes_json(model, row), current_correlation_id()]
    try:
        await pg_driver.fetch(_statement(model), params, client)
    except DatabaseUnavailableError as exc:
        if not exc.maybe_committed or in_transaction_block():  # a transaction fails whole: nothing to settle
            raise
        await _settle(model, params, exc)
    return saved_instances(model, [row])[0]


SETTLE_ATTEMPTS = 3
"""How many times a create whose connection was lost is sent again (a resend can meet another connection
killed by the same event: a terminated pool, a restarting server) before ``maybe_committed`` reaches the
caller."""


async def _settle(model: type[Model], params: list[Any], lost: DatabaseUnavailableError) -> None:
    """The connection died with the INSERT in flight: it may or may not have committed. The same statement is
    sent again with the same keys (made here, not by the database): it inserts the row if the first did
    not, and meets the primary key if it did (a first still running holds the key until it ends), so the
    row and its audit row exist exactly once either way. A resend lost in flight too is as unsure as the
    first and just as safe to repeat: up to ``SETTLE_ATTEMPTS`` resends.

    Raises:
        DatabaseUnavailableError: ``lost`` (still ``maybe_committed``) when the database cannot be reached or
            every resend was lost in flight.
    """
    for _ in range(SETTLE_ATTEMPTS):
        try:
            await pg_driver.fetch(_statement(model), params)
            return
        except asyncpg.UniqueViolationError as exc:
            keys = {f"{model._meta.db_table}_pkey", f"{AuditLog._meta.db_table}_pkey"}
            if exc.constraint_name not in keys:
                raise
            log.info("a create whose connection was lost had committed; %s %s returned as stored",
                     model.__name__, params[0] if params else "")
            return
        except DatabaseUnavailableError as again:
            if not again.maybe_committed:  # unreachable after the pool's own retries: stop here
                break
    raise lost from None
