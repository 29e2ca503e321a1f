"""PostgreSQL's one-statement update: lock, version check, write and audit row in a single round trip.

The generic path needs BEGIN, SELECT ... FOR UPDATE, UPDATE, INSERT audit, COMMIT. Here one CTE does it:
``old`` locks the live row (READ COMMITTED re-reads it after a competing writer commits, so the version it
sees is current), ``upd`` applies the change only if the version matches and something really differs,
``aud`` writes the ``{field: [old, new]}`` diff (old values rendered in SQL as the generic path renders them,
new ones sent as JSON, see ``pg_audit``), and the final SELECT tells apart "missing", "version moved" and
"nothing changed".
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import cache
from typing import Any

from tortoise import timezone
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model

from datalayer.actor import current_actor, current_correlation_id
from datalayer.ids import uuid7
from datalayer.managers import auditing, pg_audit, pg_driver, pg_rows
from datalayer.managers.bulk import driver_value
from datalayer.managers.pg_audit import quoted

OLD_VERSION = "_dl_old_version"
#: now, or just after the row's last write when a writer whose lock this one waited for stamped a later time
STAMP = "GREATEST($2, old.\"updated_at\" + interval '1 microsecond')"


def supported(model: type[Model]) -> bool:
    """Soft-deletable, versioned models keyed by ``id`` whose audit values render in SQL (``pg_audit``): the
    models whose updates, deletes and restores (``pg_set_writes``) take one statement."""
    meta = model._meta
    kept = ("deleted_at", "deleted_by", "version", "updated_at", "updated_by")
    return (all(name in meta.fields_map for name in kept) and meta.pk_attr == meta.db_pk_column == "id"
            and pg_audit.renderable(model))


Entries = list[tuple[str, str | None, str]]


def set_values(model: type[Model], names: Sequence[str], first: int, row: str,
               audit_row: str | None = None) -> tuple[str, str, Entries]:
    """For an update of ``names`` whose values are ``$first``.. and their audit JSON the parameters after:
    the ``SET`` list, the condition "the row ``row`` differs", and the audit ``changes`` entries. The entries
    read the old values from ``row``, or, given ``audit_row``, from the ``carried`` columns it returned."""
    projection = model._meta.fields_db_projection
    sets: list[str] = []
    differs: list[str] = []
    entries: Entries = []
    for index, name in enumerate(names):
        column, value, shown = projection[name], f"${first + index}", f"${first + len(names) + index}"
        sets.append(f"{quoted(column)} = {value}")
        differs.append(f"{row}.{quoted(column)} IS DISTINCT FROM {value}")
        before = f"{row}.{quoted(column)}" if audit_row is None else f"{audit_row}.{carried(column)}"
        old = pg_audit.old_value(model, name, before)
        pair = f"jsonb_build_array({old}, {shown}::jsonb)"
        entries.append((name, f"{before} IS DISTINCT FROM {value}", pair))
    return ", ".join(sets), " OR ".join(differs), entries


def carried(column: str) -> str:
    """The name a write's ``RETURNING`` gives the old value of ``column``, for the audit row to read."""
    return quoted(f"_dl_old_{column}")


def audit_values(model: type[Model], names: Sequence[str], values: dict[str, Any]) -> list[Any]:
    """The parameters ``set_values`` expects: the values as the driver takes them, then their audit JSON."""
    return [*(driver_value(model, name, values[name]) for name in names),
            *(auditing.value_json(model, name, values[name]) for name in names)]


@cache
def _statement(model: type[Model], names: tuple[str, ...]) -> str:
    table = quoted(model._meta.db_table)
    projection = model._meta.fields_db_projection
    read = ", ".join(map(quoted, sorted({"id", "version", "updated_at", *(projection[n] for n in names)})))
    # $1 id, $2 now, $3 actor, $4 expected version, $5 audit id, $6 record id text, $7 correlation,
    # $8.. values (and their audit JSON)
    sets, differs, entries = set_values(model, names, 8, "old")
    sql = (
        f'WITH old AS (SELECT {read} FROM {table} WHERE "id" = $1 AND "deleted_at" IS NULL FOR UPDATE), '
        f'upd AS (UPDATE {table} AS t SET {sets}, "updated_at" = {STAMP}, "updated_by" = $3, '
        f'"version" = t."version" + 1 FROM old WHERE t."id" = old."id" '
        f'AND old."version" = COALESCE($4::int, old."version") AND ({differs}) RETURNING t.*)'
    )
    if getattr(model, "audited", True):
        audit = pg_audit.insert_from(model, "update", 'old JOIN upd ON upd."id" = old."id"',
                                     now='upd."updated_at"', actor="$3", correlation="$7", record_id="$6",
                                     changes_sql=pg_audit.changes(entries), audit_id="$5")
        sql += f", aud AS ({audit})"
    found = f'SELECT {written_columns(model)}, old."version" AS "{OLD_VERSION}" FROM old LEFT JOIN upd ON upd."id" = old."id"'
    return f"{sql} {found}"


@cache
def written_columns(model: type[Model]) -> str:
    """Every column of the row a write's ``upd`` CTE returned, in ``pg_rows.columns_of`` order (SQL)."""
    return ", ".join(f"upd.{quoted(column)}" for column in pg_rows.columns_of(model))


@cache
def _returned(model: type[Model]) -> tuple[str, ...]:
    """The columns ``_statement`` returns: the model's, then the version found."""
    return (*pg_rows.columns_of(model), OLD_VERSION)


async def update_in_one_statement(
    model: type[Model], key: uuid.UUID, values: dict[str, Any], expected_version: int | None,
    client: BaseDBAsyncClient | None = None,
) -> tuple[int | None, Any | None]:
    """Returns ``(version found, updated instance)``: ``(None, None)`` when no live row has ``key``;
    ``(v, None)`` when the version did not match or nothing changed."""
    names = tuple(sorted(values))
    params: list[Any] = [key, timezone.now(), current_actor(), expected_version, uuid7(), str(key),
                         current_correlation_id(), *audit_values(model, names, values)]
    rows = await pg_driver.fetch(_statement(model, names), params, client)
    if not rows:
        return None, None
    row = rows[0]  # the driver's record: the model's columns, and the version found
    if row["id"] is None:
        return row[OLD_VERSION], None
    return row[OLD_VERSION], pg_rows.instances(model, _returned(model), rows)[0]
