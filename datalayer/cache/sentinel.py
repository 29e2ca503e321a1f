"""Redis behind Sentinel: the cache follows the master Sentinel names, through a failover.

URL form (``REDIS_URL``)::

    redis+sentinel://[[user]:password@]sentinel1:26379[,sentinel2:26379...]/<service name>[/<db>]
        [?sentinel_password=...&sentinel_username=...]

``rediss+sentinel://`` connects to the master with TLS. The password in the URL is the Redis master's (as in
``redis://``); the Sentinels' own, if they need one, is the ``sentinel_password`` option. The port defaults to
26379 and the database to 0. Every new connection asks a Sentinel where the master is, so after a failover the
pool reconnects to the promoted replica; connections still open to the demoted master are dropped on its
first ``READONLY`` answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from datalayer.errors import ConfigurationError

SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_PORT = 26379
FORM = "redis+sentinel://[:password@]host:26379[,host:26379]/service_name[/db]"


def is_sentinel_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SCHEMES


@dataclass(frozen=True)
class SentinelTarget:
    """A parsed ``redis+sentinel://`` URL. Its repr never shows a password."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    ssl: bool = False

    def __repr__(self) -> str:
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"SentinelTarget('{SCHEMES[self.ssl]}://{hosts}/{self.service}/{self.db}')"

    def pool(self, **connection: Any) -> SentinelConnectionPool:
        """A pool of connections to the current master; ``connection`` as for ``redis.asyncio.Connection``
        (timeouts, ``decode_responses``, ``redis_connect_func``...). Sentinels are asked within the socket
        timeout (the connect timeout when there is none)."""
        bound = connection.get("socket_timeout") or connection.get("socket_connect_timeout")
        manager = Sentinel(list(self.sentinels), sentinel_kwargs={
            "socket_timeout": bound, "socket_connect_timeout": connection.get("socket_connect_timeout", bound),
            "username": self.sentinel_username, "password": self.sentinel_password})
        return SentinelConnectionPool(self.service, manager, db=self.db, username=self.username,
                                      password=self.password, ssl=self.ssl, **connection)


def parse_sentinel_url(url: str, *, source: str = "REDIS_URL") -> SentinelTarget:
    """Parse a ``redis+sentinel://`` URL.

    Raises:
        ConfigurationError: naming ``source`` and the form, never the password.
    """
    scheme, _, rest = url.partition("://")
    authority, _, tail = rest.partition("/")
    userinfo, _, servers = authority.rpartition("@")
    path, _, query = tail.partition("?")
    parts = [unquote(part) for part in path.split("/") if part]
    sentinels = []
    try:
        for server in servers.split(","):
            address = urlsplit(f"//{server}")
            if not address.hostname:
                raise ValueError("empty host")
            sentinels.append((address.hostname, address.port or DEFAULT_PORT))
        db = int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise ConfigurationError(f"{source} has a bad Sentinel host, port or database; expected {FORM}") from None
    if not parts or len(parts) > 2 or db < 0:
        raise ConfigurationError(f"{source} must name the Sentinel service (master name): {FORM}")
    user, _, password = userinfo.partition(":")
    options = dict(parse_qsl(query))
    return SentinelTarget(
        sentinels=tuple(sentinels), service=parts[0], db=db, username=unquote(user) or None,
        password=unquote(password) or None, sentinel_username=options.get("sentinel_username"),
        sentinel_password=options.get("sentinel_password"), ssl=scheme.lower() == "rediss+sentinel",
    )
