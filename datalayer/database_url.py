"""Database URLs: ``postgres://`` (one host or several, with libpq's options) and ``sqlite://``, parsed into a
``DatabaseTarget`` that never shows its password. A malformed URL raises ``ConfigurationError`` naming the
variable it came from and the form it needs, with the password redacted.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import SecretStr

from datalayer.errors import ConfigurationError

_POSTGRES_SCHEMES = {"postgres", "postgresql", "asyncpg", "postgresql+asyncpg"}
_SSL_OFF = {"disable", "false", "0", "no", "off", "allow", "prefer"}
_SSL_MODES = _SSL_OFF | {"require", "verify-ca", "verify-full", "true", "1", "on", "yes"}
#: libpq's and asyncpg's target_session_attrs values
_SESSION_ATTRS = ("any", "primary", "standby", "prefer-standby", "read-write", "read-only")
#: a comma that starts another URL (a comma inside a URL separates the hosts of a multi-host target)
_NEXT_URL = re.compile(r"\s*,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")


class DatabaseTarget:
    """Where the layer connects, parsed once from the settings. Its ``str`` never shows the password.

    ``host``/``port`` are the first (or only) server; ``hosts`` lists every ``(host, port)`` of a multi-host
    target (``postgres://h1:5432,h2:5433/db``), tried in order by asyncpg as libpq does.
    """

    def __init__(
        self,
        engine: Literal["postgres", "sqlite"],
        *,
        host: str | None = None,
        port: int | None = None,
        database: str,
        user: str | None = None,
        password: SecretStr | None = None,
        ssl: str | None = None,
        options: dict[str, str] | None = None,
        hosts: list[tuple[str, int]] | None = None,
    ) -> None:
        self.engine = engine
        self.hosts = hosts or ([(host, port or 5432)] if host else [])
        self.host = self.hosts[0][0] if self.hosts else host
        self.port = self.hosts[0][1] if self.hosts else port
        self.database = database
        self.user = user
        self.password = password
        self.ssl = ssl
        self.options = options or {}

    @property
    def is_postgres(self) -> bool:
        return self.engine == "postgres"

    def address(self) -> dict[str, Any]:
        """asyncpg's ``host``/``port`` (lists for a multi-host target) and ``target_session_attrs`` if set."""
        found: dict[str, Any] = {"host": self.host, "port": self.port}
        if len(self.hosts) > 1:
            found = {"host": [host for host, _ in self.hosts], "port": [port for _, port in self.hosts]}
        if "target_session_attrs" in self.options:
            found["target_session_attrs"] = self.options["target_session_attrs"]
        return found

    def describe(self) -> str:
        """A human description for errors and status output: no password, ever."""
        if not self.is_postgres:
            return f"sqlite://{self.database}"  # the URL form it came from: sqlite:///abs, sqlite://rel
        auth = f"{self.user}:***@" if self.password else (f"{self.user}@" if self.user else "")
        servers = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.hosts) or f"{self.host}:{self.port}"
        return f"postgres://{auth}{servers}/{self.database}"

    def __repr__(self) -> str:
        return f"DatabaseTarget({self.describe()!r})"

    __str__ = describe


def _redacted(text: str, url: str) -> str:
    """``text`` with the URL's user:password part (raw or decoded) replaced by ``***``."""
    userinfo = url.split("://", 1)[-1].split("/", 1)[0].rpartition("@")[0]
    for secret in (userinfo, userinfo.partition(":")[2]):
        for form in {secret, unquote(secret)}:
            if form:
                text = text.replace(form, "***")
    return text


def parse_database_url(url: str, *, source: str = "DATABASE_URL") -> DatabaseTarget:
    """Parse a ``postgres://`` or ``sqlite://`` URL; a malformed one raises ``ConfigurationError``.

    ``source`` is the variable the URL came from, named in the error; the password is never shown.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        path = url[len("sqlite://"):].split("?", 1)[0]  # sqlite://rel/path, sqlite:///abs/path, sqlite://:memory:
        if not path:
            raise ConfigurationError(f"{source} sqlite:// needs a path, e.g. sqlite:///data/app.sqlite3")
        return DatabaseTarget("sqlite", database=path)
    problem, hosts = None, None
    try:
        url, hosts = _first_host_only(url)
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        problem = _redacted(str(exc), url)
    if problem is not None:  # raised outside the except block: the ValueError may quote the whole netloc
        raise ConfigurationError(
            f"{source} is not a valid URL ({problem}); expected postgres://user@host:5432/db"
        ) from None
    if scheme not in _POSTGRES_SCHEMES:
        raise ConfigurationError(
            f"{source} scheme {scheme!r} is not supported; use postgres://... or sqlite:///path"
        )
    database = unquote(parts.path.lstrip("/"))
    if not database or not parts.hostname:
        raise ConfigurationError(f"{source} must name a host and a database: postgres://user@host:5432/db")
    options = _checked_options(dict(parse_qsl(parts.query)), source)
    ssl = options.pop("sslmode", None) or options.pop("ssl", None)
    if ssl is not None and ssl.lower() not in _SSL_MODES:
        raise ConfigurationError(f"{source} option sslmode must be one of {', '.join(sorted(_SSL_MODES))}, "
                                 f"got {ssl[:40]!r}")
    ssl = None if ssl is None or ssl.lower() in _SSL_OFF else ("require" if ssl.lower() in {"true", "1", "on", "yes"} else ssl)
    return DatabaseTarget(
        "postgres",
        host=parts.hostname,
        port=port or 5432,
        database=database,
        user=unquote(parts.username) if parts.username else None,
        password=SecretStr(unquote(parts.password)) if parts.password else None,
        ssl=ssl,
        options=options,
        hosts=hosts,
    )


def _first_host_only(url: str) -> tuple[str, list[tuple[str, int]] | None]:
    """A multi-host URL (``postgres://u@h1:5432,[::1]:5433/db``) as the URL of its first host plus every
    ``(host, port)``; other URLs unchanged with ``None``. Raises ``ValueError`` for a bad host or port."""
    scheme, _, rest = url.partition("://")
    authority = re.match(r"[^/?#]*", rest).group(0)  # type: ignore[union-attr]  # always matches
    userinfo, at, servers = authority.rpartition("@")
    if "," not in servers:
        return url, None
    hosts = []
    for server in servers.split(","):
        parts = urlsplit(f"//{server}")
        if not parts.hostname:
            raise ValueError("a host of the multi-host list is empty")
        hosts.append((parts.hostname, parts.port or 5432))
    first = servers.split(",")[0]
    return f"{scheme}://{userinfo}{at}{first}{rest[len(authority):]}", hosts


def _checked_options(options: dict[str, str], source: str) -> dict[str, str]:
    """The URL's query options, those datalayer passes to asyncpg checked (``ConfigurationError`` naming them)."""
    attrs = options.get("target_session_attrs")
    if attrs is not None and attrs not in _SESSION_ATTRS:
        raise ConfigurationError(f"{source} option target_session_attrs must be one of {', '.join(_SESSION_ATTRS)}, "
                                 f"got {attrs!r}")
    size = options.get("statement_cache_size")
    if size is not None and not (size.isdigit() and int(size) <= 1_000_000):
        raise ConfigurationError(f"{source} option statement_cache_size must be a whole number >= 0 (0 for "
                                 f"PgBouncer's transaction pooling), got {size!r}")
    return options


def parse_replica_urls(text: str, *, source: str = "DATABASE_REPLICA_URLS") -> list[DatabaseTarget]:
    """``postgres://...`` URLs separated by commas (a comma followed by a scheme starts the next URL)."""
    usage = f"{source} lists PostgreSQL read replicas, separated by commas: postgres://user@replica:5432/db,..."
    parts = [part.strip() for part in _NEXT_URL.split(text.strip())]
    if not all(parts) or any(part.endswith(",") or ",," in part for part in parts):
        raise ConfigurationError(f"{usage} (an entry is empty)")
    if any(not part.lower().startswith(tuple(f"{scheme}://" for scheme in _POSTGRES_SCHEMES)) for part in parts):
        raise ConfigurationError(usage)
    return [parse_database_url(part, source=source) for part in parts]
