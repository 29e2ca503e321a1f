"""Offset pages and keyset chunks, with an opaque cursor."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import json
import math
import uuid
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, computed_field
from tortoise.models import Model

from datalayer.errors import ValidationError
from datalayer.managers.filters import coerce, filter_fields

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of an offset query, with the total across all pages.

    A generic pydantic model: ``Page[User]`` is a FastAPI ``response_model`` whose items are serialised by
    their output schema (secret fields left out); ``pages``, ``has_next`` and ``has_prev`` are in the output.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    items: list[T]
    total: int
    page: int
    limit: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def pages(self) -> int:
        return math.ceil(self.total / self.limit) if self.limit else 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @computed_field  # type: ignore[prop-decorator]
    @property
    def has_prev(self) -> bool:
        return self.page > 1


class Chunk(BaseModel, Generic[T]):
    """One keyset chunk; pass ``next_cursor`` back to continue, ``None`` means the end.

    A generic pydantic model like ``Page``: ``Chunk[User]`` works as a ``response_model``.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    items: list[T]
    next_cursor: str | None
    limit: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None


#: the furthest row an offset page may start at (OFFSET is a signed 64-bit integer on both engines)
MAX_OFFSET = 2**63 - 1
#: a cursor longer than this was not issued here (the longest sort value is a 1,000-character text field)
MAX_CURSOR_LENGTH = 16_384


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_page(page: Any, limit: Any, max_limit: int) -> tuple[int, int]:
    """Validate an offset page request.

    Args:
        page: 1-based page number.
        limit: rows per page, 1 to ``max_limit``.
        max_limit: the manager's largest page.

    Returns:
        ``(page, limit)``.

    Raises:
        ValidationError: naming ``page`` and/or ``limit``; a page so far that its offset would not fit
            a 64-bit integer is refused too (a page past the last row is fine and comes back empty).
    """
    errors = {}
    if not _whole(page) or page < 1:
        errors["page"] = "expected a whole number >= 1"
    if not _whole(limit) or not 1 <= limit <= max_limit:
        errors["limit"] = f"expected a whole number from 1 to {max_limit}"
    if not errors and (page - 1) * limit > MAX_OFFSET:
        errors["page"] = f"too far: (page - 1) * limit must be at most {MAX_OFFSET}; use find_after to go deep"
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


def _untag(tagged: Any) -> Any:
    """The raw value of a ``[kind, value]`` pair; ``decode_cursor`` parses it as the sort column's type."""
    kind, raw = tagged
    if not isinstance(kind, str):
        raise TypeError("the value's kind must be text")
    return raw


def encode_cursor(sort_by: str, descending: bool, value: Any, last_id: Any) -> str:
    payload = {"s": sort_by, "o": "d" if descending else "a", "v": _tag(value), "id": str(last_id)}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(model: type[Model], cursor: Any, sort_by: str, descending: bool) -> tuple[Any, Any]:
    """The ``(sort value, id)`` a cursor points after, each coerced to its column's type.

    Args:
        model: the model paged.
        cursor: ``Chunk.next_cursor`` from an earlier call, as the client sent it back.
        sort_by: the sort field of this call; ``descending`` its order.

    Returns:
        ``(value, id)`` ready to compare with the columns.

    Raises:
        ValidationError: under ``cursor`` when it was not issued here, was issued for another sort, or was
            edited (a value of another type, one that does not parse, or out of the column's range).
    """
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        value = _untag(payload["v"])
        last_id = payload["id"]
        made_for = (payload["s"], payload["o"])
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise ValidationError({"cursor": "not a cursor this layer issued; start again with cursor=None"}) from None
    if made_for != (sort_by, "d" if descending else "a"):
        raise ValidationError({"cursor": "was issued for another sort; pass the same sort_by and sort_order"})
    allowed = filter_fields(model)
    try:
        return (coerce(allowed[sort_by], value, key="cursor", model=model.__name__),
                coerce(allowed[model._meta.pk_attr], last_id, key="cursor", model=model.__name__))
    except ValidationError as exc:
        raise ValidationError({"cursor": f"was edited: {exc.errors['cursor']}; start again with cursor=None"},
                              model=model.__name__) from None
