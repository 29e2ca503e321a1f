"""Who is writing, and on behalf of which request: carried by ContextVars into every write."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from uuid import UUID

_actor: ContextVar[UUID | None] = ContextVar("datalayer_actor", default=None)
_correlation_id: ContextVar[str | None] = ContextVar("datalayer_correlation_id", default=None)


def current_actor() -> UUID | None:
    return _actor.get()


def current_correlation_id() -> str | None:
    return _correlation_id.get()


def _as_uuid(value: UUID | str | None) -> UUID | None:
    if value is None or isinstance(value, UUID):
        return value
    return UUID(str(value))


@contextmanager
def acting_as(actor: UUID | str | None, correlation_id: str | None = None) -> Iterator[None]:
    """Stamp writes inside the block with ``actor`` (and ``correlation_id`` when given).

    Works as ``with`` and ``async with`` alike, because ContextVars follow the task.
    """
    actor_token = _actor.set(_as_uuid(actor))
    cid_token = _correlation_id.set(correlation_id) if correlation_id is not None else None
    try:
        yield
    finally:
        _actor.reset(actor_token)
        if cid_token is not None:
            _correlation_id.reset(cid_token)


@contextmanager
def correlation(correlation_id: str) -> Iterator[None]:
    """Tag the audit rows written inside the block with a request/correlation id."""
    token = _correlation_id.set(correlation_id)
    try:
        yield
    finally:
        _correlation_id.reset(token)
