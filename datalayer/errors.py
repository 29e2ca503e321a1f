"""The library's own exceptions. Every error a caller can see is one of these; no driver exception leaks."""

from __future__ import annotations

from typing import Any


class DataLayerError(Exception):
    """Base of every datalayer error."""


class ConfigurationError(DataLayerError):
    """The settings or the call are inconsistent (bad URL, context not open, unknown model)."""


class NotFoundError(DataLayerError):
    """No live row matches. Soft-deleted rows count as missing unless asked for."""

    def __init__(self, model: str, key: Any = None, message: str | None = None) -> None:
        self.model = model
        self.key = key
        super().__init__(message or f"{model} {key} not found (missing or deleted)")


class ValidationError(DataLayerError):
    """Input was rejected. ``errors`` maps each offending field to what is wrong and how to fix it."""

    def __init__(self, errors: dict[str, str] | str, *, model: str | None = None) -> None:
        if isinstance(errors, str):
            errors = {"__all__": errors}
        self.errors: dict[str, str] = errors
        self.model = model
        where = f"{model}: " if model else ""
        detail = "; ".join(msg if key == "__all__" else f"{key}: {msg}" for key, msg in errors.items())
        super().__init__(f"{where}{detail}")

    @property
    def fields(self) -> list[str]:
        return [key for key in self.errors if key != "__all__"]


class ConflictError(DataLayerError):
    """A unique rule would be broken (an email already registered, a key already used)."""

    def __init__(self, model: str, fields: tuple[str, ...] | list[str], message: str | None = None) -> None:
        self.model = model
        self.fields = tuple(fields)
        names = ", ".join(self.fields) or "a unique field"
        super().__init__(message or f"{model}: {names} already taken by a live row; choose another value")

    @property
    def field(self) -> str | None:
        return self.fields[0] if self.fields else None


class ConcurrencyError(DataLayerError):
    """The row changed since it was read (optimistic locking lost); reload and try again."""

    def __init__(self, model: str, key: Any, expected: int | None, actual: int | None) -> None:
        self.model = model
        self.key = key
        self.expected_version = expected
        self.actual_version = actual
        super().__init__(
            f"{model} {key} is at version {actual}, not the expected {expected}; reload it and retry"
        )


class TransactionClosedError(DataLayerError):
    """Work reached a transaction (or a nested block's savepoint) after its ``async with`` block ended.

    Typically a task or ``gather`` started inside the block and still running when the block exited: it
    writes nothing. Await such work before the block ends, or start it outside the block.
    """


class DatabaseUnavailableError(DataLayerError):
    """The database cannot be reached (after retries) or the pool has no connection to give.

    Attributes:
        retryable: the same call may succeed later (the server restarting, a connection dropped, the pool
            busy); False when waiting will not help (a wrong password, a database that does not exist).
        maybe_committed: a write was sent and its connection died before the answer: it may have been
            committed. Check before repeating it (datalayer's keys are client-side uuid7s, so a create can be
            checked by its id); False when the statement provably never reached the server.
    """

    def __init__(self, message: str, *, retryable: bool = True, maybe_committed: bool = False) -> None:
        self.retryable = retryable
        self.maybe_committed = maybe_committed
        super().__init__(message)


class TransactionAbortedError(DataLayerError):
    """The database aborted the transaction to keep concurrent transactions correct: a serialization
    failure (SQLSTATE 40001) or a deadlock (40P01). Nothing of it was committed; rerun the whole transaction
    (``ctx.transaction(retry=N)`` does it for you).
    """

    retryable = True

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        self.sqlstate = sqlstate
        super().__init__(message)


class CacheUnavailableError(DataLayerError):
    """Redis did not answer. The cache itself never raises it (it degrades to the database); only code that
    talks to Redis through datalayer directly can see it."""

    retryable = True


class PoolExhaustedError(DatabaseUnavailableError):
    """Every pooled connection stayed busy for longer than the acquire timeout."""

    def __init__(self, message: str, *, pool_size: int) -> None:
        self.pool_size = pool_size
        super().__init__(message, retryable=True, maybe_committed=False)


def shown(value: Any, width: int = 60) -> str:
    """``repr(value)`` cut to ``width`` characters for an error message; never raises itself (the repr of a
    huge int or of deeply nested lists does)."""
    try:
        return repr(value)[:width]
    except Exception:  # noqa: BLE001 - describing bad input must not fail on it
        return f"a {type(value).__name__}"
