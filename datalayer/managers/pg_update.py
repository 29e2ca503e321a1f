"""PostgreSQL's one-statement update: lock, version check, write and audit row in a single round trip.

The generic path needs BEGIN, SELECT ... FOR UPDATE, UPDATE, INSERT audit, COMMIT. Here one CTE does it:
``old`` locks the live row (READ COMMITTED re-reads it after a competing writer commits, so the version it
sees is current), ``upd`` applies the change only if the version matches and something really differs,
``aud`` writes the ``{field: [old, new]}`` diff computed in SQL, and the final SELECT tells apart "missing",
"version moved" and "nothing changed".
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import cache
from typing import Any

from tortoise import timezone
from tortoise.connection import get_connection
from tortoise.models import Model

from datalayer.actor import current_actor, current_correlation_id
from datalayer.config import CONNECTION_NAME
from datalayer.core.audit_log import AuditLog
from datalayer.ids import uuid7
from datalayer.managers.bulk import driver_value
from datalayer.managers.pg_audit import jsonb_object, masked_value

OLD_VERSION = "_dl_old_version"


def supported(model: type[Model]) -> bool:
    fields = model._meta.fields_map
    return all(name in fields for name in ("deleted_at", "version", "updated_at", "updated_by"))


@cache
def _statement(model: type[Model], names: tuple[str, ...]) -> str:
    meta = model._meta
    table = meta.db_table
    columns = [meta.fields_db_projection[name] for name in names]
    secret = set(getattr(model, "secret_fields", ()))
    # $1 id, $2 now, $3 actor, $4 expected version, $5 audit id, $6 record id text, $7 correlation, $8.. values
    sets = ", ".join(f'"{column}" = ${8 + i}' for i, column in enumerate(columns))
    differs = " OR ".join(f't."{column}" IS DISTINCT FROM ${8 + i}' for i, column in enumerate(columns))
    read = ", ".join(f'"{column}"' for column in {*columns, "id", "version"})
    sql = (
        f'WITH old AS (SELECT {read} FROM "{table}" WHERE "id" = $1 AND "deleted_at" IS NULL FOR UPDATE), '
        f'upd AS (UPDATE "{table}" AS t SET {sets}, "updated_at" = $2, "updated_by" = $3, '
        f'"version" = t."version" + 1 FROM old WHERE t."id" = old."id" '
        f'AND old."version" = COALESCE($4::int, old."version") AND ({differs}) RETURNING t.*)'
    )
    if getattr(model, "audited", True):
        pairs = []
        for name, column in zip(names, columns, strict=True):
            old_ref, new_ref = f'old."{column}"', f'upd."{column}"'
            if name in secret:
                pair = f"jsonb_build_array({masked_value(old_ref)}, {masked_value(new_ref)})"
            else:
                pair = f"jsonb_build_array(to_jsonb({old_ref}), to_jsonb({new_ref}))"
            pairs.append((name, f"CASE WHEN {old_ref} IS DISTINCT FROM {new_ref} THEN {pair} END"))
        audit_table = AuditLog._meta.db_table
        sql += (
            f', aud AS (INSERT INTO "{audit_table}" ("id", "created_at", "updated_at", "actor_id", "action", '
            f'"table_name", "record_id", "changes", "correlation_id") '
            f"SELECT $5, $2, $2, $3, 'update', '{table}', $6, "
            f'{jsonb_object(pairs)}, $7 FROM old JOIN upd ON upd."id" = old."id")'
        )
    return sql + f' SELECT old."version" AS "{OLD_VERSION}", upd.* FROM old LEFT JOIN upd ON upd."id" = old."id"'


async def update_in_one_statement(
    model: type[Model], key: uuid.UUID, values: dict[str, Any], expected_version: int | None
) -> tuple[int | None, Any | None]:
    """Returns ``(version found, updated instance)``: ``(None, None)`` when no live row has ``key``;
    ``(v, None)`` when the version did not match or nothing changed."""
    names = tuple(sorted(values))
    params: list[Any] = [key, timezone.now(), current_actor(), expected_version, uuid7(), str(key),
                         current_correlation_id()]
    params.extend(driver_value(model, name, values[name]) for name in names)
    rows: Sequence[dict] = await get_connection(CONNECTION_NAME).execute_query_dict(_statement(model, names), params)
    if not rows:
        return None, None
    row = dict(rows[0])
    found_version = row.pop(OLD_VERSION)
    if row.get("id") is None:
        return found_version, None
    return found_version, model._init_from_db(**row)
