"""One type per field for what a value must be to mean the same on PostgreSQL and SQLite.

Input (``create``, ``update``, ``bulk_create``), filter values and ``find_after`` cursors are all coerced
through ``value_type``, so a value is normalised or refused alike on both engines, before any SQL runs:

- date-times are stored and compared in UTC; a naive one is read as UTC, never as the process's local time
  (PostgreSQL's driver would read it as local time, SQLite's as UTC);
- integers must fit the column (``SmallIntField`` 16-bit, ``IntField`` 32-bit, ``BigIntField`` 64-bit), and
  ``True``/``False`` are not numbers;
- floats and decimals must be finite (SQLite stores NaN as NULL); decimals are rounded half-up to the
  column's scale, as PostgreSQL rounds, and must fit its precision;
- text may not hold NUL (``\\x00``: PostgreSQL cannot store it, SQLite can) or lone surrogates (not UTF-8);
- a JSON field takes the value itself (dict, list, number, true/false, null) and the value kept is what both
  engines give back. A top-level ``str`` is refused: Tortoise reads it as JSON text on some write paths and
  as a string on others. A field class that overrides ``to_db_value`` keeps its own rule for ``str``.
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
    """``value`` as the same instant in UTC; a naive date-time is taken to be UTC already."""
    zone = value.tzinfo
    if zone is UTC:
        return value
    if zone is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


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


def _decimal_fitter(field: tf.DecimalField) -> Any:
    places, digits = field.decimal_places, field.max_digits
    quantum = decimal.Decimal(1).scaleb(-places)
    limit = decimal.Decimal(10) ** (digits - places)

    def fit(value: decimal.Decimal) -> decimal.Decimal:
        rounded = value.quantize(quantum, rounding=decimal.ROUND_HALF_UP)
        if abs(rounded) >= limit:
            raise PydanticCustomError(
                "decimal_range",
                "out of range: at most {whole} digits before the decimal point (precision {digits}, scale {places})",
                {"whole": digits - places, "digits": digits, "places": places},
            )
        return rounded

    return fit


def _json_problem(value: Any) -> str | None:
    """What in a JSON value neither engine stores faithfully (NUL in text, NaN/Infinity), else None."""
    if isinstance(value, str):
        return "text inside must not contain the NUL character (\\x00)" if "\x00" in value else None
    if isinstance(value, float):
        return None if math.isfinite(value) else "numbers inside must be finite (no NaN or Infinity)"
    if isinstance(value, dict):
        for key, item in value.items():
            if (problem := _json_problem(key) or _json_problem(item)) is not None:
                return problem
    elif isinstance(value, list | tuple):
        for item in value:
            if (problem := _json_problem(item)) is not None:
                return problem
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
        except (TypeError, ValueError) as exc:
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
        purpose: ``"input"`` for values to write (text length, decimal scale and precision checked);
            ``"filter"`` for values compared with the column (any length, any scale).

    Returns:
        An ``Annotated`` type; validating with it returns the value as the database gives it back.
    """
    python_type = python_type_of(field)
    if isinstance(field, tf.JSONField):
        return Annotated[Any, AfterValidator(_json_conformer(field))]
    if isinstance(python_type, type) and issubclass(python_type, enum.Enum):
        return python_type
    if python_type is dt.datetime:
        return Annotated[dt.datetime, AfterValidator(as_utc)]
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
        fitted = (AfterValidator(_decimal_fitter(field)),) if purpose == "input" else ()
        return Annotated[(decimal.Decimal, BeforeValidator(_not_a_bool), *fitted)]
    return python_type
