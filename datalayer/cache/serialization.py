"""JSON encoding for cached values (never pickle): datetimes, UUIDs, decimals and bytes round-trip exactly.

Types JSON lacks are written as tagged objects ``{"$t": "uuid", "v": "..."}``; a caller's own dict that happens
to hold a ``"$t"`` key is wrapped too, so decoding never mistakes data for a tag.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import json
import math
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from datalayer.errors import ValidationError

_TAG = "$t"


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON types, with the non-JSON types tagged."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return {_TAG: "float", "v": repr(value)}
        return value
    if isinstance(value, dict):
        items = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError({"value": f"dict keys must be strings to cache as JSON, got {key!r:.40}"})
            items[key] = to_jsonable(item)
        return {_TAG: "dict", "v": items} if _TAG in items else items
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, dt.datetime):
        return {_TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, dt.date):
        return {_TAG: "date", "v": value.isoformat()}
    if isinstance(value, dt.time):
        return {_TAG: "time", "v": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {_TAG: "timedelta", "v": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, uuid.UUID):
        return {_TAG: "uuid", "v": str(value)}
    if isinstance(value, Decimal):
        return {_TAG: "decimal", "v": str(value)}
    if isinstance(value, (bytes, bytearray)):
        return {_TAG: "bytes", "v": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, (set, frozenset)):
        return [to_jsonable(item) for item in value]
    raise ValidationError(
        {"value": f"{type(value).__name__} cannot be cached as JSON; pass dicts, lists, str, numbers, "
                  "datetimes, UUIDs, decimals or bytes"}
    )


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timedelta": lambda v: dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "uuid": uuid.UUID,
    "decimal": Decimal,
    "bytes": lambda v: base64.b64decode(v.encode("ascii")),
    "float": float,
}


def from_jsonable(value: Any) -> Any:
    """Undo ``to_jsonable``."""
    if isinstance(value, list):
        return [from_jsonable(item) for item in value]
    if isinstance(value, dict):
        tag = value.get(_TAG)
        if tag is None:
            return {key: from_jsonable(item) for key, item in value.items()}
        if tag == "dict":
            return {key: from_jsonable(item) for key, item in value["v"].items()}
        return _DECODERS[tag](value["v"])
    return value


def dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), separators=(",", ":"), ensure_ascii=False)


def loads(text: str | bytes) -> Any:
    return from_jsonable(json.loads(text))
