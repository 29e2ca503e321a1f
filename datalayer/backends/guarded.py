"""One transaction, many tasks: its connection serves one statement or savepoint at a time, and work that
outlives its block is refused.

A transaction, and each savepoint in it, is a *level*: a Tortoise transaction wrapper with its own lock.
Every statement on a level holds that level's lock while it runs. A nested block holds its parent level's
lock from ``SAVEPOINT`` to ``RELEASE``/``ROLLBACK TO``, and makes its own level the task's connection: so
savepoints opened by concurrent tasks (``gather`` of manager writes) run one after another, properly
nested, and no other task's statement lands inside someone else's savepoint. When a block ends, its level
(and every level below it) refuses work with ``TransactionClosedError``; work already running finishes
first, and a savepoint whose enclosing block ended before it did is rolled back, so late work writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Any

from tortoise.backends.base.client import TransactionContext
from tortoise.connection import get_connections
from tortoise.exceptions import TransactionManagementError

from datalayer.errors import TransactionClosedError

log = logging.getLogger("datalayer.transactions")

TRANSACTION_ENDED = "this transaction's `async with ctx.transaction()` block has already ended"
SAVEPOINT_ENDED = "this nested `async with ctx.transaction()` block (a savepoint) has already ended"
_ADVICE = (
    "; work started inside a block (a task, a gather) must finish before the block exits: await it inside "
    "the block, or start it outside the block"
)


class GuardedLevel:
    """Mixin for a Tortoise transaction wrapper (before it in the bases): the level's lock and end state."""

    _lock: asyncio.Lock  # made by the Tortoise wrapper, one per level
    _parent: Any
    _connection: Any
    _finalized: bool
    connection_name: str
    _ended: str | None = None
    session_touched: bool = False
    """Raw SQL ran on this transaction's connection: its session is reset when the transaction ends."""

    @property
    def level_parent(self) -> GuardedLevel | None:
        parent = self._parent
        return parent if isinstance(parent, GuardedLevel) else None

    @property
    def root_level(self) -> GuardedLevel:
        level = self
        while (parent := level.level_parent) is not None:
            level = parent
        return level

    def ended(self) -> str | None:
        """Why this level refuses work (its block or an enclosing one has ended); ``None`` while open."""
        level: GuardedLevel | None = self
        while level is not None:
            if level._ended is not None:
                return level._ended
            level = level.level_parent
        return None

    def check_open(self) -> None:
        """Raises:
        TransactionClosedError: this level's block, or an enclosing one, has ended.
        """
        if (reason := self.ended()) is not None:
            raise TransactionClosedError(reason + _ADVICE)

    def end(self, reason: str) -> None:
        if self._ended is None:
            self._ended = reason

    async def statement_failed(self, exc: BaseException) -> None:
        """Hook for an engine: a statement on this level raised ``exc`` (the PostgreSQL engine clears stale
        statement caches here)."""

    def task_level(self) -> GuardedLevel:
        """The level this task's statements belong on: the task's own open savepoint below this level
        (when it runs a statement on a connection captured outside that nested block), else this one."""
        current = get_connections().get(self.connection_name)
        level = current
        while isinstance(level, GuardedLevel):
            if level is self:
                return current
            level = level.level_parent
        return self

    def acquire_connection(self) -> _Statement:
        return _Statement(self)

    def _in_transaction(self) -> TransactionContext:
        return Savepoint(type(self)(self))  # type: ignore[call-arg]


class _Statement:
    """``async with level.acquire_connection() as raw``: the level's driver connection, for one statement."""

    __slots__ = ("level", "lock")

    def __init__(self, level: GuardedLevel) -> None:
        self.level = level
        self.lock: asyncio.Lock | None = None

    async def __aenter__(self) -> Any:
        level = self.level
        level.check_open()
        if level._lock.locked():  # possibly by this task's own savepoint: then the statement belongs in it
            level = self.level = level.task_level()
            level.check_open()
        lock = level._lock
        await lock.acquire()
        if level.ended() is not None:  # the block ended while this statement waited its turn
            lock.release()
            level.check_open()
        self.lock = lock
        return level._connection

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.lock.release()  # type: ignore[union-attr]
        if exc is not None:
            await self.level.statement_failed(exc)


class Savepoint(TransactionContext):
    """A nested block: holds the parent level's lock for its whole length and is the task's connection."""

    __slots__ = ("client", "connection_name", "token")

    def __init__(self, client: Any) -> None:
        self.client = client
        self.connection_name = client.connection_name
        self.token: Any = None

    async def __aenter__(self) -> Any:
        level: Any = self.client  # a GuardedLevel wrapper
        parent: GuardedLevel = level.level_parent
        parent.check_open()
        await parent._lock.acquire()
        try:
            parent.check_open()
            await level.savepoint()
        except BaseException:
            parent._lock.release()
            raise
        self.token = get_connections().set(self.connection_name, level)
        return level

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        level: Any = self.client
        parent: GuardedLevel = level.level_parent
        level.end(SAVEPOINT_ENDED)
        outlived: str | None = None
        try:
            cancelled = await take(level._lock)  # statements other tasks still run on this level finish first
            try:
                outlived = parent.ended()
                if not level._finalized:
                    if exc_type is None and outlived is None and cancelled is None:
                        await level.release_savepoint()
                    elif exc_type is not TransactionManagementError:
                        await level.savepoint_rollback()
            finally:
                level._lock.release()
        finally:
            get_connections().reset(self.token)
            parent._lock.release()
        if cancelled is not None:
            raise cancelled
        if outlived is not None and exc_type is None:
            raise TransactionClosedError(f"{outlived}, so this nested block's work was rolled back{_ADVICE}")


async def take(lock: asyncio.Lock) -> asyncio.CancelledError | None:
    """Acquire ``lock`` even if the task is cancelled while waiting: a block's end must run to completion
    (else a savepoint would stay open, its work committed with the transaction). Returns the cancellation
    for the caller to re-raise once the block has ended (its work rolled back)."""
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            await lock.acquire()
            return cancelled
        except asyncio.CancelledError as exc:
            cancelled = exc


async def settle(level: GuardedLevel) -> asyncio.CancelledError | None:
    """End a transaction's root level and take its lock: work still running on it finishes first, work
    queued behind it is refused. The caller rolls back if this returns a cancellation (then re-raises it),
    else commits or rolls back as the block ended, and releases ``level._lock``."""
    level.end(TRANSACTION_ENDED)
    return await take(level._lock)
