"""DDL that Tortoise cannot express: unique indexes that hold among live (not soft-deleted) rows only, and
three index kinds for ``Meta.indexes`` (``EqualityIndex``, ``NotNullIndex``, ``CoveringIndex``).

The same statements serve ``generate_schemas`` (tests, quick starts) and the Aerich migrations, and they
run on PostgreSQL and SQLite (both support partial and expression indexes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tortoise.indexes import Index
from tortoise.models import Model


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
    return f"ux_{table}_{'_'.join(rule.fields)}_live"


def unique_names(model: type[Model]) -> dict[str, tuple[str, ...]]:
    """The names the database gives ``model``'s unique rules, each mapped to the model fields it covers.

    Derived from the model alone, so it holds however the schema was made (migrations, ``generate_schemas``,
    by hand): our live-unique indexes, and PostgreSQL's ``<table>_<column>_key`` for ``unique=True`` fields.

    Args:
        model: a Tortoise model class.

    Returns:
        ``{index or constraint name: (field, ...)}``.
    """
    table = model._meta.db_table
    names = {
        live_unique_index_name(table, rule): rule.fields
        for rule in map(LiveUnique.of, getattr(model, "live_unique_fields", ()))
    }
    for name, field in model._meta.fields_map.items():
        if field.unique and not field.pk and name in model._meta.fields_db_projection:
            names[f"{table}_{model._meta.fields_db_projection[name]}_key"] = (name,)
    return names


def fields_of_unique_index(name: str, models: Iterable[type[Model]]) -> tuple[str, ...]:
    """The model fields behind a unique index or constraint name, looked up among ``models``.

    Args:
        name: the index or constraint name the database reported.
        models: the loaded model classes.

    Returns:
        The fields, or ``()`` when no model declares a rule of that name.
    """
    for model in models:
        if fields := unique_names(model).get(name):
            return fields
    return ()


def fields_of_columns(table: str | None, columns: Sequence[str], models: Iterable[type[Model]]) -> tuple[str, ...]:
    """The model fields stored in ``columns`` of ``table`` (a column no model maps is kept as it is).

    Args:
        table: the table the database reported, if any.
        columns: bare column names.
        models: the loaded model classes.

    Returns:
        One field name per column, in order.
    """
    owner = next((model for model in models if model._meta.db_table == table), None) if table else None
    by_column = {column: field for field, column in owner._meta.fields_db_projection.items()} if owner else {}
    return tuple(by_column.get(column, column) for column in columns)


def live_unique_sql(model: type[Model]) -> list[str]:
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


def extra_schema_sql(models: Iterable[type[Model]]) -> list[str]:
    return [statement for model in models for statement in live_unique_sql(model)]


class EqualityIndex(Index):
    """An index for ``column = value`` lookups on one column: hash on PostgreSQL, B-tree elsewhere.

    A hash index stores a 4-byte hash instead of the value and never compares text under a collation, so
    it costs much less to keep up on a busy insert path (the audit log's ``record_id``: about 60 ms less
    per 20,000 audit rows), and equality lookups are all it has to serve.
    """

    def __init__(self, *, fields: Sequence[str], name: str | None = None) -> None:
        if len(fields) != 1:
            raise ValueError(f"EqualityIndex covers one column, got {list(fields)}")
        super().__init__(fields=tuple(fields), name=name)

    def get_sql(self, schema_generator: Any, model: Any, safe: bool) -> str:
        index_type = "HASH" if schema_generator.DIALECT == "postgres" else ""
        return schema_generator._get_index_sql(model, self.field_names, safe, index_name=self.name,
                                               index_type=index_type, extra=self.extra)


class NotNullIndex(Index):
    """A B-tree over the rows whose first column is set (``WHERE <first> IS NOT NULL``).

    For a column that is often NULL and only ever looked up by value (the audit log's ``actor_id``: bulk
    imports and system writes have no actor): those rows cost nothing to index, and ``column = value``
    still uses the index, since it implies ``IS NOT NULL``.
    """

    def __init__(self, *, fields: Sequence[str], name: str | None = None) -> None:
        super().__init__(fields=tuple(fields), name=name)
        self.extra = f' WHERE "{fields[0]}" IS NOT NULL'


class CoveringIndex(Index):
    """A B-tree on ``fields`` that also carries the ``include`` columns, so a query reading only those
    columns is answered from the index alone (an index-only scan, no table row read).

    PostgreSQL keeps ``include`` outside the key (``INCLUDE (...)``); SQLite has no ``INCLUDE`` and gets them
    as trailing key columns, which covers the same queries. Made for ``usage_statistics()`` over
    ``model_usage``: a model's rows by time, aggregating four columns (see the README's partitioning notes).
    """

    def __init__(self, *, fields: Sequence[str], include: Sequence[str], name: str | None = None) -> None:
        super().__init__(fields=tuple(fields), name=name)
        self.include = tuple(include)

    def get_sql(self, schema_generator: Any, model: Any, safe: bool) -> str:
        columns = [model._meta.fields_db_projection.get(name, name) for name in self.include]
        if schema_generator.DIALECT == "postgres":
            extra = " INCLUDE (" + ", ".join(f'"{column}"' for column in columns) + ")"
            return schema_generator._get_index_sql(model, self.field_names, safe, index_name=self.name, extra=extra)
        return schema_generator._get_index_sql(model, [*self.field_names, *columns], safe, index_name=self.name)
