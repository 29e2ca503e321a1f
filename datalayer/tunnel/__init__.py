"""PostgreSQL through a supervised SSH tunnel (``SSH_HOST``; the ``ssh`` extra installs asyncssh).

With ``SSH_HOST`` set, ``get_context()`` opens the process's one tunnel before the pool and ``close_context()``
closes it after the pool; apps that need it directly use ``open_tunnel``/``close_tunnel`` or an ``SSHTunnel``.
README "SSH tunnel" has the settings.
"""

from datalayer.tunnel.config import TunnelConfig
from datalayer.tunnel.errors import DatabaseUnreachableFromServer
from datalayer.tunnel.shared import close_tunnel, open_tunnel, reset_tunnel, shared_tunnel
from datalayer.tunnel.target import TunnelledTarget
from datalayer.tunnel.tunnel import SSHTunnel, TunnelState, TunnelStats

__all__ = [
    "DatabaseUnreachableFromServer",
    "SSHTunnel",
    "TunnelConfig",
    "TunnelState",
    "TunnelStats",
    "TunnelledTarget",
    "close_tunnel",
    "open_tunnel",
    "reset_tunnel",
    "shared_tunnel",
]
