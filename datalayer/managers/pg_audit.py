"""SQL expressions that build audit ``changes`` JSON on the server, for statements that write and audit at once.

``to_jsonb`` renders values as the Python path does (ISO datetimes, UUID strings, JSON as JSON).
"""

from __future__ import annotations

from collections.abc import Sequence

from datalayer.managers.auditing import MASK

_MAX_PAIRS_PER_CALL = 45  # jsonb_build_object takes at most 100 arguments


def masked_value(column_ref: str) -> str:
    return f"CASE WHEN {column_ref}::text = '' THEN '\"\"'::jsonb ELSE '\"{MASK}\"'::jsonb END"


def jsonb_object(pairs: Sequence[tuple[str, str]]) -> str:
    """``jsonb_strip_nulls`` of an object from ``(key, jsonb expression or NULL)`` pairs, chunked."""
    chunks = []
    for start in range(0, len(pairs), _MAX_PAIRS_PER_CALL):
        items = ", ".join(f"'{key}', {value}" for key, value in pairs[start:start + _MAX_PAIRS_PER_CALL])
        chunks.append(f"jsonb_build_object({items})")
    return f"jsonb_strip_nulls({' || '.join(chunks) or chr(39) + '{}' + chr(39) + '::jsonb'})"
