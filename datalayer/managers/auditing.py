"""Turning writes into ``AuditLog`` rows: JSON-safe values, diffs, and masked secrets."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from json.encoder import encode_basestring  # C-accelerated, ensure_ascii=False
from typing import Any

from tortoise import timezone
from tortoise.models import Model

from datalayer.actor import current_actor, current_correlation_id
from datalayer.core.audit_log import AuditAction, AuditLog
from datalayer.ids import new_uuid7s
from datalayer.managers.validation import MANAGED_FIELDS

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


def _masked(model: type[Model], name: str, value: Any) -> Any:
    return MASK if name in getattr(model, "secret_fields", ()) and value not in (None, "") else jsonable(value)


@cache
def audited_fields(model: type[Model]) -> tuple[str, ...]:
    return tuple(name for name in model._meta.fields_db_projection if name not in MANAGED_FIELDS)


def creation_changes(model: type[Model], values: Mapping[str, Any]) -> dict[str, list[Any]]:
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


_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@cache
def _creation_json_plan(model: type[Model]) -> tuple[tuple[str, str, bool], ...]:
    """(field, its JSON key and ``[null,`` opening, whether it is secret) for every audited field."""
    secret = getattr(model, "secret_fields", ())
    return tuple((name, f"{encode_basestring(name)}:[null,", name in secret) for name in audited_fields(model))


def creation_changes_json(model: type[Model], values: Mapping[str, Any]) -> str:
    """``creation_changes`` as compact JSON text, written directly: the COPY path's hot loop.

    Strings and integers (nearly every value) are encoded by hand; anything else goes through ``jsonable``
    and the JSON encoder, so the text always equals the encoded ``creation_changes``.
    """
    parts = []
    for name, opening, secret in _creation_json_plan(model):
        value = values.get(name)
        if value is not None:
            parts.append(f"{opening}{_value_text(value, secret)}]")
    return "{" + ",".join(parts) + "}"


def _value_text(value: Any, secret: bool) -> str:
    """``value`` (masked when ``secret``, as ``_masked`` masks it) as compact JSON text: strings, integers and
    UUIDs by hand, anything else through ``jsonable`` and the JSON encoder."""
    kind = type(value)
    if kind is str:
        return '"***"' if secret and value else encode_basestring(value)
    if kind is int:
        return '"***"' if secret else int.__repr__(value)
    if value is None:
        return "null"
    if isinstance(value, uuid.UUID):
        return '"***"' if secret else f'"{value}"'
    plain = jsonable(value)
    return '"***"' if secret and plain != "" else _COMPACT_JSON(plain)


def value_json(model: type[Model], name: str, value: Any) -> str:
    """One side of an audit pair as JSON text, masked as ``diff`` masks it: for SQL that builds the pair
    (which casts it to ``jsonb``)."""
    return _value_text(value, name in getattr(model, "secret_fields", ()))


def row_of(model: type[Model], instance: Any) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in model._meta.fields_db_projection}


def removal_changes(model: type[Model], instance: Any) -> dict[str, list[Any]]:
    return {name: [_masked(model, name, getattr(instance, name)), None] for name in audited_fields(model)}


def diff(model: type[Model], instance: Any, values: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``{field: [old, new]}`` for the values that really change the row."""
    changes = {}
    for name, new in values.items():
        old = getattr(instance, name)
        if old != new:
            changes[name] = [_masked(model, name, old), _masked(model, name, new)]
    return changes


def audit_row(model: type[Model], action: AuditAction, record_id: Any, changes: dict[str, Any]) -> AuditLog:
    return AuditLog(
        actor_id=current_actor(),
        action=action,
        table_name=model._meta.db_table,
        record_id=str(record_id),
        changes=changes,
        correlation_id=current_correlation_id(),
    )


async def write_audit(model: type[Model], action: AuditAction, record_id: Any, changes: dict[str, Any]) -> None:
    if getattr(model, "audited", True):
        await audit_row(model, action, record_id, changes).save()


#: ``AuditLog`` columns in the order ``creation_entries`` fills them
AUDIT_COLUMNS = ("id", "created_at", "updated_at", "actor_id", "action", "table_name", "record_id", "changes",
                 "correlation_id")


def creation_entries(
    model: type[Model],
    rows: Sequence[Mapping[str, Any]],
    changes_of: Callable[[type, Mapping[str, Any]], Any] = creation_changes,
) -> list[tuple[Any, ...]]:
    """One ``create`` audit row per stored row, as tuples in ``AUDIT_COLUMNS`` order; none if not audited.

    ``changes_of`` makes each row's ``changes`` (``creation_changes_json`` for COPY, which takes JSON text).
    """
    if not getattr(model, "audited", True):
        return []
    now = timezone.now()
    actor, correlation_id, table = current_actor(), current_correlation_id(), model._meta.db_table
    pk = model._meta.pk_attr
    return [
        (entry_id, now, now, actor, "create", table, str(row[pk]), changes_of(model, row), correlation_id)
        for entry_id, row in zip(new_uuid7s(len(rows)), rows)
    ]
