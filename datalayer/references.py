"""Foreign keys as the database has them (not as the loaded models say): which rows of other tables refer to
a set of tables. ``restore --replace`` uses it to never delete or change rows of a table it does not restore.
"""

from __future__ import annotations

from dataclasses import dataclass

from tortoise.backends.base.client import BaseDBAsyncClient

from datalayer import introspect
from datalayer.translate import translated


@dataclass(frozen=True)
class Reference:
    """Rows of ``table`` (``schema.table`` outside the current schema) whose ``column`` refers to ``target``."""

    table: str
    column: str
    target: str


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_PG_FOREIGN_KEYS = """
SELECT n.nspname AS schema, src.relname AS "table", dst.relname AS target,
       (n.nspname = current_schema()) AS local,
       array_agg(a.attname::text ORDER BY a.attnum) AS columns
FROM pg_constraint c
JOIN pg_class src ON src.oid = c.conrelid
JOIN pg_namespace n ON n.oid = src.relnamespace
JOIN pg_class dst ON dst.oid = c.confrelid
JOIN pg_namespace dn ON dn.oid = dst.relnamespace
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
WHERE c.contype = 'f' AND dn.nspname = current_schema()
GROUP BY c.oid, n.nspname, src.relname, dst.relname
ORDER BY n.nspname, src.relname, dst.relname
"""


async def _foreign_keys(client: BaseDBAsyncClient) -> list[tuple[str, str, list[str], str]]:
    """Every foreign key into the current schema: (quoted referencing table, its name, columns, target)."""
    if introspect.dialect_of(client) == "postgres":
        _, rows = await client.execute_query(_PG_FOREIGN_KEYS)
        return [(_quote(r["table"]) if r["local"] else f'{_quote(r["schema"])}.{_quote(r["table"])}',
                 r["table"] if r["local"] else f'{r["schema"]}.{r["table"]}', list(r["columns"]), r["target"])
                for r in rows]
    keys: list[tuple[str, str, list[str], str]] = []
    for table in sorted(await introspect.existing_tables(client)):
        _, rows = await client.execute_query(f"PRAGMA foreign_key_list({_quote(table)})")
        by_id: dict[int, tuple[str, list[str]]] = {}
        for row in rows:
            by_id.setdefault(row["id"], (row["table"], []))[1].append(row["from"])
        keys.extend((_quote(table), table, columns, target) for target, columns in by_id.values())
    return keys


async def referencing_rows(tables: set[str], client: BaseDBAsyncClient | None = None) -> list[Reference]:
    """Foreign keys from tables outside ``tables`` into ``tables`` that rows actually use (a non-null value).

    A referencing table without such rows is left out: emptying ``tables`` cannot touch it.
    """
    client = client or introspect.connection()
    found = []
    with translated("database"):
        for quoted, name, columns, target in await _foreign_keys(client):
            if name in tables or target not in tables:
                continue
            used = " OR ".join(f"{_quote(column)} IS NOT NULL" for column in columns)
            _, rows = await client.execute_query(f"SELECT 1 AS used FROM {quoted} WHERE {used} LIMIT 1")
            if rows:
                found.append(Reference(name, ", ".join(columns), target))
    return found
