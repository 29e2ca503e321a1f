"""Primary keys: time-ordered UUIDs (version 7, RFC 9562), one at a time or by the thousand.

Every datalayer model's ``id`` defaults to ``uuid7()``. Its first 48 bits are the Unix time in milliseconds
and the remaining 74 bits are random, so new keys land at the right edge of every B-tree that holds them
(the primary key, and the audit log's ``record_id`` index) instead of at random pages. On a 20,000-row
``bulk_create`` that made the audit rows' COPY about a third cheaper than with random (version 4) keys.
The ids reveal when a row was created, to the millisecond; ``created_at`` holds that anyway.

Batches come from one ``os.urandom`` call with the time, version and variant bits set slice-wise, and each
id is asyncpg's C ``UUID`` (the type asyncpg returns for uuid columns; a ``uuid.UUID`` subclass):
``uuid.uuid4()`` costs about 2.4 us a call, which was a tenth of a 20,000-row ``bulk_create``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable

try:
    from asyncpg.pgproto.pgproto import UUID as _FastUUID
except ImportError:  # pragma: no cover - asyncpg always ships it; stay correct without it
    _FastUUID = None


def _random_ids(count: int, version: int, stamp_ms: int | None) -> list[uuid.UUID]:
    pool = bytearray(os.urandom(16 * count))
    if stamp_ms is not None:
        for position, byte in enumerate(stamp_ms.to_bytes(6, "big")):
            pool[position::16] = bytes((byte,)) * count
    pool[6::16] = bytes((byte & 0x0F) | (version << 4) for byte in pool[6::16])
    pool[8::16] = bytes((byte & 0x3F) | 0x80 for byte in pool[8::16])  # RFC 9562 variant
    raw = bytes(pool)
    make = _FastUUID or (lambda data: uuid.UUID(bytes=data))
    return [make(raw[start:start + 16]) for start in range(0, 16 * count, 16)]


def new_uuid7s(count: int) -> list[uuid.UUID]:
    """``count`` version-7 UUIDs stamped with the current millisecond."""
    return _random_ids(count, 7, time.time_ns() // 1_000_000)


def new_uuid4s(count: int) -> list[uuid.UUID]:
    """``count`` random version-4 UUIDs."""
    return _random_ids(count, 4, None)


_RANDOM_BITS = 0x0FFF_3FFF_FFFF_FFFF_FFFF  # rand_a and rand_b of the low 80 bits
_VERSION_7 = 0x7000_8000_0000_0000_0000  # version 7 and the RFC 9562 variant


def uuid7() -> uuid.UUID:
    """One version-7 UUID: the default primary key of every datalayer model (about 1 us, half a uuid4)."""
    value = ((time.time_ns() // 1_000_000) << 80) | (int.from_bytes(os.urandom(10), "big") & _RANDOM_BITS) | _VERSION_7
    return _FastUUID(value.to_bytes(16, "big")) if _FastUUID else uuid.UUID(int=value)


#: a field default -> the same kind of value, ``count`` at a time
BATCH_MAKERS: dict[Callable[[], object], Callable[[int], list[uuid.UUID]]] = {
    uuid7: new_uuid7s,
    uuid.uuid4: new_uuid4s,
}
