"""``SSHTunnel``: one SSH connection and a local listener whose every accepted connection is a channel of it.

asyncssh's ``forward_local_port`` does the forwarding: each connection the pool opens to the local port becomes
a ``direct-tcpip`` channel to the database, so the pool's connections (up to its size) share the one SSH
connection. When that connection drops, asyncssh closes the listener too, so connecting meanwhile is refused at
once (the pool's calls fail fast with ``DatabaseUnavailableError``) until the supervisor
(``datalayer.tunnel.supervisor``) has reconnected on the same local port.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from datalayer.connection import ConnectionEvent, ConnectionEvents, backoff_delay, connection_events
from datalayer.errors import ConfigurationError, DatabaseUnavailableError, DataLayerError
from datalayer.tunnel.acks import acknowledge_at_once
from datalayer.tunnel.config import LOCAL_HOST, TunnelConfig
from datalayer.tunnel.errors import asyncssh_module, channel_error, connect_error, key_error
from datalayer.tunnel.supervisor import supervise

log = logging.getLogger("datalayer.tunnel")

TunnelState = Literal["disconnected", "connecting", "connected", "reconnecting", "failed", "closed"]
"""``failed``: gave up after ``max_retries``; ``connect()`` starts over. ``closed``: ``disconnect()`` ran."""
KEEPALIVE_COUNT_MAX = 3


@dataclass(frozen=True)
class TunnelStats:
    """The tunnel at one moment, for health reports and ``datalayer status`` (no key, no passphrase)."""

    state: TunnelState
    server: str
    """``host:port`` of the SSH server."""
    user: str
    remote: str
    """``host:port`` of the database, as the SSH server reaches it."""
    local_port: int | None
    last_round_trip_ms: float | None
    reconnects: int
    last_error: str | None = None


class SSHTunnel:
    """The tunnel to one SSH server; ``connect()``, ``disconnect()``, ``state``, ``round_trip()``, ``stats()``.

    Events (``tunnel_connected``, ``tunnel_disconnected``, ``tunnel_reconnecting`` with attempt and delay in
    seconds, ``tunnel_reconnected``, ``tunnel_gave_up``, ``tunnel_closed``) go to ``datalayer.connection_events``.
    """

    def __init__(self, config: TunnelConfig, *, events: ConnectionEvents = connection_events) -> None:
        self.config = config
        self.events = events
        self.state: TunnelState = "disconnected"
        self.local_port: int | None = config.local_port or None
        self.reconnects = 0
        self.last_round_trip_ms: float | None = None
        self.last_error: str | None = None
        self.connection: Any = None
        """The asyncssh ``SSHClientConnection`` while connected."""
        self._listener: Any = None
        self._supervisor: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<SSHTunnel {self.config.describe()} {self.state} local port {self.local_port}>"

    async def connect(self) -> int:
        """Open the SSH connection and the local listener, then supervise them; returns the local port.

        Already connected: returns at once. Unreachable: retried ``max_retries`` times with backoff.

        Raises:
            ConfigurationError: the key is refused or unreadable, the host key is not trusted (not retried).
            DatabaseUnavailableError: the server did not answer after the retries.
        """
        async with self._lock:
            if self.state == "connected":
                assert self.local_port is not None
                return self.local_port
            if self.state == "reconnecting":
                raise DatabaseUnavailableError(f"the SSH tunnel to {self.config.describe()} is reconnecting; "
                                               "try again shortly")
            self.config.check_files()
            self.state = "connecting"
            attempts = self.config.max_retries + 1
            for attempt in range(1, attempts + 1):
                try:
                    await self.establish()
                    break
                except ConfigurationError as exc:
                    self._failed(attempt, str(exc))
                    raise
                except DatabaseUnavailableError as exc:
                    if attempt == attempts:
                        self._failed(attempt, str(exc))
                        raise DatabaseUnavailableError(
                            f"could not open the SSH tunnel after {attempt} attempt(s): {exc}") from None
                    delay = backoff_delay(attempt, self.config.retry_delay_ms / 1000)
                    self.emit("tunnel_reconnecting", attempt, delay, str(exc))
                    await asyncio.sleep(delay)
            self.state = "connected"
            self.emit("tunnel_connected", attempt)
            self._supervisor = asyncio.get_running_loop().create_task(supervise(self), name="datalayer-ssh-tunnel")
            self._supervisor.add_done_callback(self._supervisor_ended)
            assert self.local_port is not None
            return self.local_port

    def _supervisor_ended(self, task: asyncio.Task[None]) -> None:
        """A supervisor that died of a bug must not leave the tunnel looking alive: it is ``failed`` then."""
        if task.cancelled() or task.exception() is None:
            return
        log.error("the SSH tunnel's supervisor failed", exc_info=task.exception())
        self.drop()
        self._failed(0, f"supervisor failed: {task.exception().__class__.__name__}")

    def _failed(self, attempt: int, error: str) -> None:
        self.state, self.last_error = "failed", error
        self.emit("tunnel_gave_up", attempt, error=error)

    async def establish(self) -> None:
        """One attempt: log in and listen on the local port (the same one as before, after a drop)."""
        asyncssh = asyncssh_module()
        config = self.config
        passphrase = config.passphrase.get_secret_value() if config.passphrase else None
        problem: DataLayerError | None = None
        try:
            key = asyncssh.read_private_key(config.key_path, passphrase)
        except Exception as exc:  # noqa: BLE001 - KeyImportError, KeyEncryptionError, OSError: all the key's fault
            problem = key_error(config, exc)
        if problem is not None:  # raised outside the except block: asyncssh's frames hold the key's bytes
            raise problem
        timeout = config.connect_timeout_ms / 1000
        try:
            connection = await asyncio.wait_for(asyncssh.connect(
                config.host, config.port, username=config.user, client_keys=[key], agent_path=None,
                preferred_auth="publickey", known_hosts=str(config.known_hosts) if config.known_hosts else None,
                config=None, keepalive_interval=config.health_interval_ms / 1000,
                keepalive_count_max=KEEPALIVE_COUNT_MAX, connect_timeout=timeout, login_timeout=timeout,
            ), timeout * 2)
        except Exception as exc:  # noqa: BLE001 - classified into datalayer's errors below
            problem = connect_error(config, exc)
        if problem is not None:  # raised outside the except block: asyncssh's error stays out of the chain
            raise problem
        try:
            listener = await connection.forward_local_port(LOCAL_HOST, self.local_port or 0, config.remote_host,
                                                           config.remote_port)
        except OSError as exc:
            connection.close()
            raise DatabaseUnavailableError(f"could not listen on {LOCAL_HOST}:{self.local_port or 0} for the SSH "
                                           f"tunnel: {exc.strerror or exc}; free the port or change SSH_LOCAL_PORT") from None
        acknowledge_at_once(connection)
        self.connection, self._listener = connection, listener
        self.local_port = listener.get_port()
        self.last_error = None

    async def round_trip(self) -> float:
        """Open a channel to the database through the tunnel and close it; milliseconds it took.

        Raises:
            DatabaseUnavailableError: not connected, the SSH server is gone, or it cannot reach the database.
        """
        connection = self.connection
        if connection is None or self.state != "connected":
            raise DatabaseUnavailableError(f"the SSH tunnel to {self.config.describe()} is {self.state}")
        started = time.perf_counter()
        problem: DatabaseUnavailableError | None = None
        try:
            _, writer = await asyncio.wait_for(
                connection.open_connection(self.config.remote_host, self.config.remote_port),
                self.config.connect_timeout_ms / 1000)
            writer.close()
        except Exception as exc:  # noqa: BLE001 - classified below
            problem = channel_error(self.config, exc)
        if problem is not None:
            self.last_error = str(problem)
            raise problem
        self.last_round_trip_ms = round((time.perf_counter() - started) * 1000, 3)
        return self.last_round_trip_ms

    def drop(self) -> None:
        """Forget the (lost or abandoned) connection and its listener, closing both."""
        connection, listener, self.connection, self._listener = self.connection, self._listener, None, None
        if listener is not None:
            listener.close()
        if connection is not None:
            connection.abort()

    async def disconnect(self) -> None:
        """Stop supervising, close the listener and the SSH connection (its channels with it); idempotent."""
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None and supervisor is not asyncio.current_task():
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)
        async with self._lock:
            connection, listener = self.connection, self._listener
            self.connection = self._listener = None
            if listener is not None:
                listener.close()
            if connection is not None:  # its channels close with it, and the local ends of the connections
                connection.close()
                await connection.wait_closed()
            if listener is not None:
                await listener.wait_closed()
            if self.state != "closed":
                self.state = "closed"
                self.emit("tunnel_closed")

    def stats(self) -> TunnelStats:
        return TunnelStats(state=self.state, server=self.config.server, user=self.config.user,
                           remote=self.config.remote, local_port=self.local_port,
                           last_round_trip_ms=self.last_round_trip_ms, reconnects=self.reconnects,
                           last_error=self.last_error)

    def emit(self, kind: Any, attempt: int = 0, delay: float = 0.0, error: str | None = None) -> None:
        """Announce ``kind`` (a ``tunnel_*`` event) on the connection events, naming the server."""
        self.events.emit(ConnectionEvent(kind, self.config.describe(), attempt, delay, error))
