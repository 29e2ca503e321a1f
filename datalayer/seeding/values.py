"""Turning seed rows into column values: resolving relation lookups and comparing with stored rows."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from enum import Enum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from datalayer.errors import DataLayerError
from datalayer.introspect import every_row, is_soft
from datalayer.managers.filters import filter_q


class SeedError(DataLayerError):
    """A seed set is inconsistent (a relation points at a row it does not create, an unknown model or field)."""


def live_rows(model: type[Model]) -> Any:
    return model.filter(deleted_at__isnull=True) if is_soft(model) else model.all()


def settable_fields(model: type[Model]) -> set[str]:
    """The names a seed row may give: the model's columns and its relations (``user`` and ``user_id``)."""
    meta = model._meta
    return set(meta.fields_db_projection) | set(meta.fk_fields) | set(meta.o2o_fields)


def check_fields(model: type[Model], row: dict[str, Any], source: str, *, also: tuple[str, ...] = ()) -> None:
    """Refuse a seed row naming a field ``model`` does not have (removed, renamed or misspelt).

    Raises:
        SeedError: naming the seed file, the model and the unknown field(s), and listing the model's fields.
    """
    known = settable_fields(model)
    unknown = [name for name in row if name not in known and name not in also]
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        fields_ = ", ".join(sorted(known | set(also)))
        raise SeedError(f"seed file {source}: a {model.__name__} row names {names}, which {model.__name__} does "
                        f"not have (removed or renamed?); its fields: {fields_}")


def column_name(model: type[Model], name: str) -> str:
    """``user`` -> ``user_id`` for relations; other names unchanged."""
    return f"{name}_id" if name in model._meta.fk_fields else name


async def resolve(model: type[Model], row: dict[str, Any], *, include_deleted: bool = False) -> dict[str, Any]:
    """Column values of a seed row: relation lookups become the related row's id."""
    values: dict[str, Any] = {}
    for name, value in row.items():
        if name in model._meta.fk_fields and value is not None:
            related = model._meta.fields_map[name].related_model  # type: ignore[attr-defined]  # a ForeignKeyField
            if not isinstance(value, dict):
                raise SeedError(f"{model.__name__}.{name} must be a lookup of the related row, e.g. {{\"email\": ...}}")
            query = every_row(related) if include_deleted else live_rows(related)
            condition = filter_q(related, value)  # the filters' allow-list and value rules
            if condition is None:
                raise SeedError(f"{model.__name__}.{name} needs at least one field to find the related row by")
            found = await query.filter(condition).limit(2)
            if not found:
                raise SeedError(f"{model.__name__}.{name} refers to {related.__name__} {value}, which does not exist")
            if len(found) > 1:
                raise SeedError(f"{model.__name__}.{name} refers to {related.__name__} {value}, which matches more "
                                "than one row; add fields to the lookup until it names one")
            values[f"{name}_id"] = found[0].pk
        else:
            values[column_name(model, name)] = _typed(model, name, value)
    return values


def _typed(model: type[Model], name: str, value: Any) -> Any:
    """ISO strings become datetimes/dates, so lookups by them match on every backend."""
    field = model._meta.fields_map.get(name)
    if isinstance(value, str) and field is not None:
        if isinstance(field, fields.DatetimeField):
            parsed = dt.datetime.fromisoformat(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
        if isinstance(field, fields.DateField):
            return dt.date.fromisoformat(value)
    return value


def _normal(value: Any, like: Any) -> Any:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(like, dt.datetime) and isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, uuid.UUID | Decimal):
        value = str(value) if isinstance(value, uuid.UUID) else float(value)
    return value


def differences(instance: Model, values: dict[str, Any]) -> dict[str, Any]:
    """The seed values that differ from what the stored row holds."""
    changed = {}
    for name, wanted in values.items():
        current = getattr(instance, name)
        if _normal(current, wanted) != _normal(wanted, current):
            changed[name] = wanted
    return changed
