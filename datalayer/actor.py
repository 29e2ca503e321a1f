"""Who is writing, and on behalf of which request: carried by ContextVars into every write."""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any
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


class _Scope:
    """Sets ContextVars for a block; usable as ``with`` and ``async with`` alike."""

    def __init__(self, actor: Any, correlation_id: str | None, set_actor: bool) -> None:
        self._actor = _as_uuid(actor) if set_actor else None
        self._set_actor = set_actor
        self._correlation_id = correlation_id
        self._tokens: list[tuple[ContextVar[Any], Token[Any]]] = []

    def __enter__(self) -> None:
        if self._set_actor:
            self._tokens.append((_actor, _actor.set(self._actor)))
        if self._correlation_id is not None:
            self._tokens.append((_correlation_id, _correlation_id.set(self._correlation_id)))

    def __exit__(self, *exc_info: object) -> None:
        while self._tokens:
            var, token = self._tokens.pop()
            var.reset(token)

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__(*exc_info)


def acting_as(actor: UUID | str | None, correlation_id: str | None = None) -> _Scope:
    """Stamp writes inside the block with ``actor`` (and ``correlation_id`` when given)."""
    return _Scope(actor, correlation_id, set_actor=True)


def correlation(correlation_id: str) -> _Scope:
    """Tag the audit rows written inside the block with a request/correlation id."""
    return _Scope(None, correlation_id, set_actor=False)
