"""PostgreSQL's set-based writes: update, soft delete, restore and hard delete of many rows (or one) with
their version bumps, ``updated_at`` stamps and audit rows, in one statement per batch (or row).

Each statement is a chain of CTEs: ``old`` locks the rows (``SELECT ... FOR UPDATE``; READ COMMITTED
re-checks the filters on a row a competing writer changed, and drops it if they no longer hold), ``upd``
writes them, and ``aud`` inserts one audit row per row written, its ``changes`` rendered in SQL as the
generic path renders them (``pg_audit``). One row's soft or hard delete needs no ``old``: its ``UPDATE`` or
``DELETE`` locks and re-checks the row itself. A statement is atomic by itself; the caller runs the batches
of one call in a transaction.

Many rows go ``batch_size`` at a time in primary-key order (which also keeps concurrent calls from locking
in opposite orders). PostgreSQL applies the ``LIMIT`` above the lock (``Limit -> LockRows``): a row the
re-check drops is replaced by the next one that still matches, so ``old`` holds ``batch_size`` rows while
any are left, the next batch starts after the highest id it locked, and the walk ends at the first batch
that locked fewer. (An unlocked ``probe`` of the same rows used to mark the batch's end: a second scan of
every batch.)
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache, lru_cache
from typing import Any, Literal

from pypika_tortoise.terms import Parameterizer
from tortoise import timezone
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model
from tortoise.queryset import QuerySet

from datalayer.actor import current_actor, current_correlation_id
from datalayer.managers import pg_audit, pg_driver, pg_rows, pg_update
from datalayer.managers.pg_audit import quoted

Kind = Literal["update", "delete", "restore", "hard_delete"]
#: parameters every statement starts with: $1 now, $2 actor, $3 correlation id; a kind's own follow
_FIXED = 3
#: when a row is written: now, or just after its last write if a writer that went first (whose lock this
#: statement waited for) stamped a later time: a row's stamps and audit rows keep the order of its writes
STAMP = "GREATEST($1, {row}.\"updated_at\" + interval '1 microsecond')"
_ROW_STATE = {"update": '"deleted_at" IS NULL', "restore": '"deleted_at" IS NOT NULL'}


def _write(model: type[Model], kind: Kind, names: tuple[str, ...], where: str | None) -> tuple[str, str]:
    """(the statement writing the rows and returning them, the audit ``changes`` of a returned row).

    It writes the rows of ``old``, or, given ``where``, the rows that condition selects (a soft or hard delete
    needs nothing from before the write: a plain ``UPDATE``/``DELETE`` locks and re-checks the row itself).
    The audit reads only what the write returns (old values under ``carried`` names): joining ``old`` back
    would be planned on row estimates of 1 (a CTE's) and turn quadratic on thousands of rows.
    """
    table = quoted(model._meta.db_table)
    rows = ' FROM old WHERE t."id" = old."id"' if where is None else f" WHERE {where}"
    if kind == "hard_delete":
        rows = ' USING old WHERE t."id" = old."id"' if where is None else rows
        return f"DELETE FROM {table} AS t{rows} RETURNING t.*", pg_audit.removal_changes(model, "upd")
    stamp = STAMP.format(row="old" if where is None else "t")
    sets = f'"updated_at" = {stamp}, "updated_by" = $2, "version" = t."version" + 1'
    carry: list[str] = []
    if kind == "update":  # values from $4, their audit JSON after them
        values, differs, entries = pg_update.set_values(model, names, _FIXED + 1, "old", audit_row="upd")
        sets, rows, changes = f"{values}, {sets}", f"{rows} AND ({differs})", pg_audit.changes(entries)
        carry = [model._meta.fields_db_projection[name] for name in names]
    elif kind == "delete":
        sets = f'"deleted_at" = {stamp}, "deleted_by" = $2, {sets}'
        stamped = pg_audit.old_value(model, "deleted_at", 'upd."deleted_at"')
        changes = f"jsonb_build_object('deleted_at', jsonb_build_array(NULL, {stamped}))"
    else:
        was = pg_audit.old_value(model, "deleted_at", f"upd.{pg_update.carried('deleted_at')}")
        sets, carry = f'"deleted_at" = NULL, "deleted_by" = NULL, {sets}', ["deleted_at"]
        changes = f"jsonb_build_object('deleted_at', jsonb_build_array({was}, NULL))"
    returning = "".join(f", old.{quoted(column)} AS {pg_update.carried(column)}" for column in carry)
    return f"UPDATE {table} AS t SET {sets}{rows} RETURNING t.*{returning}", changes


def _chain(model: type[Model], kind: Kind, names: tuple[str, ...], old: str | None,
           where: str | None = None) -> str:
    """``[old AS (...), ]upd AS (...)[, aud AS (...)]``: see ``_write`` for ``old`` and ``where``."""
    write, changes = _write(model, kind, names, where)
    sql = f"upd AS ({write})" if old is None else f"old AS ({old}), upd AS ({write})"
    if getattr(model, "audited", True):
        stamp = STAMP.format(row="upd") if kind == "hard_delete" else 'upd."updated_at"'
        audit = pg_audit.insert_from(model, kind, "upd", now=stamp, actor="$2", correlation="$3",
                                     record_id='upd."id"::text', changes_sql=changes)
        sql += f", aud AS ({audit})"
    return sql


def _own_params(model: type[Model], kind: Kind, names: Sequence[str], values: dict[str, Any]) -> list[Any]:
    params: list[Any] = [timezone.now(), current_actor(), current_correlation_id()]
    if kind == "update":
        params += pg_update.audit_values(model, names, values)
    return params


# ------------------------------------------------------------------------------------------- one row


@cache
def _row_statement(model: type[Model], kind: Kind, names: tuple[str, ...], key_param: int) -> str:
    table = quoted(model._meta.db_table)
    columns = pg_update.written_columns(model)
    if kind in ("delete", "hard_delete"):
        where = f't."id" = ${key_param}' + (' AND t."deleted_at" IS NULL' if kind == "delete" else "")
        return f"WITH {_chain(model, kind, names, None, where)} SELECT {columns} FROM upd"
    old = f'SELECT * FROM {table} WHERE "id" = ${key_param} AND {_ROW_STATE[kind]} FOR UPDATE'
    return f"WITH {_chain(model, kind, names, old)} SELECT {columns} FROM upd"


async def write_one(model: type[Model], kind: Kind, key: Any, values: dict[str, Any] | None = None,
                    client: BaseDBAsyncClient | None = None) -> Any | None:
    """``kind`` on the row ``key`` (a live one, a deleted one for ``restore``, any for ``hard_delete``).

    Returns the row as written (as stored before, for ``hard_delete``), or None when no such row exists.
    """
    names = tuple(sorted(values or ()))
    params = _own_params(model, kind, names, values or {})
    params.append(key)
    rows = await pg_driver.fetch(_row_statement(model, kind, names, len(params)), params, client)
    if not rows:
        return None
    return pg_rows.model_rows(model, rows)[0] if kind != "hard_delete" else rows[0]["id"]


# ------------------------------------------------------------------------------------------ many rows


def parameterized(queryset: QuerySet[Any], first: int) -> tuple[str, list[Any]]:
    """The SQL of ``queryset`` with its parameters numbered from ``$first``, and their values.

    Built as Tortoise builds it to run it (its ``_make_query``), so filters read exactly as the ORM's own.
    """
    queryset._choose_db_if_not_chosen(True)
    queryset._make_query()
    context = queryset.query.QUERY_CLS.SQL_CONTEXT.copy(
        parameterizer=Parameterizer(lambda count: f"${first - 1 + count}"))
    return queryset.query.get_parameterized_sql(context)


@lru_cache(maxsize=256)
def _batch_statement(model: type[Model], kind: Kind, names: tuple[str, ...], locked: str) -> str:
    if not locked.endswith(" FOR UPDATE"):
        raise AssertionError(f"expected a locking SELECT, got {locked[-40:]!r}")
    return (
        f"WITH {_chain(model, kind, names, locked)} "
        'SELECT (SELECT count(*) FROM old) AS "scanned", '
        '(SELECT "id" FROM old ORDER BY "id" DESC LIMIT 1) AS "last", '
        'ARRAY(SELECT "id" FROM upd) AS "written"'
    )


async def write_many(
    model: type[Model], kind: Kind, rows: QuerySet[Any], *, batch_size: int,
    values: dict[str, Any] | None = None,
) -> list[Any]:
    """``kind`` on every row ``rows`` selects, ``batch_size`` rows a statement; the ids of the rows written.

    ``rows`` is the filtered queryset (the manager's ``_filtered``); the walk adds the key order, the batch
    limit and the lock. Run it inside a transaction: a later batch's failure must undo the earlier ones.
    """
    names = tuple(sorted(values or ()))
    params = _own_params(model, kind, names, values or {})
    written: list[Any] = []
    last = None
    while True:
        queryset = rows if last is None else rows.filter(id__gt=last)
        locked, filter_params = parameterized(
            queryset.order_by("id").limit(batch_size).select_for_update(), len(params) + 1)
        statement = _batch_statement(model, kind, names, locked)
        [found] = await pg_driver.fetch(statement, [*params, *filter_params])
        written.extend(found["written"])
        if found["scanned"] < batch_size:
            return written
        last = found["last"]
