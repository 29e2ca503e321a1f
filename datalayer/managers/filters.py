"""Filter, sort and search input, accepted only through per-model allow-lists and type-checked.

A filter is ``{"<field>[__<operator>]": value}``. The field must be one of the model's own data fields
(secret fields excluded) or a relation path the model declares in ``filter_relations``; the operator must
be a known one; the value is coerced to the field's type (``values.value_type``: the same rules as input).
Anything else raises ``ValidationError`` naming the key, before any SQL is built.

A relation path (``"author__name"``, ``"comments__text"``) is matched through a subquery, never a join: a
row is returned (and counted) once however many related rows match, and only live related rows count
(soft-deleted ones are invisible here as everywhere else).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError
from tortoise import fields as tf
from tortoise.expressions import Q, Subquery
from tortoise.fields.relational import BackwardFKRelation, ForeignKeyFieldInstance
from tortoise.models import Model
from tortoise.queryset import QuerySet

from datalayer.errors import ValidationError, shown
from datalayer.managers.values import TEXT_FIELDS, python_type_of, storable_text, value_type

SCALAR_OPERATORS = {"exact", "iexact", "not", "gt", "gte", "lt", "lte"}
TEXT_OPERATORS = {"contains", "icontains", "startswith", "istartswith", "endswith", "iendswith"}
LIST_OPERATORS = {"in", "not_in"}
OPERATORS = SCALAR_OPERATORS | TEXT_OPERATORS | LIST_OPERATORS | {"isnull", "not_isnull", "range"}
MAX_SEARCH_LENGTH = 200
MAX_IN_VALUES = 1000

_UNFILTERABLE = (tf.JSONField, tf.BinaryField)
_RELATIONS = (ForeignKeyFieldInstance, BackwardFKRelation)  # one-to-one fields are subclasses of these


@dataclass(frozen=True)
class FieldInfo:
    """A filterable path: the column's field and the relations followed to reach it (none for own fields)."""

    path: str
    field: tf.Field
    hops: tuple[str, ...] = ()

    @property
    def column(self) -> str:
        return self.path.rpartition("__")[2] if self.hops else self.path

    @property
    def is_text(self) -> bool:
        return isinstance(self.field, TEXT_FIELDS)


def _data_fields(model: type[Model]) -> dict[str, tf.Field]:
    """The model's own column-backed fields (FKs appear as ``<name>_id``), secrets left out."""
    meta = model._meta
    secret = set(getattr(model, "secret_fields", ()))
    return {
        name: meta.fields_map[name]
        for name in meta.fields_db_projection
        if name not in secret and not isinstance(meta.fields_map[name], _UNFILTERABLE)
    }


def _resolve_relation(model: type[Model], path: str) -> FieldInfo | None:
    """``path`` through foreign keys (either direction) to a non-secret data field, or None."""
    current = model
    *hops, last = path.split("__")
    for hop in hops:
        field = current._meta.fields_map.get(hop)
        if not isinstance(field, _RELATIONS):
            return None
        current = field.related_model
    column = _data_fields(current).get(last)
    return FieldInfo(path, column, tuple(hops)) if hops and column is not None else None


@cache
def filter_fields(model: type[Model]) -> dict[str, FieldInfo]:
    """Every path a filter may name on ``model`` (computed once, after Tortoise init)."""
    allowed = {name: FieldInfo(name, field) for name, field in _data_fields(model).items()}
    for path in getattr(model, "filter_relations", ()):
        info = _resolve_relation(model, path)
        if info is None:
            raise ValidationError(
                {path: "declared in filter_relations but is not a path through foreign keys to a data field"},
                model=model.__name__,
            )
        allowed[path] = info
    return allowed


@cache
def sort_fields(model: type[Model]) -> frozenset[str]:
    """Own, non-secret scalar fields: what ``sort_by`` accepts."""
    return frozenset(_data_fields(model))


@cache
def _adapter(annotation: Any) -> TypeAdapter:
    return TypeAdapter(annotation)


def _expected(field: tf.Field) -> str:
    python_type = python_type_of(field)
    if isinstance(python_type, type) and issubclass(python_type, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in python_type)
    return python_type.__name__ if isinstance(python_type, type) else str(python_type)


def coerce(info: FieldInfo, value: Any, *, key: str, model: str) -> Any:
    """``value`` as the column compares it, or a ``ValidationError`` under ``key`` saying what was expected.

    Args:
        info: the filterable path (``filter_fields(model)[path]``).
        value: the caller's value (a str from a query string is parsed: ``"5"`` for an integer field).
        key: the name the error is reported under (the filter key, or ``"cursor"``).
        model: the model's name, for the error.

    Raises:
        ValidationError: the value is of another type, out of the column's range, or not storable text.
    """
    try:
        return _adapter(value_type(info.field, "filter")).validate_python(value)
    except PydanticValidationError as exc:
        reason = exc.errors(include_url=False)[0]["msg"]
        raise ValidationError(
            {key: f"expected {_expected(info.field)} ({reason}), got {type(value).__name__} {shown(value)}"},
            model=model,
        ) from None


def _split(key: str, allowed: Mapping[str, FieldInfo], model: str) -> tuple[FieldInfo, str]:
    if not isinstance(key, str):
        raise ValidationError({str(key): "filter keys must be strings"}, model=model)
    if key in allowed:
        return allowed[key], "exact"
    path, _, operator = key.rpartition("__")
    if path in allowed:
        if operator not in OPERATORS:
            raise ValidationError(
                {key: f"unknown operator {operator!r}; use one of {', '.join(sorted(OPERATORS))}"}, model=model
            )
        return allowed[path], operator
    raise ValidationError(
        {key: f"not a filterable field; use one of {', '.join(sorted(allowed))}"}, model=model
    )


def _text(key: str, value: Any, model: str) -> str:
    if not isinstance(value, str):
        raise ValidationError({key: f"expected str, got {type(value).__name__}"}, model=model)
    try:
        return storable_text(value)
    except PydanticCustomError as exc:
        raise ValidationError({key: exc.message()}, model=model) from None


def _lookup(key: str, info: FieldInfo, operator: str, value: Any, model: str) -> tuple[str, Any]:
    """The Tortoise lookup (``"<column>__<op>"``) and coerced value; null tests become ``__isnull``."""
    if operator in ("isnull", "not_isnull"):
        if not isinstance(value, bool):
            raise ValidationError({key: "expected true or false"}, model=model)
        return f"{info.column}__isnull", value if operator == "isnull" else not value
    if value is None and operator in ("exact", "not"):
        return f"{info.column}__isnull", operator == "exact"
    if operator in LIST_OPERATORS:
        if not isinstance(value, list | tuple | set | frozenset) or len(value) > MAX_IN_VALUES:
            raise ValidationError({key: f"expected a list of at most {MAX_IN_VALUES} values"}, model=model)
        coerced: Any = [coerce(info, item, key=key, model=model) for item in value]
    elif operator == "range":
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise ValidationError({key: "expected a [low, high] pair"}, model=model)
        coerced = [coerce(info, item, key=key, model=model) for item in value]
    elif operator in TEXT_OPERATORS:
        if not info.is_text:
            raise ValidationError({key: f"{operator!r} works on text fields only"}, model=model)
        coerced = _text(key, value, model)
    else:
        coerced = coerce(info, value, key=key, model=model)
    return (info.column if operator == "exact" else f"{info.column}__{operator}"), coerced


def _having_related(model: type[Model], hops: tuple[str, ...], condition: Q) -> Q:
    """Rows of ``model`` with at least one live row along ``hops`` meeting ``condition`` (a subquery: no
    join, so no row repeated)."""
    relation: Any = model._meta.fields_map[hops[0]]  # a foreign key or a reverse relation
    related = relation.related_model
    inner = related.filter(_having_related(related, hops[1:], condition) if hops[1:] else condition)
    if isinstance(relation, ForeignKeyFieldInstance):  # this row points at one related row
        target = relation.to_field_instance.model_field_name
        return Q(**{f"{relation.source_field}__in": Subquery(inner.values(target))})  # type: ignore[arg-type]
    own_key = relation.to_field_instance.model_field_name  # related rows point at this row
    return Q(**{f"{own_key}__in": Subquery(inner.values(relation.relation_field))})  # type: ignore[arg-type]


def _through_relation(model: type[Model], info: FieldInfo, lookup: str, value: Any) -> Q:
    if lookup.endswith("__isnull"):  # "no live related row has a value" / "one has"
        present = _having_related(model, info.hops, Q(**{lookup: False}))  # type: ignore[arg-type]
        if not value:
            return present
        pk = model._meta.pk_attr
        return ~Q(**{f"{pk}__in": Subquery(QuerySet(model).filter(present).values(pk))})  # type: ignore[arg-type]
    return _having_related(model, info.hops, Q(**{lookup: value}))


def checked_filters(model: type[Model], filters: Mapping[str, Any] | None) -> list[tuple[FieldInfo, str, Any]]:
    """``filters`` through the allow-list: ``(path, Tortoise lookup, coerced value)`` per key, in order.

    Both ``filter_q`` and the PostgreSQL read path (``pg_where``) start from this, so they accept and refuse
    the same input with the same errors.

    Raises:
        ValidationError: naming the first bad key (unknown path or operator, value of the wrong type).
    """
    if filters is None:
        return []
    if not isinstance(filters, Mapping):  # "", 0, False, [] too: no filter is None or {}, never a mistake's value
        raise ValidationError({"filters": "must be a mapping of field lookups to values (or None for no filter), "
                                          f"got {type(filters).__name__}"}, model=model.__name__)
    name = model.__name__
    allowed = filter_fields(model)
    checked = []
    for key, value in filters.items():
        info, operator = _split(key, allowed, name)
        checked.append((info, *_lookup(key, info, operator, value, name)))
    return checked


def filter_q(model: type[Model], filters: Mapping[str, Any] | None) -> Q | None:
    """The validated condition for ``filters`` (all must hold), or None when there are none.

    Args:
        model: the model filtered.
        filters: ``{"<path>[__<operator>]": value}`` from the caller.

    Returns:
        A Tortoise ``Q`` to pass to ``QuerySet.filter``.

    Raises:
        ValidationError: naming the first bad key (unknown path or operator, value of the wrong type).
    """
    conditions = [
        Q(**{lookup: coerced}) if not info.hops else _through_relation(model, info, lookup, coerced)
        for info, lookup, coerced in checked_filters(model, filters)
    ]
    return Q(*conditions) if conditions else None


def search_q(model: type[Model], search: str | None) -> Q | None:
    """Case-insensitive ``contains`` across the model's ``searchable_fields``."""
    if search is None or search == "":
        return None
    name = model.__name__
    if not isinstance(search, str) or len(search) > MAX_SEARCH_LENGTH:
        raise ValidationError({"search": f"expected text of at most {MAX_SEARCH_LENGTH} characters"}, model=name)
    searchable = getattr(model, "searchable_fields", ())
    if not searchable:
        raise ValidationError({"search": "this model declares no searchable fields"}, model=name)
    search = _text("search", search, name)
    return Q(*(Q(**{f"{field}__icontains": search}) for field in searchable), join_type="OR")


def check_sort(model: type[Model], sort_by: str | None, sort_order: str) -> tuple[str, bool]:
    """Validate ``sort_by`` / ``sort_order``; returns ``(field, descending)``."""
    name = model.__name__
    if not isinstance(sort_order, str) or (sort_order := sort_order.lower()) not in ("asc", "desc"):
        raise ValidationError({"sort_order": "expected 'asc' or 'desc'"}, model=name)
    allowed = sort_fields(model)
    if sort_by is None:  # only None means "the default": "" is a mistake, not a choice
        sort_by = "created_at" if "created_at" in allowed else "id"
    if not isinstance(sort_by, str) or sort_by not in allowed:
        raise ValidationError({"sort_by": f"not sortable; use one of {', '.join(sorted(allowed))}"}, model=name)
    return sort_by, sort_order == "desc"


def check_flags(model: type[Model], **flags: Any) -> None:
    """``include_deleted`` and the like must be ``True`` or ``False``: ``"no"`` would read as true."""
    wrong = {name: "expected true or false" for name, value in flags.items() if not isinstance(value, bool)}
    if wrong:
        raise ValidationError(wrong, model=model.__name__)
