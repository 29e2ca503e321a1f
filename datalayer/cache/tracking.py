"""``InvalidationListener``: keeps a ``NearCache`` true with Redis' server-assisted client-side caching.

One dedicated connection per cache asks Redis to broadcast every change to keys under a prefix
(``CLIENT TRACKING ON BCAST PREFIX <namespace>:model:``, redirected to itself) and subscribes to
``__redis__:invalidate``. Redis then names each key written, deleted, expired or evicted, by any client, and
the listener drops it from the near cache; a ``FLUSHDB`` clears it whole.

The near cache is live only while this link is known to work. A heartbeat PING checks the link whenever it is
quiet; no answer within two heartbeats, a dropped connection, or a failed call elsewhere in the cache takes
it offline (and empty) until the listener hears from Redis again. When the namespace moves to a new epoch
(``epoch``), its row keys get a new prefix: ``retarget`` takes the near cache offline until the link tracks it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError

from datalayer.cache.near import NearCache
from datalayer.cache.sentinel import is_sentinel_url, parse_sentinel_url

log = logging.getLogger("datalayer.cache.near")

CHANNEL = "__redis__:invalidate"


class LinkStalled(Exception):
    """Redis did not answer the listener's heartbeat."""


class Retargeted(Exception):
    """The prefix to track changed: listen again on a new link."""


class InvalidationListener:
    """Runs as a background task of the loop that first uses it; ``close`` stops it."""

    def __init__(
        self,
        url: str,
        prefix: str,
        near: NearCache,
        *,
        heartbeat_s: float = 0.5,
        connect_timeout_s: float = 1.0,
    ) -> None:
        self.near = near
        self.prefix = prefix
        self.heartbeat_s = heartbeat_s
        # used only to turn the URL (host, port, db, password, TLS; or the master a Sentinel names) into connections
        options: dict[str, Any] = {"protocol": 2, "decode_responses": True,
                                   "socket_connect_timeout": connect_timeout_s, "socket_timeout": None}
        self._factory = (parse_sentinel_url(url).pool(**options) if is_sentinel_url(url)
                         else ConnectionPool.from_url(url, **options))
        self._connection: AbstractConnection | None = None
        self._task: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        """Start listening on the running loop (again, if an earlier loop went away)."""
        task = self._task
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            return
        self.near.set_live(False)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="datalayer-near-cache")

    def retarget(self, prefix: str) -> None:
        """Track ``prefix`` instead: the near cache empties and stays unused until the link tracks it (within a
        heartbeat)."""
        if prefix != self.prefix:
            self.prefix = prefix
            self.near.set_live(False)

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._listen()
            except Retargeted:
                backoff = 0.0
            except (RedisError, OSError, LinkStalled) as exc:
                if self.near.live:
                    log.warning("near cache offline, invalidation link lost: %s", exc)
                    backoff = 0.1
                else:
                    log.debug("invalidation link not established: %s", exc)
            except Exception:  # never let the listener die: the near cache would stay offline
                log.exception("near cache listener failed; retrying")
            finally:
                self.near.set_live(False)
                await self._disconnect()
            await asyncio.sleep(backoff)
            backoff = min(max(backoff * 2, 0.1), 5.0)

    async def _listen(self) -> None:
        prefix = self.prefix
        connection = self._connection = self._factory.make_connection()
        await connection.connect()
        await connection.send_command("CLIENT", "ID")
        client_id = await connection.read_response()
        await connection.send_command(
            "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", "PREFIX", prefix
        )
        await connection.read_response()
        await connection.send_command("SUBSCRIBE", CHANNEL)
        await connection.read_response()
        if prefix != self.prefix:
            raise Retargeted
        self.near.set_live(True)
        log.debug("near cache live, tracking %s*", prefix)
        pinged = False
        while True:
            message = await connection.read_response(timeout=self.heartbeat_s)
            if prefix != self.prefix:
                raise Retargeted
            if message is None:  # quiet: prove the link still works
                if pinged:
                    raise LinkStalled(f"no answer to PING within {self.heartbeat_s * 1000:.0f} ms")
                await connection.send_command("PING")
                pinged = True
                continue
            pinged = False
            if not self.near.live:  # suspended after a failed call: Redis answers again
                self.near.set_live(True)
            self._apply(message)

    def _apply(self, message: list[object]) -> None:
        if len(message) == 3 and message[0] == "message" and message[1] == CHANNEL:
            keys = message[2]
            if keys is None:  # FLUSHDB / FLUSHALL
                self.near.clear()
            elif isinstance(keys, list):
                self.near.drop(keys)

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            await connection.disconnect()
        except Exception:  # a dead link must not stop the listener or fail shutdown
            log.debug("closing the invalidation link failed", exc_info=True)

    async def close(self) -> None:
        task, self._task = self._task, None
        self.near.set_live(False)
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        await self._disconnect()

