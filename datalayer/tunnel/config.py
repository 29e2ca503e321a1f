"""What the tunnel connects to, as a settings-free dataclass; ``TunnelConfig.from_settings`` reads ``SSH_*``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from datalayer.errors import ConfigurationError
from datalayer.settings import Settings
from datalayer.tunnel.target import database_target

LOCAL_HOST = "127.0.0.1"


@dataclass(frozen=True)
class TunnelConfig:
    """One SSH server, the key to log in with, and the database's address as that server sees it.

    ``known_hosts=None`` turns host-key checking off (development only). Durations are milliseconds. The
    passphrase is a ``SecretStr``: no repr or message shows it, nor the key's content (only its path).
    """

    host: str
    user: str
    key_path: Path
    remote_host: str = "127.0.0.1"
    remote_port: int = 5432
    port: int = 22
    passphrase: SecretStr | None = field(default=None, repr=False)
    known_hosts: Path | None = field(default_factory=lambda: Path("~/.ssh/known_hosts").expanduser())
    local_port: int = 0
    """0 picks a free port on the first connect; reconnects keep it."""
    max_retries: int = 3
    retry_delay_ms: int = 1_000
    health_interval_ms: int = 30_000
    connect_timeout_ms: int = 10_000

    @property
    def server(self) -> str:
        """``host:port`` of the SSH server."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def describe(self) -> str:
        """``ssh://user@host:port``: what messages and events name (never the key)."""
        return f"ssh://{self.user}@{self.server}"

    @property
    def remote(self) -> str:
        """``host:port`` of the database, as the SSH server reaches it."""
        return f"{self.remote_host}:{self.remote_port}"

    def check_files(self) -> None:
        """Raise ``ConfigurationError`` unless the key (and the known_hosts file, when checking) can be read."""
        if not self.key_path.is_file() or not os.access(self.key_path, os.R_OK):
            raise ConfigurationError(f"SSH_KEY_PATH {self.key_path} is not a readable file; point it at the "
                                     "private key the SSH server accepts")
        if self.known_hosts is not None and not self.known_hosts.is_file():
            raise ConfigurationError(
                f"SSH_KNOWN_HOSTS {self.known_hosts} does not exist, so the SSH server {self.server} cannot be "
                f"verified; add its host key (ssh-keyscan -p {self.port} {self.host} >> {self.known_hosts}, after "
                "checking the fingerprint), or set SSH_STRICT_HOST_KEY_CHECKING=false for development only"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> TunnelConfig | None:
        """The tunnel ``settings`` ask for (``SSH_HOST`` set), else ``None``.

        Raises:
            ConfigurationError: ``SSH_PASSWORD`` is set (keys only), ``SSH_USER`` or ``SSH_KEY_PATH`` is missing,
                or the database is not one PostgreSQL server.
        """
        if not settings.ssh_host:
            return None
        if settings.ssh_password is not None:
            raise ConfigurationError("SSH_PASSWORD is not supported: the SSH tunnel uses key-based authentication "
                                     "only; unset SSH_PASSWORD and set SSH_KEY_PATH (and SSH_KEY_PASSPHRASE for an "
                                     "encrypted key)")
        missing = [name for name, value in (("SSH_USER", settings.ssh_user), ("SSH_KEY_PATH", settings.ssh_key_path))
                   if not value]
        if missing:
            raise ConfigurationError(f"SSH_HOST is set but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'}"
                                     " not: the tunnel logs in as SSH_USER with the private key at SSH_KEY_PATH")
        target = database_target(settings)
        if not target.is_postgres:
            raise ConfigurationError("SSH_HOST is set but the database is SQLite: the SSH tunnel is for PostgreSQL; "
                                     "unset SSH_HOST or configure DATABASE_URL / DB_* for PostgreSQL")
        if len(getattr(target, "hosts", ())) > 1 or getattr(settings, "replica_targets", None):
            raise ConfigurationError("SSH_HOST is set with several database servers (a multi-host DATABASE_URL or "
                                     "DATABASE_REPLICA_URLS); one tunnel reaches one server: name only that one")
        assert settings.ssh_user is not None and settings.ssh_key_path is not None  # checked above
        strict = settings.ssh_strict_host_key_checking
        return cls(
            host=settings.ssh_host, port=settings.ssh_port, user=settings.ssh_user,
            key_path=Path(settings.ssh_key_path).expanduser(), passphrase=settings.ssh_key_passphrase,
            known_hosts=Path(settings.ssh_known_hosts).expanduser() if strict else None,
            remote_host=settings.ssh_remote_db_host or target.host or "127.0.0.1",
            remote_port=settings.ssh_remote_db_port or target.port or 5432,
            local_port=settings.ssh_local_port, max_retries=settings.ssh_max_retries,
            retry_delay_ms=settings.ssh_retry_delay_ms, health_interval_ms=settings.ssh_health_check_interval_ms,
            connect_timeout_ms=settings.ssh_connect_timeout_ms,
        )
