"""bcrypt password hashing, always off the event loop.

bcrypt reads at most 72 bytes of a password; longer input is rejected with a ``ValidationError`` instead of
being silently truncated (two passwords sharing their first 72 bytes would otherwise both match).

Hashing runs in a dedicated pool of ``cpu_count - 1`` threads (at least one) rather than asyncio's default
executor: bcrypt releases the GIL but is pure CPU, so more hashing threads than spare cores only starve the
event loop's thread of CPU (a burst of 100 logins on 2 cores stalled the loop for 60-80 ms with 6 threads)
without hashing any faster.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import bcrypt

from datalayer.errors import ValidationError

MAX_PASSWORD_BYTES = 72
DEFAULT_ROUNDS = 12
_BCRYPT_HASH = re.compile(r"^\$2[aby]\$(?P<cost>\d{2})\$[./A-Za-z0-9]{53}$")
_dummy_hashes: dict[int, bytes] = {}
_pool = ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1), thread_name_prefix="datalayer-bcrypt")
R = TypeVar("R")


async def _off_loop(func: Callable[..., R], *args: object) -> R:
    """Run a bcrypt call in the hashing pool, never on the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_pool, functools.partial(func, *args))


def _encoded(password: str, field: str = "password") -> bytes:
    if not isinstance(password, str) or not password:
        raise ValidationError({field: "is required; give a non-empty string"})
    try:
        encoded = password.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError({field: "holds a lone surrogate, which is not valid Unicode text; fix its encoding"}) from None
    if len(encoded) > MAX_PASSWORD_BYTES:
        raise ValidationError({
            field: f"is {len(encoded)} bytes in UTF-8; bcrypt accepts at most {MAX_PASSWORD_BYTES}, "
                   "choose a shorter password"
        })
    return encoded


def is_bcrypt_hash(value: str) -> bool:
    return isinstance(value, str) and _BCRYPT_HASH.match(value) is not None


def hash_cost(password_hash: str) -> int | None:
    """The cost factor a bcrypt hash was made with, or None when it is not a bcrypt hash."""
    match = _BCRYPT_HASH.match(password_hash or "")
    return int(match.group("cost")) if match else None


async def hash_password(password: str, rounds: int = DEFAULT_ROUNDS) -> str:
    """A bcrypt hash of ``password`` at cost ``rounds``, computed in a worker thread."""
    encoded = _encoded(password)
    hashed = await _off_loop(bcrypt.hashpw, encoded, bcrypt.gensalt(rounds))
    return hashed.decode("ascii")


async def verify_password(password: str, password_hash: str | None, rounds: int = DEFAULT_ROUNDS) -> bool:
    """Whether ``password`` matches; always spends one bcrypt check, even without a (valid) hash.

    Without a hash (unknown user) it checks against a dummy hash of the same cost, so the time taken does
    not tell a caller whether the account exists.
    """
    try:
        encoded = _encoded(password)
    except ValidationError:
        encoded = b"\0"  # still do the work; the result is False either way
        password_hash = None
    if password_hash is None or not is_bcrypt_hash(password_hash):
        await _off_loop(bcrypt.checkpw, encoded, await _dummy_hash(rounds))
        return False
    return await _off_loop(bcrypt.checkpw, encoded, password_hash.encode("ascii"))


def needs_rehash(password_hash: str, rounds: int = DEFAULT_ROUNDS) -> bool:
    """True when the hash was made with a lower cost than ``rounds`` (the setting rose since)."""
    cost = hash_cost(password_hash)
    return cost is None or cost < rounds


async def _dummy_hash(rounds: int) -> bytes:
    dummy = _dummy_hashes.get(rounds)
    if dummy is None:
        dummy = await _off_loop(bcrypt.hashpw, b"datalayer-no-such-user", bcrypt.gensalt(rounds))
        _dummy_hashes[rounds] = dummy
    return dummy
