"""Bulk inserts: PostgreSQL's binary COPY when it is there, batched multi-row INSERTs elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tortoise.connection import get_connection

from datalayer.config import CONNECTION_NAME


def _records(model: type, instances: Sequence[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
    projection = model._meta.fields_db_projection
    fields_map = model._meta.fields_map
    names = list(projection)
    converters = [fields_map[name].to_db_value for name in names]
    records = [
        tuple(convert(getattr(instance, name), instance) for name, convert in zip(names, converters))
        for instance in instances
    ]
    return [projection[name] for name in names], records


async def insert_rows(model: type, instances: Sequence[Any], batch_size: int = 1000) -> None:
    """Insert ``instances`` on the current connection (the open transaction's, when there is one)."""
    if not instances:
        return
    connection = get_connection(CONNECTION_NAME)
    if connection.capabilities.dialect != "postgres":
        await model.bulk_create(instances, batch_size=batch_size, using_db=connection)
        return
    columns, records = _records(model, instances)
    async with connection.acquire_connection() as raw:
        await raw.copy_records_to_table(model._meta.db_table, records=records, columns=columns)
    for instance in instances:
        instance._saved_in_db = True
