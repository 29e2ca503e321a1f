"""Backup and restore as JSON lines: one header line, then one line per row, streamed with keyset paging.

Memory stays flat whatever the table size: rows are read ``BATCH`` at a time ordered by primary key and
written as they come; restore reads line by line and inserts in batches, all inside one transaction, so a
failed restore leaves the database as it was. The header records the schema (each app's last applied
migration); restoring a file from a newer schema than the database, in any app, is refused.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import IO, Any

from tortoise import fields
from tortoise.models import Model

from datalayer import introspect
from datalayer.errors import DataLayerError, ValidationError
from datalayer.transactions import transaction
from datalayer.translate import translated

FORMAT = "datalayer-backup"
FORMAT_VERSION = 2  # 1: "schema" was the one history's last file; 2: {app label: its last file}
BATCH = 500

Progress = Callable[[str, int], None]  # (table, rows just done)


def _encode(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return {"$base64": base64.b64encode(value).decode()}
    return value


def _columns(model: type[Model]) -> list[str]:
    return list(model._meta.fields_db_projection)


def schema_number(name: str | None) -> int:
    return int(name.split("_", 1)[0]) if name else -1


def schema_of(applied: list[str]) -> dict[str, str]:
    """``{app label: its last applied file}`` from ``label/file`` names in the order applied."""
    schema: dict[str, str] = {}
    for name in applied:
        label, file = name.split("/", 1)
        if schema_number(file) >= schema_number(schema.get(label)):
            schema[label] = file
    return schema


def newer_parts(backup_schema: Any, database: dict[str, str]) -> list[str]:
    """The apps whose migration in the backup is newer than the database's (``label file``)."""
    if not isinstance(backup_schema, dict):  # format 1: datalayer's old single history, adopted since
        from datalayer.legacy_history import FILES

        return [] if backup_schema in (None, *FILES) else [str(backup_schema)]
    return [f"{label} {file}" for label, file in backup_schema.items()
            if schema_number(file) > schema_number(database.get(label))]


async def _applied(settings: Any) -> list[str]:
    from datalayer.migrations import applied_migrations

    return await applied_migrations(settings)


async def backup(path: Path, models: list[type[Model]], settings: Any, progress: Progress | None = None) -> dict[str, int]:
    """Write every existing table of ``models`` (every loaded app's) to ``path``; returns rows per table.

    Raises:
        DataLayerError: none of the models' tables exists (an empty or wrong database): nothing is written.
    """
    applied = await _applied(settings)
    present = await introspect.existing_tables()
    tables = [m for m in introspect.dependency_order(models) if m._meta.db_table in present]
    if not tables:
        raise DataLayerError("the database has none of the loaded models' tables; nothing to back up "
                             "(wrong DATABASE_URL, or run `datalayer upgrade` first)")
    counts = {m._meta.db_table: await introspect.count_rows(m._meta.db_table) for m in tables}
    written: dict[str, int] = {}
    with path.open("w", encoding="utf-8") as out:
        header = {"format": FORMAT, "format_version": FORMAT_VERSION, "schema": schema_of(applied),
                  "created_at": dt.datetime.now(dt.timezone.utc).isoformat(), "tables": counts}
        out.write(json.dumps(header) + "\n")
        for model in tables:
            written[model._meta.db_table] = await _dump_table(model, out, progress)
    return written


async def _dump_table(model: type[Model], out: IO[str], progress: Progress | None) -> int:
    table, pk, names = model._meta.db_table, model._meta.pk_attr, _columns(model)
    last, total = None, 0
    while True:
        query = introspect.every_row(model).order_by(pk).limit(BATCH)
        if last is not None:
            query = query.filter(**{f"{pk}__gt": last})
        with translated(model.__name__):
            rows = await query.values(*names)
        for row in rows:
            out.write(json.dumps({"table": table, "row": {k: _encode(v) for k, v in row.items()}}) + "\n")
        total += len(rows)
        if progress and rows:
            progress(table, len(rows))
        if len(rows) < BATCH:
            return total
        last = rows[-1][pk]


def read_header(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as source:
        try:
            header = json.loads(source.readline())
        except json.JSONDecodeError:
            header = {}
    if header.get("format") != FORMAT:
        raise ValidationError({"file": f"{path} is not a datalayer backup (no header line)"})
    return header


def _rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with path.open(encoding="utf-8") as source:
        source.readline()
        for number, line in enumerate(source, start=2):
            try:
                item = json.loads(line)
                yield item["table"], item["row"]
            except (json.JSONDecodeError, KeyError):
                raise ValidationError({"file": f"line {number} of {path.name} is not a backup row"}) from None


@contextmanager
def _stored_as_given(models: list[type[Model]]) -> Iterator[None]:
    """Keep ``created_at``/``updated_at`` from the file: switch off auto_now while restoring."""
    flags = []
    for model in models:
        for field in model._meta.fields_map.values():
            if isinstance(field, fields.DatetimeField) and (field.auto_now or field.auto_now_add):
                flags.append((field, field.auto_now, field.auto_now_add))
                field.auto_now = field.auto_now_add = False
    try:
        yield
    finally:
        for field, auto_now, auto_now_add in flags:
            field.auto_now, field.auto_now_add = auto_now, auto_now_add


def _instance(model: type[Model], row: dict[str, Any]) -> Model:
    json_fields = {k: v for k, v in row.items() if isinstance(model._meta.fields_map.get(k), fields.JSONField)}
    plain = {k: v for k, v in row.items() if k not in json_fields}
    for key, value in plain.items():
        if isinstance(value, dict) and "$base64" in value:
            plain[key] = base64.b64decode(value["$base64"])
    instance = model(**plain)
    for key, value in json_fields.items():
        setattr(instance, key, value)  # as stored: no JSON re-parsing of string values
    return instance


async def restore(path: Path, models: list[type[Model]], settings: Any, *, replace: bool = False,
                  progress: Progress | None = None) -> dict[str, int]:
    """Load a backup in one transaction. Refuses a newer schema, and non-empty tables unless ``replace``."""
    header = read_header(path)
    by_table = {m._meta.db_table: m for m in models}
    unknown = [t for t in header.get("tables", {}) if t not in by_table]
    if unknown:
        raise DataLayerError(f"the backup has tables this code does not know: {', '.join(unknown)}; load the app "
                             "that owns them (--models, DATALAYER_MODELS or --apps)")
    newer = newer_parts(header.get("schema"), schema_of(await _applied(settings)))
    if newer:
        raise DataLayerError(f"the backup is from a newer schema ({', '.join(newer)}) than the database; "
                             "run `datalayer upgrade` first")
    ordered = [m for m in introspect.dependency_order(models) if m._meta.db_table in header.get("tables", {})]
    restored: dict[str, int] = {}
    with _stored_as_given(ordered):
        async with transaction():
            for model in reversed(ordered):
                table = model._meta.db_table
                if await introspect.count_rows(table):
                    if not replace:
                        raise DataLayerError(f"table {table} is not empty; restore into an empty database "
                                             "(`datalayer reset --env none`) or pass --replace")
                    with translated(model.__name__):
                        await introspect.every_row(model).delete()
            batch: list[Model] = []
            batch_table: Any = None  # the table of the rows in batch (None before the first)
            for table, row in _rows(path):
                if table != batch_table or len(batch) >= BATCH:
                    await _insert(by_table.get(batch_table), batch, restored, progress)
                    batch, batch_table = [], table
                if table not in by_table:
                    raise DataLayerError(f"the backup has rows for unknown table {table}")
                batch.append(_instance(by_table[table], row))
            await _insert(by_table.get(batch_table), batch, restored, progress)
    return restored


async def _insert(model: type[Model] | None, batch: list[Model], restored: dict[str, int],
                  progress: Progress | None) -> None:
    if model is None or not batch:
        return
    with translated(model.__name__):
        await model.bulk_create(batch)
    restored[model._meta.db_table] = restored.get(model._meta.db_table, 0) + len(batch)
    if progress:
        progress(model._meta.db_table, len(batch))
