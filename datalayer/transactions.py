"""Transactions: Tortoise's ``in_transaction`` plus on-commit hooks and translated driver errors.

Nested blocks are savepoints. Hooks registered inside a block run once the outermost transaction
commits; a rollback (of the block or of a savepoint) drops them, so nothing downstream (a cache) gets
ahead of the database.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from datalayer.config import CONNECTION_NAME
from datalayer.errors import TransactionClosedError
from datalayer.translate import translated

log = logging.getLogger("datalayer.transactions")

CommitHook = Callable[[], Awaitable[object]]
P = ParamSpec("P")
R = TypeVar("R")


class _Frame:
    __slots__ = ("ended", "hooks")

    def __init__(self) -> None:
        self.hooks: list[CommitHook] = []
        self.ended = False


_frame: ContextVar[_Frame | None] = ContextVar("datalayer_tx_frame", default=None)


def in_transaction_block() -> bool:
    return _frame.get() is not None


async def _run_hooks(hooks: list[CommitHook]) -> None:
    for hook in hooks:
        try:
            await hook()
        except Exception:  # the data is committed; a failing hook must not turn that into an error
            log.exception("on-commit hook failed")


async def on_commit(hook: CommitHook) -> None:
    """Run ``hook`` after the current transaction commits, or now when no transaction is open."""
    frame = _frame.get()
    if frame is None:
        await _run_hooks([hook])
    elif frame.ended:
        raise TransactionClosedError(
            "on_commit() called after its transaction block ended (from a task started inside the block); "
            "register hooks before the block exits"
        )
    else:
        frame.hooks.append(hook)


@asynccontextmanager
async def transaction() -> AsyncIterator[BaseDBAsyncClient]:
    """``async with transaction() as conn:`` — commit on success, roll back on any exception.

    Concurrent tasks may share the block (``gather`` of manager calls): their statements and nested blocks
    run one at a time on its connection. Work still running when the block ends is refused with
    ``TransactionClosedError`` and writes nothing.

    Raises:
        TransactionClosedError: the block (or an enclosing one) had already ended.
        DataLayerError: the commit failed (translated); the transaction is rolled back.
    """
    parent = _frame.get()
    frame = _Frame()
    token = _frame.set(frame)
    context = in_transaction(CONNECTION_NAME)
    try:
        with translated("transaction"):
            connection = await context.__aenter__()
        try:
            yield connection
        except BaseException as exc:
            frame.ended = True
            try:
                with translated("transaction"):
                    await context.__aexit__(type(exc), exc, exc.__traceback__)
            except Exception:  # the block's own error is what the caller must see
                log.warning("ending a failed transaction failed as well", exc_info=True)
            raise
        frame.ended = True
        with translated("transaction"):
            await context.__aexit__(None, None, None)
    finally:
        frame.ended = True
        _frame.reset(token)
    if parent is not None:
        parent.hooks.extend(frame.hooks)  # a released savepoint commits only with its parent
    else:
        await _run_hooks(frame.hooks)


def transactional(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Decorator: the whole coroutine runs in one transaction (a savepoint when one is already open)."""

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> R:
        async with transaction():
            return await func(*args, **kwargs)

    return wrapper
