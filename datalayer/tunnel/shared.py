"""The process's one tunnel, shared by whoever needs it: ``get_context()``, the CLI, an app's own code.

``open_tunnel(settings)`` opens it (or joins the open one) and points ``settings.target`` at its local end, so
the pool, the migrations and anything else built from those settings go through it; ``close_tunnel()`` leaves
it, and the last one out closes it. ``reset_tunnel()`` closes it whoever holds it (tests).
"""

from __future__ import annotations

from datalayer.errors import ConfigurationError
from datalayer.settings import Settings
from datalayer.tunnel.config import LOCAL_HOST, TunnelConfig
from datalayer.tunnel.target import TunnelledTarget, database_target, point_at
from datalayer.tunnel.tunnel import SSHTunnel

_shared: SSHTunnel | None = None
_holders = 0


def shared_tunnel() -> SSHTunnel | None:
    """The process's tunnel while someone holds it open, else ``None``."""
    return _shared


async def open_tunnel(settings: Settings) -> SSHTunnel | None:
    """With ``SSH_HOST`` set: open the process's tunnel (or join it) and point ``settings`` at its local end.

    Returns ``None`` (and changes nothing) when ``SSH_HOST`` is not set. Each call must be paired with a
    ``close_tunnel()``.

    Raises:
        ConfigurationError: the SSH settings are incomplete or refused (see ``SSHTunnel.connect``), or a tunnel
            to another server is already open in this process.
        DatabaseUnavailableError: the SSH server did not answer after ``SSH_MAX_RETRIES`` retries.
    """
    global _shared, _holders
    config = TunnelConfig.from_settings(settings)
    if config is None:
        return None
    if _shared is not None and _shared.config != config:
        raise ConfigurationError(f"an SSH tunnel to {_shared.config.describe()} is already open in this process; "
                                 f"this call asks for {config.describe()} (one tunnel per process: close it first)")
    tunnel = _shared = _shared or SSHTunnel(config)
    _holders += 1
    try:
        local_port = await tunnel.connect()
    except BaseException:
        await close_tunnel()
        raise
    point_at(settings, TunnelledTarget(database_target(settings), local_host=LOCAL_HOST, local_port=local_port,
                                       remote_host=config.remote_host, remote_port=config.remote_port,
                                       via=config.describe()))
    return tunnel


async def close_tunnel() -> None:
    """Leave the process's tunnel; the last holder's call closes it (SSH connection, channels, local port)."""
    global _shared, _holders
    if _shared is None:
        return
    _holders = max(0, _holders - 1)
    if _holders == 0:
        tunnel, _shared = _shared, None
        await tunnel.disconnect()


async def reset_tunnel() -> None:
    """Close the process's tunnel whoever holds it, and forget it (for tests)."""
    global _shared, _holders
    tunnel, _shared, _holders = _shared, None, 0
    if tunnel is not None:
        await tunnel.disconnect()
