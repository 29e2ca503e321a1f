"""Offset pages and keyset chunks, with an opaque cursor."""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import decimal
import json
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, computed_field, model_validator
from tortoise.models import Model

from datalayer.errors import ConfigurationError, ValidationError, shown
from datalayer.managers.filters import coerce, filter_fields

T = TypeVar("T")


TotalKind = Literal["exact", "estimated", "none"]
TOTAL_KINDS: tuple[TotalKind, ...] = ("exact", "estimated", "none")


class Page(BaseModel, Generic[T]):
    """One page of an offset query, with the total across all pages (exact, estimated, or none).

    A generic pydantic model: ``Page[User]`` is a FastAPI ``response_model`` whose items are serialised by
    their output schema (secret fields left out); ``pages``, ``has_next`` and ``has_prev`` are in the output.
    ``total_kind`` says what ``total`` is: ``"exact"`` (a count), ``"estimated"`` (the planner's estimate,
    made consistent with the page: never below the rows it proves exist, exact on the last page) or
    ``"none"`` (``total`` and ``pages`` are None). ``has_next`` is always right: from the total when it is
    exact, otherwise from fetching one row more than the page.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    items: list[T]
    total: int | None
    page: int
    limit: int
    total_kind: TotalKind = "exact"
    has_next: bool = False
    """Whether a later page has rows; left out, it is worked out from an exact ``total``."""

    @model_validator(mode="before")
    @classmethod
    def _next_from_total(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("has_next") is None:
            total, page, limit = data.get("total"), data.get("page"), data.get("limit")
            if isinstance(total, int) and isinstance(page, int) and isinstance(limit, int) and limit > 0:
                data = {**data, "has_next": page < math.ceil(total / limit)}
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def pages(self) -> int | None:
        if self.total is None:
            return None
        return math.ceil(self.total / self.limit) if self.limit else 0

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


def check_total(total: Any, default: Any, owner: str) -> TotalKind:
    """The kind of total a page carries: the call's ``total``, else ``default`` (the manager's or model's).

    Args:
        total: ``"exact"``, ``"estimated"``, ``"none"``, or None for the default.
        default: the class-level default, checked too.
        owner: where ``default`` was declared (``"ArticleManager.page_total"``), for the error.

    Raises:
        ValidationError: under ``total`` when the call's value is not one of the three.
        ConfigurationError: naming ``owner`` when the class-level default is not.
    """
    allowed = ", ".join(repr(kind) for kind in TOTAL_KINDS)
    if total is None:
        if default not in TOTAL_KINDS:
            raise ConfigurationError(f"{owner} must be one of {allowed}, got {default!r}")
        return default
    if not isinstance(total, str) or total not in TOTAL_KINDS:
        raise ValidationError({"total": f"expected one of {allowed} (or None for the default), got {shown(total)}"})
    return total


def settled_estimate(estimate: float, *, page: int, limit: int, shown: int, more: bool) -> int:
    """The planner's ``estimate`` made consistent with a page of ``shown`` rows (``more``: a next page has rows).

    Never below the rows the page proves exist; exact once the page is the last one with rows; a page past
    the end says at most its offset.
    """
    offset = (page - 1) * limit
    if more:
        return max(round(estimate), offset + shown + 1)
    if shown or page == 1:
        return offset + shown
    return max(0, min(round(estimate), offset))


async def offset_page(
    fetch: Callable[[int], Awaitable[Sequence[T]]],
    totals: Mapping[str, Callable[[], Awaitable[float]]],
    *, kind: TotalKind, page: int, limit: int,
) -> Page[T]:
    """A ``Page`` from ``fetch(n)`` (up to ``n`` rows from the page's offset) and the total of ``kind``.

    ``totals["exact"]`` counts, ``totals["estimated"]`` estimates; either runs beside the rows. Without an
    exact total one row more than the page is fetched, so ``has_next`` is known anyway.
    """
    if kind == "exact":
        items, total = await asyncio.gather(fetch(limit), totals["exact"]())
        return Page(items=list(items), total=int(total), page=page, limit=limit)
    if kind == "estimated":
        rows, estimate = await asyncio.gather(fetch(limit + 1), totals["estimated"]())
    else:
        rows, estimate = await fetch(limit + 1), None
    more, items = len(rows) > limit, list(rows[:limit])
    settled = None if estimate is None else settled_estimate(estimate, page=page, limit=limit, shown=len(items),
                                                              more=more)
    return Page(items=items, total=settled, page=page, limit=limit, total_kind=kind, has_next=more)


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


_CURSOR_JSON = json.JSONEncoder(separators=(",", ":")).encode  # one encoder, not one per cursor
_READ_JSON = json.JSONDecoder().decode


def encode_cursor(sort_by: str, descending: bool, value: Any, last_id: Any) -> str:
    payload = {"s": sort_by, "o": "d" if descending else "a", "v": _tag(value), "id": str(last_id)}
    return base64.urlsafe_b64encode(_CURSOR_JSON(payload).encode()).decode().rstrip("=")


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
        payload = _READ_JSON(base64.urlsafe_b64decode(padded.encode()).decode())
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
