"""Offset pages and keyset chunks, with an opaque cursor."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import json
import math
import uuid
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from datalayer.errors import ValidationError

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of an offset query, with the total across all pages."""

    items: list[T]
    total: int
    page: int
    limit: int

    @property
    def pages(self) -> int:
        return math.ceil(self.total / self.limit) if self.limit else 0

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def has_prev(self) -> bool:
        return self.page > 1


@dataclass(frozen=True)
class Chunk(Generic[T]):
    """One keyset chunk; pass ``next_cursor`` back to continue, ``None`` means the end."""

    items: list[T]
    next_cursor: str | None
    limit: int = field(default=0)

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None


def check_page(page: Any, limit: Any, max_limit: int) -> tuple[int, int]:
    errors = {}
    if not isinstance(page, int) or isinstance(page, bool) or page < 1:
        errors["page"] = "expected a whole number >= 1"
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= max_limit:
        errors["limit"] = f"expected a whole number from 1 to {max_limit}"
    if errors:
        raise ValidationError(errors)
    return page, limit


def _tag(value: Any) -> list[Any]:
    if isinstance(value, dt.datetime):
        return ["dt", value.isoformat()]
    if isinstance(value, dt.date):
        return ["d", value.isoformat()]
    if isinstance(value, uuid.UUID):
        return ["u", str(value)]
    if isinstance(value, decimal.Decimal):
        return ["dec", str(value)]
    if hasattr(value, "value") and not isinstance(value, int | float | str | bool):  # enums
        return ["v", value.value]
    return ["v", value]


def _untag(tagged: list[Any]) -> Any:
    kind, raw = tagged
    if kind == "dt":
        return dt.datetime.fromisoformat(raw)
    if kind == "d":
        return dt.date.fromisoformat(raw)
    if kind == "u":
        return uuid.UUID(raw)
    if kind == "dec":
        return decimal.Decimal(raw)
    return raw


def encode_cursor(sort_by: str, descending: bool, value: Any, last_id: Any) -> str:
    payload = {"s": sort_by, "o": "d" if descending else "a", "v": _tag(value), "id": str(last_id)}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort_by: str, descending: bool) -> tuple[Any, str]:
    """The ``(sort value, id)`` a cursor points after; a foreign or mangled cursor is a ``ValidationError``."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        value = _untag(payload["v"])
        last_id = str(payload["id"])
        made_for = (payload["s"], payload["o"])
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
        raise ValidationError({"cursor": "not a cursor this layer issued; start again with cursor=None"}) from None
    if made_for != (sort_by, "d" if descending else "a"):
        raise ValidationError({"cursor": "was issued for another sort; pass the same sort_by and sort_order"})
    return value, last_id
