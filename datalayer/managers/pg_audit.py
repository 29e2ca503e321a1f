"""SQL that writes audit rows on the server, for PostgreSQL statements that write and audit at once.

A column's old value is rendered in SQL exactly as the generic path renders the value Tortoise reads
(``auditing.jsonable``, masked by ``auditing._masked``): datetimes as Python's ``isoformat`` of the UTC value
(``2030-01-02T03:04:05+00:00``, microseconds only when not zero), decimals as their text, UUIDs as strings,
bytes as ``"<n bytes>"``, JSON as JSON, secrets as ``"***"``. Kinds SQL cannot render the same way (times of
day, durations, decimals of more than six places, fields of other libraries) make a model not
``renderable``: it keeps the generic path. New values come from Python (the same ``jsonable`` the generic
path uses), passed as JSON parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from tortoise import fields as tf
from tortoise.models import Model

from datalayer.core.audit_log import AuditLog
from datalayer.managers.auditing import AUDIT_COLUMNS, MASK, audited_fields

_PAIRS_PER_CALL = 45  # jsonb_build_object takes at most 100 arguments

#: a version-7 UUID made by the server, one per row (the milliseconds of ``clock_timestamp()`` over a v4)
UUID7 = (
    "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
    "substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6), "
    "52, 1), 53, 1), 'hex')::uuid"
)
#: to_char formats of Python's ``isoformat()`` for a UTC datetime, without and with microseconds
_WHOLE_SECOND = '\'YYYY-MM-DD"T"HH24:MI:SS"+00:00"\''
_FRACTION = '\'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\''
_TO_JSONB = (tf.CharField, tf.TextField, tf.IntField, tf.BigIntField, tf.SmallIntField, tf.BooleanField,
             tf.FloatField, tf.UUIDField, tf.JSONField)
_MAX_PLAIN_DECIMAL_PLACES = 6  # str(Decimal) switches to exponent notation below 1e-6


def literal(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def quoted(identifier: str) -> str:
    """``identifier`` (a table or column name) quoted for SQL."""
    return '"' + identifier.replace('"', '""') + '"'


def _plain(field: tf.Field, ref: str) -> str | None:
    """The jsonb expression of the column ``ref`` as ``jsonable`` renders its value, or None if SQL cannot."""
    if not type(field).to_python_value.__module__.startswith("tortoise."):
        return None  # a field class of its own may read values back differently
    if isinstance(field, tf.DatetimeField):
        utc = f"({ref} AT TIME ZONE 'UTC')"
        whole = f"extract(microseconds FROM {ref})::bigint % 1000000 = 0"
        return f"to_jsonb(to_char({utc}, CASE WHEN {whole} THEN {_WHOLE_SECOND} ELSE {_FRACTION} END))"
    if isinstance(field, tf.DateField):
        return f"to_jsonb(to_char({ref}, 'YYYY-MM-DD'))"
    if isinstance(field, tf.DecimalField):
        return f"to_jsonb({ref}::text)" if field.decimal_places <= _MAX_PLAIN_DECIMAL_PLACES else None
    if isinstance(field, tf.BinaryField):
        return f"to_jsonb('<' || octet_length({ref}) || ' bytes>')"
    if isinstance(field, (tf.TimeField, tf.TimeDeltaField)):
        return None
    if isinstance(field, _TO_JSONB):
        return f"to_jsonb({ref})"
    return None


def old_value(model: type[Model], name: str, ref: str) -> str:
    """The jsonb expression of column ``ref`` (field ``name``) as the generic audit shows an old value."""
    if name in getattr(model, "secret_fields", ()):
        return f"(CASE WHEN {ref} IS NULL THEN NULL WHEN {ref}::text = '' THEN '\"\"'::jsonb " \
               f"ELSE '\"{MASK}\"'::jsonb END)"
    rendered = _plain(model._meta.fields_map[name], ref)
    if rendered is None:
        raise ValueError(f"{model.__name__}.{name}: its audit value cannot be rendered in SQL")
    return rendered


@cache
def renderable(model: type[Model]) -> bool:
    """Whether every audited field of ``model`` renders in SQL as in Python (always, for unaudited models)."""
    if not getattr(model, "audited", True):
        return True
    secret = set(getattr(model, "secret_fields", ()))
    fields_map = model._meta.fields_map
    return all(name in secret or _plain(fields_map[name], "x") is not None for name in audited_fields(model))


def changes(entries: Sequence[tuple[str, str | None, str]]) -> str:
    """A jsonb object from ``(key, condition or None, jsonb value)``: a key with a condition appears only
    where the condition holds (``'{}'`` when none does). No null is stripped from the values themselves."""
    always = [(key, value) for key, condition, value in entries if condition is None]
    parts = [
        "jsonb_build_object("
        + ", ".join(f"{literal(key)}, {value}" for key, value in always[start:start + _PAIRS_PER_CALL]) + ")"
        for start in range(0, len(always), _PAIRS_PER_CALL)
    ]
    parts += [f"CASE WHEN {condition} THEN jsonb_build_object({literal(key)}, {value}) ELSE '{{}}'::jsonb END"
              for key, condition, value in entries if condition is not None]
    return " || ".join(parts) if parts else "'{}'::jsonb"


def removal_changes(model: type[Model], alias: str) -> str:
    """The jsonb ``{field: [old, null]}`` of every audited field of the row ``alias`` (a hard delete)."""
    olds = [(name, old_value(model, name, f"{alias}.{quoted(column)}"))
            for name, column in _audited_columns(model)]
    return changes([(name, None, f"jsonb_build_array({old}, NULL)") for name, old in olds])


@cache
def _audited_columns(model: type[Model]) -> tuple[tuple[str, str], ...]:
    projection = model._meta.fields_db_projection
    return tuple((name, projection[name]) for name in audited_fields(model))


def insert_from(model: type[Model], action: str, source: str, *, now: str, actor: str, correlation: str,
                record_id: str, changes_sql: str, audit_id: str = UUID7) -> str:
    """``INSERT INTO audit_log ... SELECT ... FROM source``: one audit row per row of ``source``.

    The other arguments are SQL expressions (parameters such as ``$2``, or column references of ``source``).
    """
    columns = ", ".join(f'"{column}"' for column in AUDIT_COLUMNS)
    return (
        f'INSERT INTO "{AuditLog._meta.db_table}" ({columns}) SELECT {audit_id}, {now}, {now}, {actor}, '
        f"{literal(action)}, {literal(model._meta.db_table)}, {record_id}, {changes_sql}, {correlation} "
        f"FROM {source}"
    )
