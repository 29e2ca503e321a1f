"""Driver rows as model instances: what ``Model._init_from_db`` builds, at a fraction of its cost.

Written for asyncpg's records (pages, one-statement writes); rows of either engine (a lookup by key, a cached
row) take the same path, as the split between native and converted fields follows the engine Tortoise was
last set up for.

``_init_from_db`` takes each row as keyword arguments and passes every date-time through
``DatetimeField.to_python_value`` (an environment lookup per value): for a page of 20 rows that took about as
long as the query itself. Here one function per model is generated once (as ``collections.namedtuple``
does), reading a record by position and filling the instance's ``__dict__`` in one step with the same values,
in the same order: native values as the driver gives them, ``field_type(value)`` for Tortoise's "default"
fields, ``astimezone(<Tortoise's time zone>)`` for the driver's UTC date-times (what ``to_python_value``
does with them), UUIDs as they come, and the field's own ``to_python_value`` for anything else. A model that
builds its instances its own way (an ``_init_from_db`` of its own, a descriptor on a field's name) keeps
Tortoise's way, as does ``use_tz`` off.
"""

from __future__ import annotations

import datetime as dt
import inspect
import uuid
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from tortoise import timezone
from tortoise.fields.data import DatetimeField, UUIDField
from tortoise.models import Model

Builder = Callable[[Sequence[Any], dt.tzinfo], list[Any]]


@cache
def columns_of(model: type[Model]) -> tuple[str, ...]:
    """The model's columns in field order: what a statement selecting every column lists, and so the
    ``columns`` to build its records with."""
    return tuple(model._meta.fields_db_projection.values())


def _plain_attribute(model: type[Model], name: str) -> bool:
    """Setting ``name`` on an instance just stores it (no property or other descriptor in the way)."""
    return not hasattr(type(inspect.getattr_static(model, name, None)), "__set__")


@cache
def _builder(model: type[Model], columns: tuple[str, ...], native: tuple[str, ...]) -> Builder | None:
    """The generated builder for records whose columns are ``columns``; None where Tortoise's way must stay.

    ``native``: the columns Tortoise takes as the driver gives them, which depends on the engine of the
    last ``Tortoise.init`` (part of the key, so a builder always matches the current split).
    """
    meta = model._meta
    listed = (*meta.db_native_fields, *meta.db_default_fields, *meta.db_complex_fields)
    state = ("_partial", "_saved_in_db", "_custom_generated_pk", "_await_when_save")
    stock_init = Model._init_from_db.__func__  # type: ignore[attr-defined]  # a classmethod's function
    if getattr(model._init_from_db, "__func__", None) is not stock_init or not {key for key, _, _ in listed} <= set(columns) \
            or not all(_plain_attribute(model, name) for name in (*state, *(attr for _, attr, _ in listed))):
        return None
    position = {column: index for index, column in enumerate(columns)}
    names: dict[str, Any] = {"cls": model, "UUID": uuid.UUID, "UTC": dt.timezone.utc, "datetime": dt.datetime}
    entries = [f"{attr!r}: v{position[key]}" for key, attr, _ in meta.db_native_fields]
    for n, (key, attr, field) in enumerate(meta.db_default_fields):
        names[f"t{n}"] = field.field_type
        v = f"v{position[key]}"
        entries.append(f"{attr!r}: None if {v} is None else t{n}({v})")
    for n, (key, attr, field) in enumerate(meta.db_complex_fields):
        names[f"c{n}"] = field.to_python_value
        method, v = type(field).to_python_value, f"v{position[key]}"
        if method is DatetimeField.to_python_value:
            entries.append(f"{attr!r}: None if {v} is None else {v}.astimezone(tz) "
                           f"if {v}.__class__ is datetime and {v}.tzinfo is UTC else c{n}({v})")
        elif method is UUIDField.to_python_value:
            entries.append(f"{attr!r}: {v} if {v} is None or isinstance({v}, UUID) else c{n}({v})")
        else:
            entries.append(f"{attr!r}: c{n}({v})")
    custom_pk = meta.db_pk_column not in meta.generated_db_fields
    # each record unpacked into locals at once (a record holds exactly ``columns``): faster than indexing
    values = "".join(f"v{index}, " for index in range(len(columns)))
    source = (
        "def build(records, tz):\n"
        "    new, out = cls.__new__, []\n"
        "    append = out.append\n"
        f"    for {values}in records:\n"
        "        o = new(cls)\n"
        f"        o.__dict__.update({{'_partial': False, '_saved_in_db': True, '_custom_generated_pk': {custom_pk!r}, "
        f"'_await_when_save': {{}}, {', '.join(entries)}}})\n"
        "        append(o)\n"
        "    return out\n"
    )
    exec(compile(source, f"<datalayer row builder for {model.__name__}>", "exec"), names)  # noqa: S102
    built: Builder = names["build"]
    return built


#: (model, columns) -> (a copy of the model's native fields when its builder was made, the builder): the
#: builder is looked up again only when ``Tortoise.init`` has split the fields differently (for another
#: engine), which comparing the short list finds faster than building the key ``_builder`` is cached by
_current: dict[tuple[type[Model], tuple[str, ...]], tuple[list[Any], Builder | None]] = {}


def instances(model: type[Model], columns: tuple[str, ...], records: Sequence[Any]) -> list[Any]:
    """``records`` (each a sequence of values for ``columns``: every column of the model, and maybe more, which
    are ignored) as instances of ``model``."""
    native = model._meta.db_native_fields
    known = _current.get((model, columns))
    if known is None or known[0] != native:
        known = _current[model, columns] = (list(native), _builder(model, columns, tuple(key for key, _, _ in native)))
    build = known[1]
    if build is None or not timezone.get_use_tz():
        init = model._init_from_db
        return [init(**dict(zip(columns, record))) for record in records]
    return build(records, timezone.get_default_timezone())


def model_rows(model: type[Model], records: Sequence[Any]) -> list[Any]:
    """``instances`` of records from a statement selecting every column of ``model`` (``columns_of`` order)."""
    return instances(model, columns_of(model), records)
