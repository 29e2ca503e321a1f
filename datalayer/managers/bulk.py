"""Bulk inserts: validate, complete and write rows chunk by chunk, preparing one while the last is written.

On PostgreSQL rows and their audit rows go in by binary COPY; elsewhere through Tortoise's batched INSERTs.
Rows skip Tortoise model construction and per-field ``to_db_value`` on the COPY path (the two costs that
dominated a 20,000-row profile); returned instances are built as Tortoise builds fetched rows.

The write of chunk *k* runs as a task while chunk *k+1* is validated and converted. Preparation yields to
the event loop every ``_SLICE`` rows, which both advances that task (each yield lets it take one protocol
step, so the server ingests while Python works) and keeps other tasks responsive during a large import.
A failure anywhere leaves the enclosing transaction to roll every chunk back.

Input is pulled a chunk at a time from any iterable or async iterable, and the caller may keep instances,
ids or nothing of what was written, so a load of millions of rows from a generator needs the memory of two
chunks (``python -m benchmarks.bulk_memory`` measures it).
"""

from __future__ import annotations

import asyncio
import enum
import gc
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import aclosing, contextmanager
from functools import cache
from itertools import islice
from operator import itemgetter
from typing import Any, Literal

from pydantic import BaseModel
from tortoise import fields as tf
from tortoise import timezone
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.connection import get_connection
from tortoise.models import Model

from datalayer.config import CONNECTION_NAME
from datalayer.core.audit_log import AuditLog
from datalayer.errors import ValidationError
from datalayer.ids import BATCH_MAKERS
from datalayer.managers import auditing
from datalayer.managers.validation import validate_many

_SLICE = 250  # rows prepared between two yields to the event loop
#: what one chunk writes, in insertion order: (table or model, columns, rows as value tuples in that order);
#: columns None: the rows are model instances (the ORM path)
Tables = list[tuple[Any, tuple[str, ...] | None, list[Any]]]
#: what ``bulk_create`` gives back: the stored rows as instances, their primary keys, or nothing
Returning = Literal["instances", "ids", "none"]


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


@cache
def driver_converters(model: type[Model]) -> dict[str, Callable[[Any], Any]]:
    """Field name -> converter to what asyncpg takes, for the fields that need one (JSON, enums)."""
    converters: dict[str, Callable[[Any], Any]] = {}
    for name in model._meta.fields_db_projection:
        field = model._meta.fields_map[name]
        if isinstance(field, tf.JSONField):
            encode: Callable[[Any], str] = field.encoder
            converters[name] = lambda v, encode=encode: None if v is None else encode(v)  # type: ignore[misc]
        elif getattr(field, "enum_type", None) is not None:
            converters[name] = _enum_value
    return converters


def driver_value(model: type[Model], name: str, value: Any) -> Any:
    convert = driver_converters(model).get(name)
    return value if convert is None else convert(value)


@cache
def _copy_plan(model: type[Model]) -> tuple[tuple[str, ...], Callable[[Mapping[str, Any]], Any], tuple[tuple[int, Callable[[Any], Any]], ...]]:
    """(columns, getter of a row's values in column order, (position, converter) where asyncpg needs one)."""
    projection = model._meta.fields_db_projection
    converters = driver_converters(model)
    conversions = tuple((position, converters[name]) for position, name in enumerate(projection) if name in converters)
    return tuple(projection.values()), itemgetter(*projection), conversions


def insert_columns(model: type[Model]) -> tuple[str, ...]:
    """Every column of ``model``, in the order ``copy_records`` gives values."""
    return _copy_plan(model)[0]


def copy_records(model: type[Model], rows: Iterable[Mapping[str, Any]]) -> list[Any]:
    """Complete rows as the value sequences asyncpg's binary COPY takes, in ``_copy_plan`` column order."""
    _, values_of, conversions = _copy_plan(model)
    if not conversions:
        return [values_of(row) for row in rows]
    records = []
    for row in rows:
        record = list(values_of(row))
        for position, convert in conversions:
            record[position] = convert(record[position])
        records.append(record)
    return records


@cache
def _defaults(model: type[Model]) -> tuple[dict[str, Any], tuple[tuple[str, Callable[[], Any]], ...]]:
    """(constant defaults, callable defaults such as ``uuid7``) of every column."""
    fields_map = model._meta.fields_map
    constant, produced = {}, []
    for name in model._meta.fields_db_projection:
        default = fields_map[name].default
        if callable(default):
            produced.append((name, default))
        else:
            constant[name] = default
    return constant, tuple(produced)


@cache
def _auto_stamped(model: type[Model]) -> tuple[tuple[str, bool, bool], ...]:
    """(field, always, is a time of day) for each ``auto_now`` / ``auto_now_add`` date-time or time field."""
    stamped = []
    for name in model._meta.fields_db_projection:
        field: Any = model._meta.fields_map[name]
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            stamped.append((name, bool(field.auto_now), isinstance(field, tf.TimeField)))
    return tuple(stamped)


@cache
def _python_converters(model: type[Model]) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    """Fields whose value ``Model(**values)`` normalises, as Tortoise's ``create`` would: decimals quantized
    to the column's scale, JSON given as a ``str`` taken as JSON text and decoded."""
    return tuple((name, field.to_python_value) for name, field in model._meta.fields_map.items()
                 if isinstance(field, (tf.DecimalField, tf.JSONField)) and name in model._meta.fields_db_projection)


def complete_rows(model: type[Model], rows: Sequence[Mapping[str, Any]], **shared: Any) -> list[dict[str, Any]]:
    """Each row with every column filled: its own values, then ``shared`` ones, then the field defaults.

    ``auto_now`` fields are set to now and ``auto_now_add`` ones when empty, as Tortoise's ``save`` does,
    unless ``shared`` gives them (``bulk_create`` stamps ``created_at``/``updated_at`` that way). Decimals
    and JSON are normalised as ``Model(**values)`` would (``_python_converters``), so the audit log and the
    returned rows show what is stored, and ``create`` stores what Tortoise's ``create`` stores.
    """
    constant, produced = _defaults(model)
    base = {**constant, **shared}
    completed = [{**base, **row} for row in rows]
    for name, make in produced:
        if name in shared:
            continue
        missing = [full for full, row in zip(completed, rows) if name not in row]
        batch_maker = BATCH_MAKERS.get(make)
        values = batch_maker(len(missing)) if batch_maker else [make() for _ in missing]
        for full, value in zip(missing, values):
            full[name] = value
    now = timezone.now()
    for name, always, time_of_day in _auto_stamped(model):
        if name in shared:
            continue
        stamp = now.time() if time_of_day else now  # what Tortoise stores for a TimeField
        for full in completed:
            if always or full[name] is None:
                full[name] = stamp
    for name, convert in _python_converters(model):
        for full in completed:
            full[name] = convert(full[name])
    return completed


def saved_instances(model: type[Model], rows: Sequence[dict[str, Any]]) -> list[Any]:
    """Model instances for complete rows that are already stored, as if fetched.

    What ``Model._init_from_db`` does, minus its per-field conversion loop: the rows already hold Python
    values (this was the largest Python cost of a 20,000-row ``bulk_create``).
    """
    new = model.__new__
    custom_pk = model._meta.db_pk_column not in model._meta.generated_db_fields
    instances = []
    for row in rows:
        instance = new(model)
        state = instance.__dict__
        state.update(row)
        state["_partial"] = False
        state["_saved_in_db"] = True
        state["_custom_generated_pk"] = custom_pk
        state["_await_when_save"] = {}
        instances.append(instance)
    return instances


async def _copy_tables(connection: BaseDBAsyncClient, tables: Tables) -> None:
    async with connection.acquire_connection() as raw:
        for table, columns, records in tables:
            if records:
                await raw.copy_records_to_table(table, records=records, columns=list(columns))  # type: ignore[arg-type]


def _copy_batch(model: type[Model], complete: list[dict[str, Any]], keep: Returning) -> tuple[Tables, list[Any]]:
    """PostgreSQL: the rows and their audit rows as COPY records (audit ``changes`` as compact JSON text),
    and what the caller keeps of them (``_kept``)."""
    return [
        (model._meta.db_table, insert_columns(model), copy_records(model, complete)),
        (AuditLog._meta.db_table, auditing.AUDIT_COLUMNS,
         auditing.creation_entries(model, complete, changes_of=auditing.creation_changes_json)),
    ], _kept(model, complete, keep)


async def _insert_tables(connection: BaseDBAsyncClient, tables: Tables) -> None:
    for model, columns, rows in tables:
        if rows:
            instances = rows if columns is None else [model(**dict(zip(columns, row))) for row in rows]
            await model.bulk_create(instances, batch_size=len(rows), using_db=connection)


def _orm_batch(model: type[Model], complete: list[dict[str, Any]], keep: Returning) -> tuple[Tables, list[Any]]:
    """Other engines: the rows (as the very instances returned, so the ``auto_now`` values Tortoise stamps
    while inserting are the ones the caller sees) and their audit rows, for Tortoise's ``bulk_create``."""
    instances = saved_instances(model, complete)
    return [
        (model, None, instances),
        (AuditLog, auditing.AUDIT_COLUMNS, auditing.creation_entries(model, complete)),
    ], _kept(model, complete, keep, instances)


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while one chunk of a bulk insert is prepared.

    Everything the preparation allocates is kept (the rows, the records being copied, the returned
    instances), so a collection meanwhile finds nothing, yet the allocations trigger young collections and,
    as the survivors pile up, full-heap ones: about a seventh of a 20,000-row ``bulk_create``, and one full
    collection was a 50 ms stall of the event loop. Other tasks keep running meanwhile; cyclic garbage they
    make waits until the chunk is prepared (tens of ms for 5,000 rows), nothing is lost. If the
    collector was already off (the app's choice, or an overlapping insert), it is left as it was.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _kept(model: type[Model], complete: list[dict[str, Any]], keep: Returning,
          instances: list[Any] | None = None) -> list[Any]:
    """What the caller keeps of a slice: its rows as instances, their ids, or nothing."""
    if keep == "instances":
        return saved_instances(model, complete) if instances is None else instances
    if keep == "ids":
        pk = model._meta.pk_attr
        return [row[pk] for row in complete]
    return []


class SourceFailed(Exception):
    """The caller's rows raised ``error`` while being pulled; ``bulk_create`` re-raises it as it was, outside
    the translation of driver errors (that would take an ``OSError`` of the caller's file or socket for a
    lost database connection)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


async def _chunks(rows: Iterable[Any] | AsyncIterable[Any], size: int) -> AsyncGenerator[list[Any], None]:
    """``rows`` as lists of ``size`` (the last one shorter), pulled only as each list is needed.

    Raises:
        SourceFailed: ``rows`` raised while being pulled.
    """
    try:
        if isinstance(rows, AsyncIterable):
            chunk: list[Any] = []
            async for row in rows:
                chunk.append(row)
                if len(chunk) >= size:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk
            return
        source = iter(rows)
        while chunk := list(islice(source, size)):
            yield chunk
            del chunk  # let it go before the next one is pulled
    except Exception as exc:  # only the source raises here (the consumer's errors never enter a generator)
        raise SourceFailed(exc) from exc


def _check_shapes(rows: Sequence[Any], first_index: int, model: type[Model]) -> None:
    """A row that is neither a mapping nor a pydantic model is named by its position (``rows[i]``)."""
    for index, row in enumerate(rows):
        if type(row) is not dict and not isinstance(row, Mapping | BaseModel):
            raise ValidationError({f"rows[{first_index + index}].__all__":
                                   f"expected a dict or a pydantic model, got {type(row).__name__}"},
                                  model=model.__name__)


async def insert_created(
    model: type[Model], rows: Iterable[Mapping[str, Any] | Any] | AsyncIterable[Mapping[str, Any] | Any], *,
    shared: Mapping[str, Any], batch_size: int,
    check: Callable[[Sequence[Mapping[str, Any]], int], None] | None = None,
    keep: Returning = "instances",
) -> list[Any]:
    """Validate and insert ``rows`` with one ``create`` audit row each, on the current connection.

    ``rows`` may be any iterable or async iterable (a generator, a file reader): it is pulled ``batch_size``
    rows at a time, so with ``keep`` ``"ids"`` or ``"none"`` memory stays flat whatever the row count (at most
    two chunks in flight: one being written, the next being prepared).
    ``shared`` values (timestamps, actor) go into every row. ``check(rows, first_index)`` sees each slice of
    complete rows before it is written (the manager's domain rules; it raises to refuse them).
    Returns the stored rows as model instances (``keep="instances"``), their primary keys (``"ids"``), or an
    empty list (``"none"``).
    Call inside a transaction: a bad row in chunk *k* raises after earlier chunks were written.
    """
    connection = get_connection(CONNECTION_NAME)
    if connection.capabilities.dialect == "postgres":
        batch, write = _copy_batch, _copy_tables
    else:
        batch, write = _orm_batch, _insert_tables
    kept: list[Any] = []
    pending: asyncio.Future[None] | None = None
    first_index = 0
    async with aclosing(_chunks(rows, max(1, batch_size))) as chunks:
        try:
            async for chunk in chunks:
                _check_shapes(chunk, first_index, model)
                tables: Tables = []
                with collector_paused():  # per chunk: a long stream's own cyclic garbage is still collected
                    for start in range(0, len(chunk), _SLICE):
                        validated = validate_many(model, chunk[start:start + _SLICE], first_index=first_index + start)
                        complete = complete_rows(model, validated, **shared)
                        if check is not None:
                            check(complete, first_index + start)
                        part, stored = batch(model, complete, keep)
                        if tables:
                            for (_, _, records), (_, _, more) in zip(tables, part):
                                records.extend(more)
                        else:
                            tables = part
                        kept.extend(stored)
                        await asyncio.sleep(0)  # the previous chunk's write takes a step
                first_index += len(chunk)
                del chunk
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(write(connection, tables))
                del tables  # the write holds the records until it is done
            if pending is not None:
                await pending
        except BaseException:
            if pending is not None:
                await asyncio.wait([pending])  # never leave a COPY half-sent on the transaction's connection
                if not pending.cancelled():
                    pending.exception()  # the error already propagating wins; this one counts as seen
            raise
    return kept
