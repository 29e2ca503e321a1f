"""Checks of real-world values that the packs' domain rules share: emails, web URLs, counters, JSON shapes,
enum members and arguments of domain methods.

A value check is a function that returns the (normalised) value or raises ``ValueError`` with the fix, so
it serves both a pydantic ``AfterValidator`` and a manager's ``field_checks``. The
argument checks raise ``ValidationError`` directly: a domain method never lets a ``ValueError``,
``TypeError`` or ``AttributeError`` from bad input escape.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from typing import Any, TypeVar
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel
from pydantic_core import PydanticCustomError

from datalayer.errors import ValidationError, shown
from datalayer.managers.values import as_utc, storable_text

E = TypeVar("E", bound=Enum)
#: a value check: returns the value or raises ``ValueError`` saying what is wrong and the fix
Check = Callable[[Any], Any]

_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)", re.IGNORECASE)
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def email_address(value: str) -> str:
    """A deliverable-looking address (syntax only, no DNS), lowercased as stored: ``name@example.com``."""
    if not isinstance(value, str):
        raise ValueError("must be a string such as name@example.com")  # noqa: TRY004 - pydantic wants ValueError
    try:
        checked = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"is not an email address ({exc}); expected name@example.com") from None
    return checked.normalized.lower()


def _valid_host(host: str) -> bool:
    """A DNS name (internationalised ones too), an IPv4 address or an IPv6 literal."""
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return True
    try:
        ascii_host = host.rstrip(".").encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return bool(ascii_host) and all(_HOST_LABEL.fullmatch(label) for label in ascii_host.split("."))


def web_url(value: str) -> str:
    """An absolute ``http``/``https`` URL with a valid host and no whitespace, kept as given."""
    wrong = ValueError("must be an http(s) URL such as https://example.com/image.png")
    if not isinstance(value, str) or not value or any(c.isspace() or ord(c) < 32 for c in value):
        raise wrong
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number from 0 to 65535
    except ValueError:
        raise wrong from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or not _valid_host(parts.hostname):
        raise wrong
    return value


def at_least(minimum: float, unit: str = "") -> Check:
    """A number ``>= minimum`` (counters, sizes, rate limits)."""
    def check(value: Any) -> Any:
        if value < minimum:
            raise ValueError(f"must be at least {minimum}{unit}, got {value}")
        return value
    return check


def between(low: int, high: int) -> Check:
    def check(value: Any) -> Any:
        if not low <= value <= high:
            raise ValueError(f"must be from {low} to {high}, got {value}")
        return value
    return check


def string_list(value: Any) -> Any:
    """A JSON list of distinct non-empty strings (API key scopes, tags): ``["models:read"]``."""
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise ValueError('must be a list of non-empty strings, e.g. ["models:read"]')
    if len(set(value)) != len(value):
        raise ValueError("must not repeat an entry")
    return value


def json_object(value: Any) -> Any:
    """A JSON object (settings, metadata): a dict of JSON values."""
    if not isinstance(value, dict):
        raise ValueError('must be a JSON object (a dict), e.g. {"key": "value"}')  # noqa: TRY004 - a value check
    return json_value(value)


def json_value(value: Any) -> Any:
    """Anything JSON can hold (dicts, lists, strings, numbers, booleans, None)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        raise ValueError("must be JSON: dicts, lists, strings, numbers, booleans or None") from None
    return value


def sha256_hex(value: Any) -> Any:
    """64 lowercase hex digits: what ``security.tokens.hash_token`` stores, never the token itself."""
    if not isinstance(value, str) or not _SHA256_HEX.fullmatch(value):
        raise ValueError("must be a SHA-256 hex digest (security.tokens.hash_token), never a plain token")
    return value


def ip_address(value: Any) -> Any:
    """One IPv4 or IPv6 address (the client's, not a forwarded-for list)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("must be one IPv4 or IPv6 address, e.g. 203.0.113.7") from None
    return value


def starts_with(prefix: str, example: str) -> Check:
    def check(value: Any) -> Any:
        if not value.startswith(prefix):
            raise ValueError(f"must start with {prefix!r}, e.g. {example!r}")
        return value
    return check


# ----------------------------------------------------------- arguments of domain methods


def enum_member(enum_type: type[E], value: Any, *, field: str, model: str) -> E:
    """``value`` as a member of ``enum_type`` (its value in any case for string enums), or ValidationError."""
    if isinstance(value, enum_type):
        return value
    candidates = [value]
    if isinstance(value, str):
        candidates += [value.lower(), value.upper()]
    for candidate in candidates:
        try:
            return enum_type(candidate)
        except (ValueError, TypeError, RecursionError):  # the enum's own message may fail on the value
            continue
    allowed = ", ".join(str(member.value) for member in enum_type)
    raise ValidationError({field: f"unknown value {shown(value)}; use one of {allowed}"}, model=model)


def whole_number(value: Any, *, field: str, model: str, minimum: int = 1, maximum: int | None = None) -> int:
    """An ``int`` (not a bool) within ``[minimum, maximum]``, or ValidationError."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum \
            or (maximum is not None and value > maximum):
        span = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
        raise ValidationError({field: f"expected a whole number {span}, got {shown(value)}"}, model=model)
    return value


def text(value: Any, *, field: str, model: str) -> str:
    """A non-empty ``str`` a database can store (no NUL, no lone surrogate), or ValidationError."""
    if not isinstance(value, str) or not value:
        raise ValidationError({field: f"expected a non-empty string, got {shown(value)}"}, model=model)
    try:
        return storable_text(value)
    except PydanticCustomError as exc:
        raise ValidationError({field: exc.message()}, model=model) from None


def mapping_of(data: Any, *, model: str) -> dict[str, Any]:
    """Input data as a dict: the set fields of a pydantic model, or a mapping's items; else ValidationError."""
    if isinstance(data, BaseModel):
        return data.model_dump(exclude_unset=True)
    if not isinstance(data, Mapping):
        raise ValidationError({"__all__": f"expected a dict or a pydantic model, got {type(data).__name__}"},
                              model=model)
    return dict(data)


#: the longest duration or day count a domain method takes (retention, session lifetimes): a hundred years,
#: far from the calendar's end, so ``now`` plus or minus it is always a date-time
MAX_DAYS = 36_500


def flag(value: Any, *, field: str, model: str) -> bool:
    """``True`` or ``False`` itself, or ValidationError: ``"no"`` or ``0`` would read as a truth value."""
    if not isinstance(value, bool):
        raise ValidationError({field: f"expected true or false, got {shown(value)}"}, model=model)
    return value


def moment(value: Any, *, field: str, model: str) -> dt.datetime:
    """A ``datetime`` as the same instant in UTC (a naive one is taken as UTC, as everywhere in the layer),
    or ValidationError (not a datetime, or outside years 1 to 9999 in UTC)."""
    if not isinstance(value, dt.datetime):
        raise ValidationError({field: f"expected a datetime, e.g. datetime(2024, 1, 1, tzinfo=timezone.utc), "
                                      f"got {shown(value)}"}, model=model)
    try:
        return as_utc(value)
    except ValueError as exc:
        reason = exc.message() if isinstance(exc, PydanticCustomError) else str(exc)
        raise ValidationError({field: reason}, model=model) from None


def duration(value: Any, *, field: str, model: str, maximum: dt.timedelta = dt.timedelta(days=MAX_DAYS)) -> dt.timedelta:
    """A positive ``timedelta`` of at most ``maximum`` (default ``MAX_DAYS`` days), or ValidationError."""
    if not isinstance(value, dt.timedelta) or value <= dt.timedelta(0) or value > maximum:
        raise ValidationError({field: f"must be a positive timedelta of at most {maximum.days} days, "
                                      f"e.g. timedelta(hours=1); got {shown(value)}"}, model=model)
    return value


def rows_of(rows: Any, *, model: str) -> Iterable[Any]:
    """``bulk_create``'s rows: an iterable of dicts or pydantic models (a list, a generator), not one row,
    text or None; else ValidationError naming ``rows``."""
    if rows is None or isinstance(rows, str | bytes | bytearray | Mapping | BaseModel) \
            or not isinstance(rows, Iterable):
        raise ValidationError({"rows": f"expected an iterable of rows (dicts or pydantic models), "
                                       f"got {type(rows).__name__}"}, model=model)
    return rows
