"""One type per field for what a value must be to mean the same on PostgreSQL and SQLite.

Input (``create``, ``update``, ``bulk_create``), filter values and ``find_after`` cursors are all coerced
through ``value_type``, so a value is normalised or refused alike on both engines, before any SQL runs:

- date-times are stored and compared in UTC; a naive one is read as UTC, never as the process's local time
  (PostgreSQL's driver would read it as local time, SQLite's as UTC); one that is outside years 1 to 9999
  in UTC is refused; and the very first and last of them (``0001-01-01T00:00:00Z``,
  ``9999-12-31T23:59:59.999999Z``; ``0001-01-01`` and ``9999-12-31`` for a date) are refused as values to
  write, since asyncpg sends them to PostgreSQL as ``-infinity`` and ``infinity`` (a filter may still
  compare with them: every stored instant lies between);
- integers must fit the column (``SmallIntField`` 16-bit, ``IntField`` 32-bit, ``BigIntField`` 64-bit), and
  ``True``/``False`` are not numbers;
- floats and decimals must be finite (SQLite stores NaN as NULL); decimals written are rounded half-up to
  the column's scale, as PostgreSQL rounds, and must fit its precision; a filter or cursor decimal must fit
  the precision too and may have no more places than the scale (refused, not rounded);
- text may not hold NUL (``\\x00``: PostgreSQL cannot store it, SQLite can) or lone surrogates (not UTF-8);
- a JSON field takes the value itself (dict, list, number, true/false, null) and the value kept is what both
  engines give back. A top-level ``str`` is refused: Tortoise reads it as JSON text on some write paths and
  as a string on others. A field class that overrides ``to_db_value`` keeps its own rule for ``str``. Text
  inside follows the text rule (no NUL, no lone surrogates), numbers must be finite, and a value may nest
  at most ``MAX_JSON_DEPTH`` levels.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import math
import uuid
from functools import cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError
from tortoise import fields as tf

#: the zone every stored date-time is in (the zone Tortoise returns them in with ``timezone="UTC"``)
UTC = ZoneInfo("UTC")
TEXT_FIELDS = (tf.CharField, tf.TextField)
Purpose = Literal["input", "filter"]


def python_type_of(field: tf.Field) -> Any:
    """The plain Python type of a column's values (an enum class for enum fields)."""
    enum_type = getattr(field, "enum_type", None)
    if enum_type is not None:
        return enum_type
    if isinstance(field, tf.DatetimeField):
        return dt.datetime
    if isinstance(field, tf.DateField):
        return dt.date
    if isinstance(field, tf.BooleanField):
        return bool
    if isinstance(field, tf.DecimalField):
        return decimal.Decimal
    if isinstance(field, tf.FloatField):
        return float
    if isinstance(field, tf.UUIDField):
        return uuid.UUID
    if isinstance(field, tf.IntField | tf.BigIntField | tf.SmallIntField):
        return int
    if isinstance(field, TEXT_FIELDS):
        return str
    return field.field_type or str


def as_utc(value: dt.datetime) -> dt.datetime:
    """``value`` as the same instant in UTC; a naive date-time is taken to be UTC already.

    Raises a pydantic error (a ``ValueError``) when that instant falls outside years 1 to 9999 in UTC
    (``0001-01-01T00:00+14:00``), which no ``datetime`` can hold.
    """
    zone = value.tzinfo
    if zone is UTC:
        return value
    if zone is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError(
            "datetime_range", "out of range: in UTC this instant falls outside years 1 to 9999; use one within them"
        ) from None


#: the values asyncpg sends to PostgreSQL as -infinity and infinity (asyncpg's pgproto datetime codec)
_DRIVER_INFINITIES: dict[Any, str] = {
    dt.datetime.min.replace(tzinfo=UTC): "-infinity", dt.datetime.max.replace(tzinfo=UTC): "infinity",
    dt.date.min: "-infinity", dt.date.max: "infinity",
}


def finite(value: Any) -> Any:
    """``value`` (a UTC date-time or a date) unchanged, or a pydantic error when it is the first or last one
    a ``datetime``/``date`` holds: asyncpg writes those as PostgreSQL's ``-infinity``/``infinity``, which
    other clients read as such (and asyncpg reads back as a naive value), so neither engine stores them."""
    infinity = _DRIVER_INFINITIES.get(value) if value.__class__ in (dt.datetime, dt.date) else None
    if infinity is not None:
        first = infinity == "-infinity"
        raise PydanticCustomError(
            "datetime_infinity",
            "out of range: {value} is the {end} {kind} Python can hold, which PostgreSQL's driver (asyncpg) stores "
            "as {infinity}; use {fix} one",
            {"value": value.isoformat(), "end": "first" if first else "last", "infinity": infinity,
             "kind": "date-time" if isinstance(value, dt.datetime) else "date", "fix": "a later" if first else "an earlier"},
        )
    return value


def storable_text(value: str) -> str:
    """``value`` unchanged, or a pydantic error if it holds NUL or a lone surrogate."""
    if "\x00" in value:
        raise PydanticCustomError("text_nul", "must not contain the NUL character (\\x00); remove it")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise PydanticCustomError(
                "text_surrogate", "holds a lone surrogate, which is not valid Unicode text; fix its encoding"
            ) from None
    return value


def _not_a_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("number_bool", "expected a number, got {value}",
                                  {"value": str(value).lower()})
    return value


def _decimal_fitter(field: tf.DecimalField, purpose: Purpose) -> Any:
    """Input is rounded half-up to the column's scale; a filter value is refused rather than rounded (that
    would change what ``gt``/``lte`` mean). Either must fit the column's precision."""
    places, digits = field.decimal_places, field.max_digits
    whole = digits - places
    quantum = decimal.Decimal(1).scaleb(-places)
    limit = decimal.Decimal(10) ** whole
    # enough digits for any value below ``limit`` at the column's scale (plus a carry), so quantize cannot fail
    context = decimal.Context(prec=digits + 2, rounding=decimal.ROUND_HALF_UP)
    details = {"whole": whole, "digits": digits, "places": places}

    def out_of_range() -> PydanticCustomError:
        return PydanticCustomError(
            "decimal_range",
            "out of range: at most {whole} digits before the decimal point (precision {digits}, scale {places})",
            details,
        )

    def fit(value: decimal.Decimal) -> decimal.Decimal:
        if value and value.adjusted() >= whole:  # 10 ** whole or more (1e1000000 included), before any arithmetic
            raise out_of_range()
        try:
            rounded = value.quantize(quantum, context=context)
        except decimal.DecimalException:
            raise out_of_range() from None
        if abs(rounded) >= limit:
            raise out_of_range()
        if purpose == "filter" and rounded != value:
            raise PydanticCustomError(
                "decimal_scale",
                "has more decimal places than the column keeps (scale {places}); round it to {places} places",
                details,
            )
        return rounded

    return fit


#: how deep a JSON value may nest (lists and objects inside each other); far below any recursion limit
MAX_JSON_DEPTH = 100


def _json_text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "text inside must not contain the NUL character (\\x00)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "text inside holds a lone surrogate, which is not valid Unicode text; fix its encoding"
    return None


def _json_problem(value: Any) -> str | None:
    """What in a JSON value neither engine stores faithfully (NUL or lone surrogates in text, NaN/Infinity,
    nesting deeper than ``MAX_JSON_DEPTH``), else None.

    Walks the value without recursion; a list or dict met again is walked again only when met deeper (so a
    value that contains itself ends as too deep, and shared parts are not walked once per path).
    """
    pending: list[tuple[Any, int]] = [(value, 0)]
    deepest: dict[int, int] = {}
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if (problem := _json_text_problem(item)) is not None:
                return problem
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "numbers inside must be finite (no NaN or Infinity)"
        elif isinstance(item, dict | list | tuple):
            if depth >= MAX_JSON_DEPTH:
                return f"nests deeper than {MAX_JSON_DEPTH} levels; flatten it"
            if deepest.get(id(item), -1) >= depth:
                continue
            deepest[id(item)] = depth
            children = [part for pair in item.items() for part in pair] if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return None


def _json_conformer(field: tf.JSONField) -> Any:
    takes_str_as_text = type(field).to_db_value is tf.JSONField.to_db_value
    encode, decode = field.encoder, field.decoder

    def conform(value: Any) -> Any:
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        if takes_str_as_text and isinstance(value, str | bytes):
            raise PydanticCustomError(
                "json_str", "a JSON field takes the value itself (dict, list, number, true/false or null), "
                "not a str; wrap text in a list or dict, or json.loads() JSON text first",
            )
        if (problem := _json_problem(value)) is not None:
            raise PydanticCustomError("json_value", problem)
        try:
            return decode(encode(value))
        except (TypeError, ValueError, RecursionError) as exc:
            raise PydanticCustomError(
                "json_value", "is not JSON ({reason}); use dicts, lists, text, numbers, true/false and null",
                {"reason": str(exc)[:80]},
            ) from None

    return conform


@cache
def value_type(field: tf.Field, purpose: Purpose = "input") -> Any:
    """The pydantic type a value of ``field`` is validated with.

    Args:
        field: the Tortoise field (a column: own field, ``<fk>_id``, or the end of a relation path).
        purpose: ``"input"`` for values to write (text length checked, decimals rounded to the scale);
            ``"filter"`` for values compared with the column (any text length; a decimal with more places
            than the scale is refused). Decimals must fit the column's precision either way.

    Returns:
        An ``Annotated`` type; validating with it returns the value as the database gives it back.
    """
    python_type = python_type_of(field)
    if isinstance(field, tf.JSONField):
        return Annotated[Any, AfterValidator(_json_conformer(field))]
    if isinstance(python_type, type) and issubclass(python_type, enum.Enum):
        return python_type
    if python_type is dt.datetime:
        if purpose == "input":
            return Annotated[dt.datetime, AfterValidator(as_utc), AfterValidator(finite)]
        return Annotated[dt.datetime, AfterValidator(as_utc)]
    if python_type is dt.date and purpose == "input":
        return Annotated[dt.date, AfterValidator(finite)]
    if python_type is str:
        max_length = getattr(field, "max_length", None) if purpose == "input" else None
        if max_length:
            return Annotated[str, StringConstraints(max_length=max_length), AfterValidator(storable_text)]
        return Annotated[str, AfterValidator(storable_text)]
    if python_type is int:
        bounds = field.constraints
        return Annotated[int, BeforeValidator(_not_a_bool), Field(ge=bounds.get("ge"), le=bounds.get("le"))]
    if python_type is float:
        return Annotated[float, BeforeValidator(_not_a_bool), Field(allow_inf_nan=False)]
    if python_type is decimal.Decimal:
        fitted = (AfterValidator(_decimal_fitter(field, purpose)),)  # type: ignore[arg-type]
        arguments = (decimal.Decimal, BeforeValidator(_not_a_bool), *fitted)  # mypy reads Annotated[(x, *y)] as 3.11-only
        return Annotated[arguments]
    return python_type
