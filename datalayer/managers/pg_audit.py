"""Audit rows that PostgreSQL builds itself from the rows a bulk insert just wrote.

Building 20,000 ``{field: [None, value]}`` dicts in Python and copying them back cost as much as the
data rows; one ``INSERT ... SELECT`` computing the same JSON in SQL removes that round trip of work.
``to_jsonb`` renders values as the Python path does (ISO datetimes, UUID strings, JSON as JSON).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from tortoise import timezone
from tortoise.connection import get_connection

from datalayer.actor import current_actor, current_correlation_id
from datalayer.config import CONNECTION_NAME
from datalayer.managers.auditing import MASK, audited_fields
from datalayer.models.audit_log import AuditLog

_MAX_PAIRS_PER_CALL = 45  # jsonb_build_object takes at most 100 arguments


def masked_value(column_ref: str) -> str:
    return f"CASE WHEN {column_ref}::text = '' THEN '\"\"'::jsonb ELSE '\"{MASK}\"'::jsonb END"


def jsonb_object(pairs: Sequence[tuple[str, str]]) -> str:
    """``jsonb_strip_nulls`` of an object from ``(key, jsonb expression or NULL)`` pairs, chunked."""
    chunks = []
    for start in range(0, len(pairs), _MAX_PAIRS_PER_CALL):
        items = ", ".join(f"'{key}', {value}" for key, value in pairs[start:start + _MAX_PAIRS_PER_CALL])
        chunks.append(f"jsonb_build_object({items})")
    return f"jsonb_strip_nulls({' || '.join(chunks) or chr(39) + '{}' + chr(39) + '::jsonb'})"


@cache
def _creation_statement(model: type) -> str:
    meta = model._meta
    secret = set(getattr(model, "secret_fields", ()))
    pairs = []
    for name in audited_fields(model):
        ref = f't."{meta.fields_db_projection[name]}"'
        value = masked_value(ref) if name in secret else f"to_jsonb({ref})"
        pairs.append((name, f"CASE WHEN {ref} IS NOT NULL THEN jsonb_build_array(NULL, {value}) END"))
    pk = meta.db_pk_column
    # join the keys rather than "WHERE pk = ANY($1)": that is a sequential scan of the whole table
    return (
        f'INSERT INTO "{AuditLog._meta.db_table}" ("id", "created_at", "updated_at", "actor_id", "action", '
        f'"table_name", "record_id", "changes", "correlation_id") '
        f"SELECT gen_random_uuid(), $2, $2, $3, 'create', '{meta.db_table}', t.\"{pk}\"::text, "
        f'{jsonb_object(pairs)}, $4 FROM unnest($1::uuid[]) AS k("{pk}") JOIN "{meta.db_table}" AS t USING ("{pk}")'
    )


async def audit_created(model: type, keys: Sequence[Any]) -> None:
    """One ``create`` audit row per key, built by the server from the stored rows."""
    if not keys or not getattr(model, "audited", True):
        return
    params = [list(keys), timezone.now(), current_actor(), current_correlation_id()]
    await get_connection(CONNECTION_NAME).execute_query(_creation_statement(model), params)
