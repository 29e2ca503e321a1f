"""Transactions: Tortoise's ``in_transaction`` plus on-commit hooks and translated driver errors.

Nested blocks are savepoints. Hooks registered inside a block run once the outermost transaction
commits; a rollback (of the block or of a savepoint) drops them, so nothing downstream (a cache) gets
ahead of the database.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Generic, ParamSpec, TypeVar, overload

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from datalayer.config import CONNECTION_NAME
from datalayer.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    TransactionAbortedError,
    TransactionClosedError,
)
from datalayer.translate import translated

log = logging.getLogger("datalayer.transactions")

CommitHook = Callable[[], Awaitable[object]]
P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")


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
async def _block() -> AsyncIterator[BaseDBAsyncClient]:
    """One transaction (a savepoint inside another): commit on success, roll back on any exception.

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
        try:
            with translated("transaction"):
                await context.__aexit__(None, None, None)
        except DatabaseUnavailableError as exc:  # the COMMIT was sent: it may have been applied
            exc.maybe_committed = parent is None
            raise
    finally:
        frame.ended = True
        _frame.reset(token)
    if parent is not None:
        parent.hooks.extend(frame.hooks)  # a released savepoint commits only with its parent
    else:
        await _run_hooks(frame.hooks)




class TransactionBlock(Generic[S]):
    """What ``transaction()`` and ``ctx.transaction()`` return: an ``async with`` block, or, with
    ``retry=N``, a decorator / ``run()`` that reruns a whole function in a new transaction.

    A rerun happens when the database aborted the transaction (``TransactionAbortedError``: serialization
    failure, deadlock) or its connection was lost before the ``COMMIT`` was sent (``DatabaseUnavailableError``
    with ``retryable`` and not ``maybe_committed``); at most ``retry`` times, after a backoff of
    ``50 ms * 2^(n-1)`` +-50% (capped at 2 s). Inside another transaction the function runs once, as a
    savepoint: only the outermost transaction can be rerun.
    """

    def __init__(self, scope: Callable[[BaseDBAsyncClient], S], retry: int = 0) -> None:
        from datalayer.core import rules

        self.retry = rules.whole_number(retry, field="retry", model="transaction", minimum=0, maximum=100)
        self._scope = scope
        self._open: AbstractAsyncContextManager[BaseDBAsyncClient] | None = None

    async def __aenter__(self) -> S:
        if self.retry:
            raise ConfigurationError(
                "transaction(retry=N) reruns a function, and an `async with` block cannot be run again: "
                "decorate the function (@ctx.transaction(retry=N) or @transactional(retry=N)) or call "
                "await ctx.transaction(retry=N).run(function, *args)"
            )
        if self._open is not None:
            raise ConfigurationError("this transaction block is already open; call transaction() again")
        self._open = _block()
        return self._scope(await self._open.__aenter__())

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        opened, self._open = self._open, None
        assert opened is not None
        return await opened.__aexit__(exc_type, exc, tb)

    def __call__(self, func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return await self.run(func, *args, **kwargs)

        return wrapper

    async def run(self, func: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        """``await func(*args, **kwargs)`` in one transaction, rerun on the failures above.

        Raises:
            TransactionAbortedError, DatabaseUnavailableError: the last attempt's failure.
        """
        from datalayer.connection import backoff_delay

        attempts = 1 if in_transaction_block() else self.retry + 1
        for attempt in range(1, attempts + 1):
            try:
                async with _block():
                    return await func(*args, **kwargs)
            except (TransactionAbortedError, DatabaseUnavailableError) as exc:
                if attempt == attempts or not exc.retryable or getattr(exc, "maybe_committed", False):
                    raise
                delay = backoff_delay(attempt, 0.05, cap_seconds=2.0)
                log.info("transaction attempt %d failed (%s); rerunning in %.0f ms", attempt,
                         type(exc).__name__, delay * 1000)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def transaction(*, retry: int = 0) -> TransactionBlock[BaseDBAsyncClient]:
    """``async with transaction() as conn:`` — commit on success, roll back on any exception.

    Concurrent tasks may share the block (``gather`` of manager calls): their statements and nested blocks
    run one at a time on its connection. Work still running when the block ends is refused with
    ``TransactionClosedError`` and writes nothing. With ``retry=N`` it is a decorator (or ``.run(func)``)
    that reruns the whole function on a serialization failure, deadlock or lost connection
    (``TransactionBlock``).

    Raises:
        TransactionClosedError: the block (or an enclosing one) had already ended.
        DatabaseUnavailableError: the connection was lost; ``maybe_committed`` is True when it was lost
            during the ``COMMIT``.
        DataLayerError: the commit failed (translated); the transaction is rolled back.
    """
    return TransactionBlock(_connection_itself, retry)


def _connection_itself(connection: BaseDBAsyncClient) -> BaseDBAsyncClient:
    return connection


@overload
def transactional(func: Callable[P, Awaitable[R]], /) -> Callable[P, Awaitable[R]]: ...
@overload
def transactional(*, retry: int = 0) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]: ...


def transactional(func: Any = None, /, *, retry: int = 0) -> Any:
    """Decorator: the whole coroutine runs in one transaction (a savepoint when one is already open).

    ``@transactional`` or ``@transactional(retry=3)`` (reruns it as ``transaction(retry=3)`` describes).
    """
    block = TransactionBlock(_connection_itself, retry)
    return block if func is None else block(func)
