"""Group commit for cache writes: what concurrent callers ask for goes out together, one call in flight.

Under load every write through a cached manager invalidates its row: one epoch read and one Redis round trip
each, most of it redis-py's per-call work. Sent in groups they cost one of each per group (the same idea as a
database's group commit), with no added wait for a lone caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class GroupedCalls(Generic[T]):
    """``send(items)`` for every caller, with the items of all callers that asked while a send was in flight.

    A caller that finds nothing in flight sends its own items at once, in its own task. Callers that ask while
    a send is in flight queue their items; the queue goes out in one send as soon as the running one ends. Every
    caller returns when a send that began after it asked, and holds its items, has ended (raising what that send
    raised), so grouping keeps the guarantees of calling ``send`` directly: in particular a send reads what was
    committed before its callers asked. A cancelled caller does not cancel a send other callers wait on.
    """

    def __init__(self, send: Callable[[list[T]], Awaitable[None]]) -> None:
        self._send = send
        self._busy: asyncio.AbstractEventLoop | None = None  # the loop a send is in flight on
        self._queued: list[T] = []
        self._queued_done: asyncio.Future[None] | None = None
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, items: Sequence[T]) -> None:
        """Send ``items`` (alone, or with others'); returns once they went out in a send begun after now."""
        loop = asyncio.get_running_loop()
        if self._busy is loop:
            self._queued.extend(items)
            if self._queued_done is None:
                self._queued_done = loop.create_future()
            await asyncio.shield(self._queued_done)
            return
        self._busy, self._queued, self._queued_done = loop, [], None  # idle here (or left by a closed loop)
        try:
            await self._send(list(items))
        finally:
            self._drain_queue(loop)

    def _drain_queue(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._queued and not loop.is_closed():
            self._drainer = loop.create_task(self._drain(), name="datalayer-grouped-calls")
        else:
            self._busy = None

    async def _drain(self) -> None:
        try:
            while self._queued:
                items, done = self._queued, self._queued_done
                self._queued, self._queued_done = [], None
                try:
                    await self._send(items)
                except Exception as exc:  # noqa: BLE001 - handed to every caller of this send
                    if done is not None and not done.done():
                        done.set_exception(exc)
                        done.exception()  # retrieved: every waiter may have gone
                except BaseException:  # cancelled (the loop is closing): so are the callers waiting on it
                    if done is not None:
                        done.cancel()
                    raise
                else:
                    if done is not None and not done.done():
                        done.set_result(None)
        finally:
            self._busy = None
            if self._queued_done is not None and not self._queued_done.done():  # cancelled with callers queued
                self._queued_done.cancel()
            self._queued, self._queued_done = [], None
