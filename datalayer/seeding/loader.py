"""Reading seed sets: ``seeds/<environment>.json``, with ``include`` to share reference data between sets.

A seed file is data, not code::

    {"include": ["reference/character_templates.json"],
     "records": [{"model": "User", "key": ["email"], "rows": [{"email": "a@example.com", ...}]}]}

``key`` names the natural key that makes re-running idempotent. A relation is given as a lookup of the
related row, e.g. ``"user": {"email": "a@example.com"}``. ``User`` rows take a plain ``password`` (hashed
with bcrypt when stored) or none, in which case one is generated and reported once.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datalayer.errors import ConfigurationError

ENVIRONMENTS = ("development", "test", "production")
SEEDS_DIR = Path(os.environ.get("DATALAYER_SEEDS_DIR", Path(__file__).resolve().parents[2] / "seeds"))


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
    blocks: list[SeedBlock] = []
    for include in document.get("include", []):
        blocks.extend(_read(path.parent / include, seen))
    for index, record in enumerate(document.get("records", [])):
        missing = [k for k in ("model", "key", "rows") if k not in record]
        if missing:
            raise ConfigurationError(f"{path.name}: records[{index}] needs {', '.join(missing)}")
        key = tuple(record["key"])
        for row in record["rows"]:
            absent = [k for k in key if k not in row]
            if absent:
                raise ConfigurationError(
                    f"{path.name}: a {record['model']} row lacks its key field(s) {', '.join(absent)}: {row}"
                )
        blocks.append(SeedBlock(record["model"], key, tuple(record["rows"]), path.name))
    return blocks


def load_seed_set(environment: str, directory: Path | None = None) -> SeedSet:
    """The seed set of ``environment`` (``development``, ``test`` or ``production``) or of a file path."""
    directory = directory or SEEDS_DIR
    candidate = Path(environment)
    if candidate.suffix == ".json" and candidate.exists():
        return SeedSet(candidate.stem, _read(candidate.resolve(), set()))
    if environment not in ENVIRONMENTS:
        raise ConfigurationError(
            f"unknown environment {environment!r}: use one of {', '.join(ENVIRONMENTS)} (or a path to a .json seed file)"
        )
    return SeedSet(environment, _read((directory / f"{environment}.json").resolve(), set()))
