"""The SSH tunnel as the commands show it (``status``, ``verify``): one line, no key, no passphrase."""

from __future__ import annotations

from datalayer.errors import DataLayerError
from datalayer.tunnel import shared_tunnel


async def tunnel_line() -> str | None:
    """``ssh://user@host:22 -> db:5432 connected, round trip 0.8 ms, 0 reconnect(s), local port 41234``
    after a fresh round trip; ``None`` when no tunnel is open (``SSH_HOST`` unset)."""
    tunnel = shared_tunnel()
    if tunnel is None:
        return None
    try:
        elapsed = f"round trip {await tunnel.round_trip():.1f} ms"
    except DataLayerError as exc:
        elapsed = f"round trip failed: {exc}"
    stats = tunnel.stats()
    return (f"{tunnel.config.describe()} -> {stats.remote} {stats.state}, {elapsed}, "
            f"{stats.reconnects} reconnect(s), local port {stats.local_port}")
