"""Writing migration files that carry SQL for both dialects (PostgreSQL and SQLite).

aerich writes one dialect per file, taken from the connection it loads. datalayer's history must take an
empty PostgreSQL database *and* an empty SQLite file to the current schema, so ``datalayer migrate`` asks
aerich twice (offline, one child process per dialect, because aerich keeps its diff in class attributes)
and merges the two answers into one file whose ``upgrade(db)`` picks the SQL for ``db``'s dialect.

It also tracks what aerich cannot see: the partial unique indexes among live rows
(``datalayer.schema.live_unique_sql``). Every file lists the full set in ``LIVE_UNIQUE_INDEXES``; a new file
creates the ones added since the previous file and drops the ones removed.

Run as ``python -m datalayer.migration_writer DIALECT LOCATION NAME`` (internal: the child process).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

DIALECTS = ("postgres", "sqlite")
# Never contacted: offline generation needs only the dialect of the URL.
_OFFLINE_URLS = {"postgres": "postgres://postgres@127.0.0.1:1/offline", "sqlite": "sqlite://:memory:"}
_INDEX_NAME = re.compile(r'INDEX IF NOT EXISTS "([^"]+)"')


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_migration_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def version_files(folder: Path) -> list[Path]:
    """Migration files in order (``<n>_<timestamp>_<name>.py``), as aerich orders them."""
    files = [p for p in folder.glob("*.py") if p.stem.split("_", 1)[0].isdigit() and "_" in p.stem]
    return sorted(files, key=lambda p: int(p.stem.split("_", 1)[0]))


def live_unique_indexes_of(module: ModuleType | None) -> tuple[str, ...]:
    return tuple(getattr(module, "LIVE_UNIQUE_INDEXES", ())) if module is not None else ()


def current_live_unique_indexes() -> tuple[str, ...]:
    """The live-unique index statements the loaded models declare (call with Tortoise initialised)."""
    from tortoise import Tortoise

    from datalayer.config import APP_LABEL
    from datalayer.schema import live_unique_sql

    models = sorted(Tortoise.apps[APP_LABEL].values(), key=lambda m: m._meta.db_table)
    return tuple(statement for model in models for statement in live_unique_sql(model))


def index_diff(before: tuple[str, ...], after: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(upgrade statements, downgrade statements) turning the ``before`` index set into ``after``."""
    added = [s for s in after if s not in before]
    removed = [s for s in before if s not in after]
    upgrade = added + [f'DROP INDEX IF EXISTS "{_INDEX_NAME.search(s).group(1)}"' for s in removed]
    downgrade = [f'DROP INDEX IF EXISTS "{_INDEX_NAME.search(s).group(1)}"' for s in added] + removed
    return upgrade, downgrade


async def _generate(dialect: str, location: Path, name: str) -> dict[str, Any]:
    """In a child process: let aerich (offline) write a file for one dialect; return its parts."""
    from aerich import Command
    from tortoise.context import TortoiseContext

    from datalayer.config import APP_LABEL, tortoise_config
    from datalayer.settings import Settings

    settings = Settings(DATABASE_URL=_OFFLINE_URLS[dialect], _env_file=None)
    config = tortoise_config(settings, with_aerich=True)
    folder = location / APP_LABEL
    before = {p.name for p in version_files(folder)} if folder.exists() else set()
    async with TortoiseContext():
        command = Command(tortoise_config=config, app=APP_LABEL, location=str(location))
        command._init_when_aenter = False
        try:
            if not before:
                await command.init_migrations(safe=True)
            else:
                await command.init(offline=True)
                await command.migrate(name, no_input=True, offline=True)
            indexes = current_live_unique_indexes()
        finally:
            await command.aclose()
    new = [p for p in version_files(folder) if p.name not in before]
    if not new:
        return {"file": None, "live_unique_indexes": list(indexes)}
    module = load_module(new[0])
    return {
        "file": new[0].name,
        "upgrade": await module.upgrade(None),
        "downgrade": await module.downgrade(None),
        "models_state": module.MODELS_STATE,
        "live_unique_indexes": list(indexes),
    }


def _sql_block(sql_by_dialect: dict[str, str]) -> str:
    lines = ["{"]
    for dialect in DIALECTS:
        body = sql_by_dialect.get(dialect, "").strip()
        lines.append(f'    "{dialect}": """\n        {body}""",')
    lines.append("}")
    return "\n".join(lines)


def render(
    upgrade: dict[str, str], downgrade: dict[str, str], live_unique_indexes: tuple[str, ...], models_state: str
) -> str:
    """The text of a dual-dialect migration file (``aerich`` imports and runs it like its own)."""
    indexes = "".join(f"    {json.dumps(s)},\n" for s in live_unique_indexes)
    return f'''"""Generated by `datalayer migrate`: SQL per dialect, picked at run time (see datalayer/migration_writer.py)."""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

UPGRADE = {_sql_block(upgrade)}

DOWNGRADE = {_sql_block(downgrade)}

# Every partial unique index among live rows after this migration (aerich cannot see them).
LIVE_UNIQUE_INDEXES = (
{indexes})


def _dialect(db: BaseDBAsyncClient | None) -> str:
    return db.capabilities.dialect if db is not None else "postgres"


async def upgrade(db: BaseDBAsyncClient) -> str:
    return UPGRADE[_dialect(db)]


async def downgrade(db: BaseDBAsyncClient) -> str:
    return DOWNGRADE[_dialect(db)]


MODELS_STATE = {models_state!r}
'''


def _join(*parts: str | list[str]) -> str:
    statements: list[str] = []
    for part in parts:
        if isinstance(part, str):
            statements.extend(s.strip() for s in part.strip().split(";\n") if s.strip())
        else:
            statements.extend(part)
    return ";\n        ".join(s.rstrip(";") for s in statements) + (";" if statements else "")


_CREATED = re.compile(r'CREATE TABLE (?:IF NOT EXISTS )?"([^"]+)"')
_DROPPED = re.compile(r'^DROP TABLE (?:IF EXISTS )?"([^"]+)"')


def drops_in_dependency_order(downgrade: str, upgrade: str) -> str:
    """Reorder ``DROP TABLE`` statements to the reverse of creation order (aerich's order breaks FKs)."""
    created = _CREATED.findall(upgrade)
    statements = [s.strip() for s in downgrade.strip().split(";\n") if s.strip()]
    slots = [i for i, s in enumerate(statements) if _DROPPED.match(s)]
    drops = sorted((statements[i] for i in slots),
                   key=lambda s: -created.index(_DROPPED.match(s).group(1)) if _DROPPED.match(s).group(1) in created else 1)
    for i, statement in zip(slots, drops, strict=True):
        statements[i] = statement
    return ";\n".join(statements)


def merge(
    results: dict[str, dict[str, Any]], previous: ModuleType | None, fallback_file: str
) -> tuple[str, str] | None:
    """Combine the per-dialect results into (file name, file text); ``None`` when nothing changed.

    ``fallback_file`` names the file when only live-unique indexes changed (aerich then writes nothing).
    """
    indexes = tuple(results["postgres"]["live_unique_indexes"])
    index_up, index_down = index_diff(live_unique_indexes_of(previous), indexes)
    generated = next((r for r in results.values() if r["file"]), None)
    if generated is None and not index_up:
        return None
    if generated is None:
        generated = {"file": fallback_file, "models_state": previous.MODELS_STATE}
    upgrade = {d: _join(r.get("upgrade", ""), index_up) for d, r in results.items()}
    # Indexes go first on the way down: they may sit on columns the aerich SQL drops.
    downgrade = {
        d: _join(index_down, drops_in_dependency_order(r.get("downgrade", ""), r.get("upgrade", ""))) if previous else ""
        for d, r in results.items()
    }
    return generated["file"], render(upgrade, downgrade, indexes, generated["models_state"])


def main(argv: list[str]) -> None:
    dialect, location, name = argv
    result = asyncio.run(_generate(dialect, Path(location), name))
    sys.stdout.write("\n" + json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
