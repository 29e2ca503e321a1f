"""Filter, sort and search input, accepted only through per-model allow-lists and type-checked.

A filter is ``{"<field>[__<operator>]": value}``. The field must be one of the model's own data fields
(secret fields excluded) or a relation path the model declares in ``filter_relations``; the operator must
be a known one; the value is coerced to the field's type. Anything else raises ``ValidationError`` naming
the key, before any SQL is built.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from tortoise import fields as tf
from tortoise.expressions import Q

from datalayer.errors import ValidationError

SCALAR_OPERATORS = {"exact", "iexact", "not", "gt", "gte", "lt", "lte"}
TEXT_OPERATORS = {"contains", "icontains", "startswith", "istartswith", "endswith", "iendswith"}
LIST_OPERATORS = {"in", "not_in"}
OPERATORS = SCALAR_OPERATORS | TEXT_OPERATORS | LIST_OPERATORS | {"isnull", "not_isnull", "range"}
MAX_SEARCH_LENGTH = 200
MAX_IN_VALUES = 1000

_TEXT_FIELDS = (tf.CharField, tf.TextField)
_UNFILTERABLE = (tf.JSONField, tf.BinaryField)


@dataclass(frozen=True)
class FieldInfo:
    path: str
    python_type: Any
    is_text: bool


def python_type_of(field: tf.Field) -> Any:
    enum_type = getattr(field, "enum_type", None)
    if enum_type is not None:
        return enum_type
    if isinstance(field, tf.DatetimeField):
        return dt.datetime
    if isinstance(field, tf.DateField):
        return dt.date
    if isinstance(field, tf.BooleanField):
        return bool
    if isinstance(field, tf.DecimalField):
        return decimal.Decimal
    if isinstance(field, tf.FloatField):
        return float
    if isinstance(field, tf.UUIDField):
        return uuid.UUID
    if isinstance(field, tf.IntField | tf.BigIntField | tf.SmallIntField):
        return int
    if isinstance(field, _TEXT_FIELDS):
        return str
    return field.field_type or str


def _data_fields(model: type) -> dict[str, tf.Field]:
    """The model's own column-backed fields (FKs appear as ``<name>_id``), secrets left out."""
    meta = model._meta
    secret = set(getattr(model, "secret_fields", ()))
    return {
        name: meta.fields_map[name]
        for name in meta.fields_db_projection
        if name not in secret and not isinstance(meta.fields_map[name], _UNFILTERABLE)
    }


def _resolve_relation(model: type, path: str) -> tf.Field | None:
    current = model
    *hops, last = path.split("__")
    for hop in hops:
        field = current._meta.fields_map.get(hop)
        related = getattr(field, "related_model", None)
        if related is None:
            return None
        current = related
    if last in getattr(current, "secret_fields", ()):
        return None
    return current._meta.fields_map.get(last)


@cache
def filter_fields(model: type) -> dict[str, FieldInfo]:
    """Every path a filter may name on ``model`` with its type (computed once, after Tortoise init)."""
    allowed = {
        name: FieldInfo(name, python_type_of(field), isinstance(field, _TEXT_FIELDS))
        for name, field in _data_fields(model).items()
    }
    for path in getattr(model, "filter_relations", ()):
        field = _resolve_relation(model, path)
        if field is None:
            raise ValidationError({path: "declared in filter_relations but is not a field path"}, model=model.__name__)
        allowed[path] = FieldInfo(path, python_type_of(field), isinstance(field, _TEXT_FIELDS))
    return allowed


@cache
def sort_fields(model: type) -> frozenset[str]:
    """Own, non-secret scalar fields: what ``sort_by`` accepts."""
    return frozenset(_data_fields(model))


@cache
def _adapter(python_type: Any) -> TypeAdapter:
    return TypeAdapter(python_type)


def _coerce(key: str, info: FieldInfo, value: Any, model: str) -> Any:
    try:
        return _adapter(info.python_type).validate_python(value)
    except PydanticValidationError:
        expected = info.python_type.__name__ if isinstance(info.python_type, type) else str(info.python_type)
        if isinstance(info.python_type, type) and issubclass(info.python_type, enum.Enum):
            expected = "one of " + ", ".join(repr(m.value) for m in info.python_type)
        raise ValidationError(
            {key: f"expected {expected}, got {type(value).__name__} {value!r:.60}"}, model=model
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


def build_filters(model: type, filters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validated Tortoise filter kwargs for ``filters``; raises ``ValidationError`` naming the bad key."""
    if not filters:
        return {}
    if not isinstance(filters, Mapping):
        raise ValidationError({"filters": "must be a mapping of field lookups to values"}, model=model.__name__)
    name = model.__name__
    allowed = filter_fields(model)
    built: dict[str, Any] = {}
    for key, value in filters.items():
        info, operator = _split(key, allowed, name)
        if operator in ("isnull", "not_isnull"):
            if not isinstance(value, bool):
                raise ValidationError({key: "expected true or false"}, model=name)
            coerced: Any = value
        elif operator in LIST_OPERATORS:
            if not isinstance(value, list | tuple | set | frozenset) or len(value) > MAX_IN_VALUES:
                raise ValidationError({key: f"expected a list of at most {MAX_IN_VALUES} values"}, model=name)
            coerced = [_coerce(key, info, item, name) for item in value]
        elif operator == "range":
            if not isinstance(value, list | tuple) or len(value) != 2:
                raise ValidationError({key: "expected a [low, high] pair"}, model=name)
            coerced = [_coerce(key, info, item, name) for item in value]
        elif operator in TEXT_OPERATORS:
            if not info.is_text:
                raise ValidationError({key: f"{operator!r} works on text fields only"}, model=name)
            if not isinstance(value, str):
                raise ValidationError({key: f"expected str, got {type(value).__name__}"}, model=name)
            coerced = value
        elif value is None and operator in ("exact", "not"):
            built[f"{info.path}__{'isnull' if operator == 'exact' else 'not_isnull'}"] = True
            continue
        else:
            coerced = _coerce(key, info, value, name)
        built[info.path if operator == "exact" else f"{info.path}__{operator}"] = coerced
    return built


def search_q(model: type, search: str | None) -> Q | None:
    """Case-insensitive ``contains`` across the model's ``searchable_fields``."""
    if search is None or search == "":
        return None
    name = model.__name__
    if not isinstance(search, str) or len(search) > MAX_SEARCH_LENGTH:
        raise ValidationError({"search": f"expected text of at most {MAX_SEARCH_LENGTH} characters"}, model=name)
    searchable = getattr(model, "searchable_fields", ())
    if not searchable:
        raise ValidationError({"search": "this model declares no searchable fields"}, model=name)
    return Q(*(Q(**{f"{field}__icontains": search}) for field in searchable), join_type="OR")


def check_sort(model: type, sort_by: str | None, sort_order: str) -> tuple[str, bool]:
    """Validate ``sort_by`` / ``sort_order``; returns ``(field, descending)``."""
    name = model.__name__
    if sort_order not in ("asc", "desc"):
        raise ValidationError({"sort_order": "expected 'asc' or 'desc'"}, model=name)
    allowed = sort_fields(model)
    sort_by = sort_by or ("created_at" if "created_at" in allowed else "id")
    if not isinstance(sort_by, str) or sort_by not in allowed:
        raise ValidationError({"sort_by": f"not sortable; use one of {', '.join(sorted(allowed))}"}, model=name)
    return sort_by, sort_order == "desc"
