"""Backup and restore as JSON lines (the file itself: ``datalayer.backup_file``), streamed with keyset paging.

Memory stays flat whatever the table size: rows are read ``BATCH`` at a time ordered by primary key, all in
one read-only snapshot, and written as they come; restore checks the whole file first, then reads it line by
line and inserts in batches, all inside one transaction, so a failed restore leaves the database as it was.
The header records the schema (each app's last applied migration); restoring a file from a newer schema than
the database, in any app, is refused.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from tortoise import fields
from tortoise.models import Model

from datalayer import introspect
from datalayer.backup_file import (
    FORMAT,
    FORMAT_VERSION,
    BackupIntegrityError,
    BackupWriter,
    open_backup,
    read_header,
    writing_backup,
)
from datalayer.errors import DataLayerError
from datalayer.references import referencing_rows
from datalayer.transactions import transaction
from datalayer.translate import translated

__all__ = ["FORMAT", "FORMAT_VERSION", "BackupIntegrityError", "backup", "read_header", "restore"]

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

    Every table is read in one read-only snapshot (REPEATABLE READ on PostgreSQL, one read transaction on
    SQLite), so rows written meanwhile are either all in the file or none are: each child's parent is there.
    The file appears at ``path`` only once complete (see ``datalayer.backup_file``).

    Raises:
        DataLayerError: none of the models' tables exists (an empty or wrong database): nothing is written.
        OSError: the file cannot be written (``path`` is left as it was).
    """
    async with _snapshot():
        applied = await _applied(settings)
        present = await introspect.existing_tables()
        tables = [m for m in introspect.dependency_order(models) if m._meta.db_table in present]
        if not tables:
            raise DataLayerError("the database has none of the loaded models' tables; nothing to back up "
                                 "(wrong DATABASE_URL, or run `datalayer upgrade` first)")
        counts = {m._meta.db_table: await introspect.count_rows(m._meta.db_table) for m in tables}
        with writing_backup(path, list(counts)) as out:
            out.header({"schema": schema_of(applied), "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                        "tables": counts})
            for model in tables:
                await _dump_table(model, out, progress)
        return out.counts


@asynccontextmanager
async def _snapshot() -> AsyncIterator[None]:
    """One read-only transaction whose reads all see the same committed state."""
    async with transaction() as connection:
        if introspect.dialect_of(connection) == "postgres":
            with translated("backup"):
                await connection.execute_script("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


async def _dump_table(model: type[Model], out: BackupWriter, progress: Progress | None) -> None:
    table, pk, names = model._meta.db_table, model._meta.pk_attr, _columns(model)
    last = None
    while True:
        query = introspect.every_row(model).order_by(pk).limit(BATCH)
        if last is not None:
            query = query.filter(**{f"{pk}__gt": last})
        with translated(model.__name__):
            rows = await query.values(*names)
        for row in rows:
            out.row(table, {k: _encode(v) for k, v in row.items()})
        if progress and rows:
            progress(table, len(rows))
        if len(rows) < BATCH:
            return
        last = rows[-1][pk]


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
    """Load a backup in one transaction; returns rows restored per table.

    The whole file is checked first (trailer, row counts, sha256): a file cut short, edited or from an older
    datalayer is refused before the database is touched. ``replace`` empties the backup's tables first, unless
    a table outside the backup has rows referring to them (those rows would be deleted or changed with them).

    Raises:
        BackupIntegrityError: the file is not a complete, unaltered backup of this format (a ValidationError).
        DataLayerError: tables this code does not know; a newer schema than the database's; a non-empty table
            without ``replace``; with ``replace``, a table outside the backup refers to one it replaces.
    """
    with open_backup(path) as backup_file:
        by_table = {m._meta.db_table: m for m in models}
        unknown = [t for t in backup_file.tables if t not in by_table]
        if unknown:
            raise DataLayerError(f"the backup has tables this code does not know: {', '.join(unknown)}; load the "
                                 "app that owns them (--models, DATALAYER_MODELS or --apps)")
        newer = newer_parts(backup_file.header.get("schema"), schema_of(await _applied(settings)))
        if newer:
            raise DataLayerError(f"the backup is from a newer schema ({', '.join(newer)}) than the database; "
                                 "run `datalayer upgrade` first")
        ordered = [m for m in introspect.dependency_order(models) if m._meta.db_table in backup_file.tables]
        restored: dict[str, int] = {}
        with _stored_as_given(ordered):
            async with transaction():
                await _make_room(ordered, replace)
                batch: list[Model] = []
                batch_table: str | None = None  # the table of the rows in batch (None before the first)
                for table, row in backup_file.rows():
                    if table != batch_table or len(batch) >= BATCH:
                        await _insert(by_table.get(batch_table or ""), batch, restored, progress)
                        batch, batch_table = [], table
                    batch.append(_instance(by_table[table], row))
                await _insert(by_table.get(batch_table or ""), batch, restored, progress)
    return restored


async def _make_room(ordered: list[type[Model]], replace: bool) -> None:
    """Refuse non-empty tables (without ``replace``) or rows outside the backup referring to them; then empty
    them, children first. Runs inside the restore's transaction, before its first write."""
    filled = [m for m in reversed(ordered) if await introspect.count_rows(m._meta.db_table)]
    if not filled:
        return
    if not replace:
        raise DataLayerError(f"table {filled[0]._meta.db_table} is not empty; restore into an empty database "
                             "(`datalayer reset --env none`) or pass --replace")
    outside = await referencing_rows({m._meta.db_table for m in ordered})
    if outside:
        named = ", ".join(f"{r.table} (its {r.column} refers to {r.target})" for r in outside)
        raise DataLayerError(f"restore --replace would delete or change rows of tables the backup does not hold: "
                             f"{named}; empty those first, take the backup with the app that owns them loaded, "
                             "or restore into an empty database")
    for model in filled:
        with translated(model.__name__):
            await introspect.every_row(model).delete()


async def _insert(model: type[Model] | None, batch: list[Model], restored: dict[str, int],
                  progress: Progress | None) -> None:
    if model is None or not batch:
        return
    with translated(model.__name__):
        await model.bulk_create(batch)
    restored[model._meta.db_table] = restored.get(model._meta.db_table, 0) + len(batch)
    if progress:
        progress(model._meta.db_table, len(batch))
