"""Checked filters as a PostgreSQL ``WHERE`` clause whose text depends only on the filters' shape.

The filters were checked by ``filters.checked_filters`` (allow-list, operator, coerced value). Each one
becomes the condition Tortoise itself writes for that lookup on PostgreSQL (same operator, same ``CAST`` and
``UPPER``, same ``LIKE`` escaping), with its value encoded by Tortoise's own encoder for the lookup, so the
rows match the generic path's. Two differences in form, none in meaning: a list is bound as one array
(``= ANY($n)`` for ``IN``, ``<> ALL($n)`` for ``NOT IN``), so the text does not change with the list's
length; and the conditions are put in a fixed order (AND commutes), so ``{a, b}`` and ``{b, a}`` share one
statement. A lookup not known here (a relation path, a field type with filters of its own) gives ``None``:
the caller takes the generic path.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Literal

from tortoise import fields as tf
from tortoise.exceptions import BaseORMException
from tortoise.filters import (
    between_and,
    contains,
    ends_with,
    escape_like,
    insensitive_contains,
    insensitive_ends_with,
    insensitive_exact,
    insensitive_starts_with,
    is_in,
    is_null,
    not_equal,
    not_in,
    not_null,
    starts_with,
)
from tortoise.models import Model

from datalayer.managers.filters import FieldInfo

Rows = Literal["all", "live", "deleted"]
#: one condition: (column, kind, constant part); a filter shape is a sorted tuple of them
Condition = tuple[str, str, Any]
Shape = tuple[Condition, ...]

#: field types whose driver values compare in SQL exactly as Tortoise's do (lists of them bind as arrays)
_PLAIN_FIELDS = (tf.CharField, tf.TextField, tf.UUIDField, tf.IntField, tf.BooleanField, tf.DatetimeField,
                 tf.DateField, tf.DecimalField, tf.FloatField)
_COMPARISONS = {operator.eq: "=", operator.gt: ">", operator.ge: ">=", operator.lt: "<", operator.le: "<="}
#: LIKE lookups: (pattern around the escaped value, case-insensitive)
_LIKES = {
    contains: ("%{}%", False), starts_with: ("{}%", False), ends_with: ("%{}", False),
    insensitive_contains: ("%{}%", True), insensitive_starts_with: ("{}%", True),
    insensitive_ends_with: ("%{}", True),
}
_DELETED = {"all": None, "live": '"deleted_at" IS NULL', "deleted": 'NOT "deleted_at" IS NULL'}


def _condition(model: type[Model], lookup: str, value: Any) -> tuple[Condition, list[Any]] | None:
    """One own-field lookup as ``((column, kind, constant), parameters)``, or None if not expressible."""
    meta = model._meta
    if value is None and f"{lookup}__isnull" in meta.filters:  # as Tortoise reads ``field=None``
        lookup, value = f"{lookup}__isnull", True
    info = meta.filters.get(lookup)
    if info is None or "table" in info:
        return None
    field = meta.fields_map.get(info["field"])
    if not isinstance(field, _PLAIN_FIELDS) or field.get_for_dialect("postgres", "function_cast") is not None:
        return None
    encoder = info.get("value_encoder")
    try:
        value = encoder(value, model, field) if encoder is not None else field.to_db_value(value, model)
    except (BaseORMException, ValueError, TypeError):  # a value Tortoise refuses (too long...): its path says so
        return None
    column, how = info.get("source_field", info["field"]), info["operator"]
    if how in _COMPARISONS:
        return (column, _COMPARISONS[how], None), [value]
    if how is not_equal:
        return (column, "not", None), [value]
    if how is is_in or how is not_in:
        return (column, "in" if how is is_in else "not_in", None), [list(value)]
    if how is between_and:
        return (column, "range", None), list(value)
    if how is is_null or how is not_null:
        return (column, "null", bool(value) is (how is is_null)), []
    if how is insensitive_exact:
        return (column, "iexact", None), [value]
    if how in _LIKES:
        pattern, folded = _LIKES[how]
        return (column, "ilike" if folded else "like", None), [pattern.format(escape_like(value))]
    return None


def compile_filters(
    model: type[Model], checked: Sequence[tuple[FieldInfo, str, Any]]
) -> tuple[Shape, list[Any]] | None:
    """``(shape, parameters)`` for checked filters (``filters.checked_filters``); None for the generic path.

    The parameters are in the order ``where_sql(shape)`` numbers them.
    """
    if not checked:
        return (), []
    found = []
    for info, lookup, value in checked:
        if info.hops:
            return None
        condition = _condition(model, lookup, value)
        if condition is None:
            return None
        found.append(condition)
    found.sort(key=lambda pair: (pair[0][0], pair[0][1], repr(pair[0][2])))
    return tuple(condition for condition, _ in found), [value for _, values in found for value in values]


def _text(condition: Condition, first: int) -> tuple[str, int]:
    """A condition's SQL with placeholders from ``$first``; returns it and the next free number."""
    column, kind, constant = condition
    quoted, n = f'"{column}"', first
    if kind in ("=", ">", ">=", "<", "<="):
        return f"{quoted} {kind} ${n}", n + 1
    if kind == "not":
        return f"({quoted} <> ${n} OR {quoted} IS NULL)", n + 1
    if kind == "in":
        return f"{quoted} = ANY(${n})", n + 1
    if kind == "not_in":
        return f"({quoted} <> ALL(${n}) OR {quoted} IS NULL)", n + 1
    if kind == "range":
        return f"{quoted} BETWEEN ${n} AND ${n + 1}", n + 2
    if kind == "null":
        return (f"{quoted} IS NULL" if constant else f"NOT {quoted} IS NULL"), n
    if kind == "iexact":
        return f"UPPER(CAST({quoted} AS VARCHAR)) = UPPER(${n})", n + 1
    if kind == "like":
        return f"CAST({quoted} AS VARCHAR) LIKE ${n} ESCAPE '\\'", n + 1
    return f"UPPER(CAST({quoted} AS VARCHAR)) LIKE UPPER(${n}) ESCAPE '\\'", n + 1  # ilike


@lru_cache(maxsize=1024)
def where_sql(shape: Shape, rows: Rows, first: int = 1) -> tuple[str, int]:
    """``" WHERE ..."`` (or ``""``) for a shape and the rows it reads, placeholders from ``$first``.

    Returns the clause and the next free placeholder number. Cached: a shape's text is built once.
    """
    parts = [deleted] if (deleted := _DELETED[rows]) is not None else []
    n = first
    for condition in shape:
        text, n = _text(condition, n)
        parts.append(text)
    return (" WHERE " + " AND ".join(parts) if parts else ""), n
