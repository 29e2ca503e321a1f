"""Acknowledging the SSH server's data at once, so its small replies are not held back by Nagle's algorithm.

OpenSSH's sshd turns Nagle's algorithm off (``TCP_NODELAY``) only for sessions with a terminal; a connection
that only forwards ports keeps it on. With several pooled connections busy at once, sshd then holds each small
reply until the previous one is acknowledged, and Linux delays acknowledgements by up to 40 ms: measured here,
4 concurrent queries through the tunnel ran at a quarter of the rate of one (p99 90 ms). Re-arming Linux's
``TCP_QUICKACK`` after every read makes the client acknowledge at once, which removes those stalls (p99 16 ms).
Elsewhere (no ``TCP_QUICKACK``) this does nothing.
"""

from __future__ import annotations

import socket
from typing import Any

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def acknowledge_at_once(connection: Any) -> None:
    """Make ``connection`` (an asyncssh ``SSHClientConnection``) re-arm ``TCP_QUICKACK`` on each read."""
    sock = connection.get_extra_info("socket")
    if _QUICKACK is None or sock is None:
        return
    read = connection.data_received

    def data_received(data: bytes, *args: Any) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        except OSError:  # the socket is closing: nothing left to acknowledge
            pass
        read(data, *args)

    connection.data_received = data_received  # asyncio looks the method up on each read
