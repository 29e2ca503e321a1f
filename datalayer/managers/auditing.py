"""Turning writes into ``AuditLog`` rows: JSON-safe values, diffs, and masked secrets."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

from tortoise import timezone

from datalayer.actor import current_actor, current_correlation_id
from datalayer.managers.ids import new_uuid4s
from datalayer.managers.validation import MANAGED_FIELDS
from datalayer.models.audit_log import AuditAction, AuditLog

MASK = "***"


_PLAIN = (str, int, float, bool, type(None))


def jsonable(value: Any) -> Any:
    """A value as it should read in the audit log (ISO datetimes, string UUIDs and decimals)."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value


def _unchanged(value: Any) -> Any:
    return value


def _masked(model: type, name: str, value: Any) -> Any:
    return MASK if name in getattr(model, "secret_fields", ()) and value not in (None, "") else jsonable(value)


@cache
def audited_fields(model: type) -> tuple[str, ...]:
    return tuple(name for name in model._meta.fields_db_projection if name not in MANAGED_FIELDS)


def creation_changes(model: type, values: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``{field: [None, value]}`` for the set fields of a new row (``values`` maps field names)."""
    secret = getattr(model, "secret_fields", ())
    changes = {}
    for name in audited_fields(model):
        value = values.get(name)
        if value is None:
            continue
        if type(value) not in _PLAIN:
            value = jsonable(value)
        if name in secret and value != "":
            value = MASK
        changes[name] = [None, value]
    return changes


def row_of(model: type, instance: Any) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in model._meta.fields_db_projection}


def removal_changes(model: type, instance: Any) -> dict[str, list[Any]]:
    return {name: [_masked(model, name, getattr(instance, name)), None] for name in audited_fields(model)}


def diff(model: type, instance: Any, values: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``{field: [old, new]}`` for the values that really change the row."""
    changes = {}
    for name, new in values.items():
        old = getattr(instance, name)
        if old != new:
            changes[name] = [_masked(model, name, old), _masked(model, name, new)]
    return changes


def audit_row(model: type, action: AuditAction, record_id: Any, changes: dict[str, Any]) -> AuditLog:
    return AuditLog(
        actor_id=current_actor(),
        action=action,
        table_name=model._meta.db_table,
        record_id=str(record_id),
        changes=changes,
        correlation_id=current_correlation_id(),
    )


async def write_audit(model: type, action: AuditAction, record_id: Any, changes: dict[str, Any]) -> None:
    if getattr(model, "audited", True):
        await audit_row(model, action, record_id, changes).save()


#: ``AuditLog`` columns in the order ``creation_entries`` fills them
AUDIT_COLUMNS = ("id", "created_at", "updated_at", "actor_id", "action", "table_name", "record_id", "changes",
                 "correlation_id")


def creation_entries(
    model: type, rows: Sequence[Mapping[str, Any]], encode_changes: Callable[[Any], Any] = _unchanged
) -> list[tuple[Any, ...]]:
    """One ``create`` audit row per stored row, as tuples in ``AUDIT_COLUMNS`` order; none if not audited."""
    if not getattr(model, "audited", True):
        return []
    now = timezone.now()
    actor, correlation_id, table = current_actor(), current_correlation_id(), model._meta.db_table
    pk = model._meta.pk_attr
    return [
        (entry_id, now, now, actor, "create", table, str(row[pk]), encode_changes(creation_changes(model, row)),
         correlation_id)
        for entry_id, row in zip(new_uuid4s(len(rows)), rows)
    ]
