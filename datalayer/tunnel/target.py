"""The database target as seen through the tunnel: its local end for connecting, the real server for messages."""

from __future__ import annotations

from datalayer.settings import DatabaseTarget, Settings


class TunnelledTarget(DatabaseTarget):
    """``host``/``port`` are the tunnel's local end (what asyncpg connects to); ``describe()`` names the
    database as the SSH server reaches it and the server itself, e.g.
    ``postgres://app:***@127.0.0.1:5432/app via ssh://deploy@bastion:22`` (no password, no key)."""

    def __init__(self, remote: DatabaseTarget, *, local_host: str, local_port: int, remote_host: str,
                 remote_port: int, via: str) -> None:
        super().__init__("postgres", host=local_host, port=local_port, database=remote.database, user=remote.user,
                         password=remote.password, ssl=remote.ssl, options=dict(remote.options))
        self.remote = remote
        self.via = via
        self._remote_shown = DatabaseTarget("postgres", host=remote_host, port=remote_port, database=remote.database,
                                            user=remote.user, password=remote.password)

    def describe(self) -> str:
        return f"{self._remote_shown.describe()} via {self.via}"

    def __repr__(self) -> str:
        return f"TunnelledTarget({self.describe()!r}, local {self.host}:{self.port})"

    __str__ = describe


def database_target(settings: Settings) -> DatabaseTarget:
    """The database ``settings`` name, even after they were pointed at a tunnel's local end."""
    target = settings.target
    return target.remote if isinstance(target, TunnelledTarget) else target


def point_at(settings: Settings, target: DatabaseTarget) -> None:
    """Make ``settings.target`` (a cached property) ``target``: the pool, migrations and every other
    connection made from these settings then use it."""
    settings.__dict__["target"] = target
