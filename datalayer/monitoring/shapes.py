"""Statement shapes: SQL with every literal and placeholder replaced, so one shape covers many calls.

``SELECT * FROM "user" WHERE "id"=$1 AND "age" > 30`` and the same query with other values share the shape
``SELECT * FROM "user" WHERE "id"=? AND "age" > ?``; ``IN`` lists and multi-row ``VALUES`` collapse to one
entry. A shape never carries a parameter value, so it is safe to log.
"""

from __future__ import annotations

import re

MAX_SHAPE_LENGTH = 1000
_CACHE_LIMIT = 4096

_STRING = re.compile(r"'(?:[^']|'')*'")
_PLACEHOLDER = re.compile(r"\$\d+|%s|\?")
_NUMBER = re.compile(r"(?<![\w\"$.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b")
_SPACE = re.compile(r"\s+")
_IN_LIST = re.compile(r"\bIN\s*\(\s*\?(?:\s*,\s*\?)*\s*\)", re.IGNORECASE)
_ROW = r"\(\s*\?(?:\s*,\s*\?)*\s*\)"
_ROWS = re.compile(rf"({_ROW})(?:\s*,\s*{_ROW})+")

_cache: dict[str, str] = {}


def _normalise(sql: str) -> str:
    shape = _STRING.sub("?", sql)
    shape = _PLACEHOLDER.sub("?", shape)
    shape = _NUMBER.sub("?", shape)
    shape = _SPACE.sub(" ", shape).strip()
    shape = _IN_LIST.sub("IN (...)", shape)
    shape = _ROWS.sub(r"\1, ...", shape)
    if len(shape) > MAX_SHAPE_LENGTH:
        shape = shape[:MAX_SHAPE_LENGTH] + "..."
    return shape


def statement_shape(sql: str) -> str:
    """The shape of ``sql`` (cached: the ORM sends the same parametrised text over and over)."""
    shape = _cache.get(sql)
    if shape is None:
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        shape = _cache[sql] = _normalise(sql)
    return shape
