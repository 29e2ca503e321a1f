"""Reading seed sets: each loaded pack's ``seeds/<pack>/<environment>.json``, then the app's own
``<seeds>/<environment>.json`` (see ``datalayer.project``), with ``include`` to share reference data.

A seed file is data, not code::

    {"include": ["reference/character_templates.json"],
     "records": [{"model": "User", "key": ["email"], "rows": [{"email": "a@example.com", ...}]}]}

``key`` names the natural key that makes re-running idempotent. A relation is given as a lookup of the
related row, e.g. ``"user": {"email": "a@example.com"}``. ``User`` rows take a plain ``password`` (hashed
with bcrypt when stored) or none, in which case one is generated and reported once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datalayer.errors import ConfigurationError, shown
from datalayer.packs import bundled_folder
from datalayer.project import Project, load_project

ENVIRONMENTS = ("development", "test", "production")
SEEDS_DIR = bundled_folder("seeds")
"""The packs' seed sets: ``datalayer._seeds`` in a wheel, ``seeds/`` in a checkout; one folder per pack."""


@dataclass(frozen=True)
class SeedBlock:
    """Rows of one model and the natural key identifying each of them."""

    model: str
    key: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    source: str


@dataclass
class SeedSet:
    name: str
    blocks: list[SeedBlock] = field(default_factory=list)

    def count(self) -> int:
        return sum(len(block.rows) for block in self.blocks)


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "true/false", type(None): "null"}


def _kind(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _shape(document: Any, name: str) -> tuple[list[str], list[dict[str, Any]]]:
    """``(include, records)`` of a seed file, each part checked for the shape the runner reads.

    Raises:
        ConfigurationError: naming the file and the part that is not as ``{"include": [file, ...],
            "records": [{"model": name, "key": [field, ...], "rows": [{...}, ...]}, ...]}``.
    """
    if not isinstance(document, dict):
        raise ConfigurationError(f'{name}: expected an object with "records" (and "include"), got {_kind(document)}')
    includes, records = document.get("include", []), document.get("records", [])
    if not isinstance(includes, list) or not all(isinstance(item, str) for item in includes):
        raise ConfigurationError(f'{name}: "include" must be an array of file names')
    if not isinstance(records, list):
        raise ConfigurationError(f'{name}: "records" must be an array, got {_kind(records)}')
    for index, record in enumerate(records):
        where = f"{name}: records[{index}]"
        if not isinstance(record, dict):
            raise ConfigurationError(f"{where} must be an object with model, key and rows, got {_kind(record)}")
        missing = [k for k in ("model", "key", "rows") if k not in record]
        if missing:
            raise ConfigurationError(f"{where} needs {', '.join(missing)}")
        if not isinstance(record["model"], str):
            raise ConfigurationError(f'{where}: "model" must be a model name, got {_kind(record["model"])}')
        key = record["key"]
        if not isinstance(key, list) or not key or not all(isinstance(k, str) for k in key):
            raise ConfigurationError(f'{where}: "key" must be a non-empty array of field names, got {_kind(key)}')
        rows = record["rows"]
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise ConfigurationError(f'{where}: "rows" must be an array of objects')
    return includes, records


def _read(path: Path, seen: set[Path]) -> list[SeedBlock]:
    if path in seen:
        raise ConfigurationError(f"seed file {path.name} includes itself")
    seen = seen | {path}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"seed file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"seed file {path.name} is not valid JSON: {exc}") from None
    includes, records = _shape(document, path.name)
    blocks: list[SeedBlock] = []
    for include in includes:
        blocks.extend(_read(path.parent / include, seen))
    for index, record in enumerate(records):
        key = tuple(record["key"])
        first_with: dict[str, int] = {}
        for place, row in enumerate(record["rows"]):
            absent = [k for k in key if k not in row]
            if absent:
                raise ConfigurationError(
                    f"{path.name}: a {record['model']} row lacks its key field(s) {', '.join(absent)}: {row}"
                )
            marker = json.dumps([row[k] for k in key], sort_keys=True, default=str)
            if marker in first_with:
                raise ConfigurationError(
                    f"{path.name}: records[{index}] rows {first_with[marker]} and {place} have the same "
                    f"{record['model']} key ({', '.join(key)} = {shown(marker)}); keep one"
                )
            first_with[marker] = place
        blocks.append(SeedBlock(record["model"], key, tuple(record["rows"]), path.name))
    return blocks


def seed_files(environment: str, project: Project | None = None) -> list[Path]:
    """The files of one environment's seed set, in the order they apply: packs first, then the app's."""
    project = project or load_project()
    files = [SEEDS_DIR / pack.label / f"{environment}.json" for pack in project.packs]
    files.append(project.seeds_dir / f"{environment}.json")
    return [path.resolve() for path in files if path.is_file()]


def load_seed_set(environment: str, project: Project | None = None) -> SeedSet:
    """The seed set of ``environment`` (``development``, ``test`` or ``production``) or of one file's path.

    An environment's set is every loaded pack's ``seeds/<pack>/<environment>.json`` then the app's own
    ``<seeds>/<environment>.json``; a pack or app without that file adds nothing.

    Raises:
        ConfigurationError: an unknown environment, a file that is not valid JSON or lacks a key field.
    """
    candidate = Path(environment)
    if candidate.suffix == ".json":
        if not candidate.exists():
            raise ConfigurationError(f"seed file {candidate} does not exist")
        return SeedSet(candidate.stem, _read(candidate.resolve(), set()))
    if environment not in ENVIRONMENTS:
        raise ConfigurationError(
            f"unknown environment {environment!r}: use one of {', '.join(ENVIRONMENTS)} (or a path to a .json seed file)"
        )
    return SeedSet(environment, [block for path in seed_files(environment, project) for block in _read(path, set())])
