"""Stampede protection: when a hot key is missing, one loader runs and everyone else waits for its result.

In-process, concurrent callers of one key share one future. Across processes, the one that wins a short
``SET NX PX`` lock loads; the others poll the cache until the value appears or the lock goes away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class SingleFlight:
    """At most one running call per key in this process; later callers await the first one's result."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[Any]] = {}

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def run(self, key: str, call: Callable[[], Awaitable[T]]) -> T:
        while (running := self._running.get(key)) is not None:
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                if not running.cancelled():  # we were cancelled, not the leader
                    raise
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda done: done.cancelled() or done.exception())  # no "never retrieved"
        self._running[key] = future
        try:
            result = await call()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(result)
            return result
        finally:
            if self._running.get(key) is future:
                del self._running[key]
