"""DDL that Tortoise cannot express: unique indexes that hold among live (not soft-deleted) rows only.

The same statements serve ``generate_schemas`` (tests, quick starts) and the Aerich migrations, and they
run unchanged on PostgreSQL and SQLite (both support partial and expression indexes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

_INDEX_FIELDS: dict[str, tuple[str, ...]] = {}


@dataclass(frozen=True)
class LiveUnique:
    """Unique among rows whose ``deleted_at`` is NULL; ``lower=True`` compares text case-insensitively."""

    fields: tuple[str, ...]
    lower: bool = False

    @classmethod
    def of(cls, spec: str | tuple[str, ...] | LiveUnique) -> LiveUnique:
        if isinstance(spec, LiveUnique):
            return spec
        return cls((spec,) if isinstance(spec, str) else tuple(spec))


def live_unique_index_name(table: str, rule: LiveUnique) -> str:
    name = f"ux_{table}_{'_'.join(rule.fields)}_live"
    _INDEX_FIELDS[name] = rule.fields
    return name


def fields_of_unique_index(name: str) -> tuple[str, ...]:
    """The model fields behind one of our index names (used to name the field in a ``ConflictError``)."""
    return _INDEX_FIELDS.get(name, ())


def live_unique_sql(model: type) -> list[str]:
    """``CREATE UNIQUE INDEX IF NOT EXISTS ... WHERE deleted_at IS NULL`` for each rule the model declares."""
    table = model._meta.db_table
    statements = []
    for spec in getattr(model, "live_unique_fields", ()):
        rule = LiveUnique.of(spec)
        columns = []
        for field in rule.fields:
            column = model._meta.fields_db_projection.get(field, field)
            columns.append(f'lower("{column}")' if rule.lower else f'"{column}"')
        statements.append(
            f'CREATE UNIQUE INDEX IF NOT EXISTS "{live_unique_index_name(table, rule)}" '
            f'ON "{table}" ({", ".join(columns)}) WHERE "deleted_at" IS NULL'
        )
    return statements


def extra_schema_sql(models: Iterable[type]) -> list[str]:
    return [statement for model in models for statement in live_unique_sql(model)]
