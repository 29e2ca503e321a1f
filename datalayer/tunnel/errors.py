"""asyncssh's failures as datalayer's errors: a refused key or an unknown host key is a ``ConfigurationError``
(retrying cannot fix it), anything else ``DatabaseUnavailableError``. Each names the server, never the key."""

from __future__ import annotations

import asyncio
from typing import Any

from datalayer.errors import ConfigurationError, DatabaseUnavailableError, DataLayerError
from datalayer.tunnel.config import TunnelConfig


def asyncssh_module() -> Any:
    """``asyncssh``, imported on first use: only apps that tunnel need it (the ``ssh`` extra)."""
    try:
        import asyncssh
    except ImportError:
        raise ConfigurationError("SSH_HOST is set but asyncssh is not installed: pip install 'datalayer[ssh]'") from None
    return asyncssh


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "reason", None) or str(exc) or ("no answer in time" if isinstance(exc, TimeoutError) else "")
    text = " ".join(str(text).split())
    return f"{exc.__class__.__name__}: {text[:200]}" if text else exc.__class__.__name__


def key_error(config: TunnelConfig, exc: BaseException) -> ConfigurationError:
    """The key file exists but is not a private key asyncssh can use (wrong passphrase, another format)."""
    return ConfigurationError(f"SSH_KEY_PATH {config.key_path} could not be loaded as a private key ({_reason(exc)}); "
                              "check the file, and SSH_KEY_PASSPHRASE for an encrypted key")


def connect_error(config: TunnelConfig, exc: BaseException) -> DataLayerError:
    """Why opening the SSH connection to ``config``'s server failed."""
    asyncssh = asyncssh_module()
    server = config.describe()
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        where = f"SSH_KNOWN_HOSTS ({config.known_hosts})" if config.known_hosts else "the known hosts"
        return ConfigurationError(
            f"the SSH server {server} presented a host key not trusted by {where}: either it is not listed there "
            f"(add it after checking its fingerprint: ssh-keyscan -p {config.port} {config.host} >> "
            f"{config.known_hosts}) or it changed (which may be an attack); SSH_STRICT_HOST_KEY_CHECKING=false "
            "skips the check, for development only"
        )
    if isinstance(exc, asyncssh.PermissionDenied):
        return ConfigurationError(
            f"the SSH server {server} refused the key at SSH_KEY_PATH ({config.key_path}) for user {config.user}; "
            "add its public key to that user's authorized_keys on the server, or fix SSH_USER / SSH_KEY_PATH"
        )
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return DatabaseUnavailableError(f"the SSH server {server} did not answer within "
                                        f"{config.connect_timeout_ms} ms (SSH_CONNECT_TIMEOUT)")
    return DatabaseUnavailableError(f"could not reach the SSH server {server}: {_reason(exc)}")


class DatabaseUnreachableFromServer(DatabaseUnavailableError):
    """The SSH server answered but could not open a connection to the database (the tunnel itself is fine)."""


def channel_error(config: TunnelConfig, exc: BaseException) -> DatabaseUnavailableError:
    """A round trip through the tunnel failed: the SSH server could not reach the database, or is gone."""
    if isinstance(exc, asyncssh_module().ChannelOpenError):
        return DatabaseUnreachableFromServer(f"the SSH server {config.describe()} could not reach the database at "
                                        f"{config.remote} ({_reason(exc)}); check SSH_REMOTE_DB_HOST/PORT")
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return DatabaseUnavailableError(f"no round trip through the SSH tunnel to {config.describe()} within "
                                        f"{config.connect_timeout_ms} ms")
    return DatabaseUnavailableError(f"the SSH tunnel to {config.describe()} failed: {_reason(exc)}")
