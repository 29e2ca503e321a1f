"""The dual-dialect migration file: what ``datalayer migrate`` writes and aerich imports and runs.

aerich writes one dialect per file, taken from the connection it loads. datalayer's histories must take an
empty PostgreSQL database *and* an empty SQLite file to the current schema, so each file carries SQL for both
dialects, and its ``upgrade(db)`` picks the SQL for ``db``'s dialect.

Each file also tracks what aerich cannot see: the partial unique indexes among live rows
(``datalayer.schema.live_unique_sql``). Every file lists its app's full set in ``LIVE_UNIQUE_INDEXES``; a new
file creates the ones added since the previous file and drops the ones removed.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from datalayer.errors import ConfigurationError

DIALECTS = ("postgres", "sqlite")

#: The SQL of a ``datalayer migrate --empty`` file until its author replaces it: a statement that runs on both
#: engines and changes nothing (asyncpg cannot execute an empty or comment-only script), so the file applies
#: and rolls back as it is. The comments say what to write.
EMPTY_UPGRADE = ("-- `datalayer migrate --empty` wrote this no-op: replace it with this migration's SQL\n"
                 "        SELECT 1")
EMPTY_DOWNGRADE = ("-- `datalayer migrate --empty` wrote this no-op: replace it with the SQL that undoes UPGRADE\n"
                   "        SELECT 1")
_INDEX_NAME = re.compile(r'INDEX IF NOT EXISTS "([^"]+)"')


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_migration_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def number_of(path: Path) -> int:
    """The version number of a migration file: ``2`` for ``2_20250101120000_add_phone.py``."""
    return int(path.stem.split("_", 1)[0])


def version_files(folder: Path) -> list[Path]:
    """Migration files in order (``<n>_<timestamp>_<name>.py``), as aerich orders them ([] with no folder).

    Raises:
        ConfigurationError: two files share a number (``check_numbering``).
    """
    if not folder.is_dir():
        return []
    files = [p for p in folder.glob("*.py") if p.stem.split("_", 1)[0].isdigit() and "_" in p.stem]
    files = sorted(files, key=lambda p: (number_of(p), p.name))
    check_numbering(files)
    return files


def check_numbering(files: list[Path]) -> None:
    """Refuse a history in which two files have the same number (two branches that each added migration N).

    aerich would apply both, in no defined order, and the next ``datalayer migrate`` would diff against one
    of them only and repeat the other's SQL.

    Raises:
        ConfigurationError: naming the files that share a number and how to renumber one.
    """
    by_number: dict[int, list[Path]] = {}
    for path in files:
        by_number.setdefault(number_of(path), []).append(path)
    clashes = {number: paths for number, paths in by_number.items() if len(paths) > 1}
    if not clashes:
        return
    number, paths = min(clashes.items())
    free = max(by_number) + 1
    later = paths[-1]
    renamed = f"{free}_{later.stem.split('_', 1)[1]}.py"
    raise ConfigurationError(
        f"{later.parent} has {len(paths)} migrations numbered {number}: {' and '.join(p.name for p in paths)} "
        f"(merged branches that each added migration {number}); renumber the one no database has applied yet "
        f"to the next free number, e.g. rename {later.name} to {renamed}, then run the command again"
    )


def has_sql(script: str) -> bool:
    """Whether ``script`` holds a statement, not only ``--`` comments, blank lines and semicolons."""
    lines = (line.split("--", 1)[0] for line in script.splitlines())
    return bool("".join(lines).replace(";", "").strip())


def downgrade_refusal(path: Path, dialect: str) -> str | None:
    """Why migration file ``path`` cannot be rolled back on ``dialect``, or ``None`` when it can.

    aerich refuses a file whose downgrade SQL is empty ("No downgrade items found"): an app's initial
    migration (it creates the app's tables), or a file written with no ``DOWNGRADE`` SQL for that dialect;
    one holding only comments is refused here too (asyncpg cannot execute it).
    """
    if not path.is_file():
        return None
    statements = getattr(load_module(path), "DOWNGRADE", None)
    if not isinstance(statements, dict) or has_sql(str(statements.get(dialect, ""))):
        return None
    shown = f"{path.parent.name}/{path.name}"
    if number_of(path) == 0:
        return (f"{shown} is the initial migration of {path.parent.name}: it creates the app's tables and "
                "cannot be undone (`datalayer reset` rebuilds the database)")
    return (f"{shown} has no downgrade SQL for {dialect} (its DOWNGRADE[{dialect!r}] is empty); write the SQL "
            "that undoes its UPGRADE there, then run `datalayer downgrade` again")


def live_unique_indexes_of(module: ModuleType | None) -> tuple[str, ...]:
    return tuple(getattr(module, "LIVE_UNIQUE_INDEXES", ())) if module is not None else ()


def _index_name(statement: str) -> str:
    found = _INDEX_NAME.search(statement)
    if found is None:
        raise ValueError(f"not a CREATE INDEX statement datalayer writes: {statement[:80]!r}")
    return found.group(1)


def index_diff(before: tuple[str, ...], after: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(upgrade statements, downgrade statements) turning the ``before`` index set into ``after``."""
    added = [s for s in after if s not in before]
    removed = [s for s in before if s not in after]
    upgrade = added + [f'DROP INDEX IF EXISTS "{_index_name(s)}"' for s in removed]
    downgrade = [f'DROP INDEX IF EXISTS "{_index_name(s)}"' for s in added] + removed
    return upgrade, downgrade


def _sql_block(sql_by_dialect: dict[str, str]) -> str:
    lines = ["{"]
    for dialect in DIALECTS:
        body = sql_by_dialect.get(dialect, "").strip().replace("\\", "\\\\").replace('"""', '\\"\\"\\"')  # a literal
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
    def position(statement: str) -> int:  # later-created tables are dropped first
        dropped = _DROPPED.match(statement)
        table = dropped.group(1) if dropped else ""
        return -created.index(table) if table in created else 1

    drops = sorted((statements[i] for i in slots), key=position)
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
        assert previous is not None  # only live-unique indexes changed, so there is a previous file
        generated = {"file": fallback_file, "models_state": previous.MODELS_STATE}
    upgrade = {d: _join(r.get("upgrade", ""), index_up) for d, r in results.items()}
    # Indexes go first on the way down: they may sit on columns the aerich SQL drops.
    downgrade = {
        d: _join(index_down, drops_in_dependency_order(r.get("downgrade", ""), r.get("upgrade", ""))) if previous else ""
        for d, r in results.items()
    }
    return generated["file"], render(upgrade, downgrade, indexes, generated["models_state"])
