"""Keeping the tunnel up: notice a drop at once, check it every health interval, reconnect with backoff.

A drop is noticed when the SSH connection closes (asyncssh's keepalive closes one that stops answering), or
when the interval's round trip times out. Then: ``tunnel_disconnected``; up to ``max_retries`` attempts, each
after ``backoff_delay`` (exponential, with jitter) and announced as ``tunnel_reconnecting``; on success
``tunnel_reconnected`` and the pool is told to replace its connections (they died with their channels); after
the last failure ``tunnel_gave_up`` and the state ``failed`` (``connect()`` starts over). Meanwhile the local
port refuses connections, so the pool's calls fail fast with ``DatabaseUnavailableError``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from datalayer.connection import backoff_delay
from datalayer.errors import DataLayerError
from datalayer.tunnel.errors import DatabaseUnreachableFromServer

if TYPE_CHECKING:
    from datalayer.tunnel.tunnel import SSHTunnel

log = logging.getLogger("datalayer.tunnel")


async def supervise(tunnel: SSHTunnel) -> None:
    """Run until the tunnel is disconnected (cancelled) or gives up."""
    interval = tunnel.config.health_interval_ms / 1000
    while True:
        connection = tunnel.connection
        if connection is None:
            return
        reason = f"the SSH connection to {tunnel.config.describe()} closed"
        if not await _closed_within(connection, interval):
            try:
                await tunnel.round_trip()
                continue
            except DatabaseUnreachableFromServer:
                continue  # the SSH server answered: reconnecting to it would not help
            except DataLayerError as exc:
                reason = str(exc)
        tunnel.drop()
        tunnel.state, tunnel.last_error = "reconnecting", reason
        tunnel.emit("tunnel_disconnected", error=reason)
        if not await reconnect(tunnel):
            return


async def _closed_within(connection: Any, seconds: float) -> bool:
    """Whether ``connection`` closed within ``seconds``."""
    closed = asyncio.ensure_future(connection.wait_closed())
    try:
        done, _ = await asyncio.wait({closed}, timeout=seconds)
    finally:
        if not closed.done():
            closed.cancel()
    return bool(done)


async def reconnect(tunnel: SSHTunnel) -> bool:
    """Up to ``max_retries`` attempts with backoff; ``True`` once the tunnel is back on the same local port."""
    config = tunnel.config
    error = tunnel.last_error
    for attempt in range(1, config.max_retries + 1):
        delay = backoff_delay(attempt, config.retry_delay_ms / 1000)
        tunnel.emit("tunnel_reconnecting", attempt, delay, error)
        await asyncio.sleep(delay)
        try:
            await tunnel.establish()
        except DataLayerError as exc:
            error = tunnel.last_error = str(exc)
            continue
        tunnel.state = "connected"
        tunnel.reconnects += 1
        tunnel.emit("tunnel_reconnected", attempt)
        await _renew_pool()
        return True
    tunnel.state, tunnel.last_error = "failed", error
    tunnel.emit("tunnel_gave_up", config.max_retries, error=error)
    return False


async def _renew_pool() -> None:
    """Have the pool replace every connection it holds: they were channels of the lost SSH connection."""
    from datalayer.backends import root_client  # lazy: the tunnel opens before the pool exists

    try:
        expire = getattr(root_client(), "expire_pool", None)
        if expire is not None:
            await expire()
    except Exception:  # no pool (yet): nothing to renew
        log.debug("no pool to renew after the SSH tunnel reconnected", exc_info=True)
