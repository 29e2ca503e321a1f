"""Settings read from the environment (and an optional ``.env``), with secrets kept out of every repr."""

from __future__ import annotations

from functools import cached_property
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from datalayer.errors import ConfigurationError

Environment = Literal["development", "test", "production"]

DEFAULT_SQLITE_PATH = "datalayer.sqlite3"
_POSTGRES_SCHEMES = {"postgres", "postgresql", "asyncpg", "postgresql+asyncpg"}
_SSL_OFF = {"disable", "false", "0", "no", "off", "allow", "prefer"}


class DatabaseTarget:
    """Where the layer connects, parsed once from the settings. Its ``str`` never shows the password."""

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
    ) -> None:
        self.engine = engine
        self.host = host
        self.port = port
        self.database = database
        self.user = user
        self.password = password
        self.ssl = ssl
        self.options = options or {}

    @property
    def is_postgres(self) -> bool:
        return self.engine == "postgres"

    def describe(self) -> str:
        """A human description for errors and status output: no password, ever."""
        if not self.is_postgres:
            return f"sqlite://{self.database}"  # the URL form it came from: sqlite:///abs, sqlite://rel
        auth = f"{self.user}:***@" if self.password else (f"{self.user}@" if self.user else "")
        return f"postgres://{auth}{self.host}:{self.port}/{self.database}"

    def __repr__(self) -> str:
        return f"DatabaseTarget({self.describe()!r})"

    __str__ = describe


class Settings(BaseSettings):
    """Every knob of the data layer. Durations ending in ``_ms`` are milliseconds, as in the env names."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: SecretStr | None = Field(default=None, validation_alias="DATABASE_URL")
    db_host: str = Field(default="127.0.0.1", validation_alias="DB_HOST")
    db_port: int = Field(default=5432, validation_alias="DB_PORT")
    db_name: str | None = Field(default=None, validation_alias="DB_NAME")
    db_user: str = Field(default="postgres", validation_alias="DB_USER")
    db_password: SecretStr | None = Field(default=None, validation_alias="DB_PASSWORD")
    sqlite_path: str = Field(default=DEFAULT_SQLITE_PATH, validation_alias="DATALAYER_SQLITE_PATH")

    db_min_connections: int = Field(default=1, ge=0, validation_alias="DB_MIN_CONNECTIONS")
    db_max_connections: int = Field(default=10, ge=1, validation_alias="DB_MAX_CONNECTIONS")
    db_idle_timeout_ms: int = Field(
        default=300_000, ge=0, validation_alias=AliasChoices("DB_IDLE_TIMEOUT", "DB_IDLE_TIMEOUT_MS")
    )
    db_connection_timeout_ms: int = Field(
        default=5_000, gt=0,
        validation_alias=AliasChoices("DB_CONNECTION_TIMEOUT", "DB_CONNECTION_TIMEOUT_MS"),
    )
    db_retry_attempts: int = Field(default=3, ge=1, validation_alias="DB_RETRY_ATTEMPTS")
    db_retry_delay_ms: int = Field(
        default=500, ge=0, validation_alias=AliasChoices("DB_RETRY_DELAY", "DB_RETRY_DELAY_MS")
    )
    db_slow_query_ms: float = Field(default=200.0, ge=0, validation_alias="DB_SLOW_QUERY_MS")
    db_logging: bool = Field(default=False, validation_alias="DB_LOGGING")
    db_pool_timeout_ms: int = Field(
        default=10_000, gt=0, validation_alias=AliasChoices("DB_POOL_TIMEOUT", "DB_POOL_TIMEOUT_MS")
    )
    """How long a statement or transaction waits for a pooled connection before ``PoolExhaustedError``."""
    db_reset_on_release: bool = Field(default=False, validation_alias="DB_RESET_ON_RELEASE")
    """Run asyncpg's session reset (RESET ALL, UNLISTEN, CLOSE ALL, advisory unlock) on every release.

    Off by default: it is a second round trip for every pooled statement, and datalayer sets no session
    state. Turn it on if your own raw SQL uses SET, LISTEN or session advisory locks on pooled connections.
    An open transaction is rolled back on release either way.
    """
    db_health_latency_ms: float = Field(default=250.0, gt=0, validation_alias="DB_HEALTH_LATENCY_MS")
    """A health ping slower than this makes the report ``degraded``."""

    redis_url: SecretStr | None = Field(default=None, validation_alias="REDIS_URL")
    environment: Environment = Field(default="development", validation_alias="DATALAYER_ENV")
    bcrypt_rounds: int = Field(default=12, ge=4, le=31, validation_alias="BCRYPT_ROUNDS")
    #: wraps stored models' encryption keys (AES-GCM); required only to store or read such keys
    key_wrapping_secret: SecretStr | None = Field(default=None, validation_alias="DATALAYER_KEY_WRAPPING_SECRET")

    @field_validator("environment", mode="before")
    @classmethod
    def _known_environment(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower()
            if value not in ("development", "test", "production"):
                raise ValueError(
                    f"unknown environment {value!r}: set DATALAYER_ENV to development, test or production"
                )
        return value

    @field_validator("db_max_connections")
    @classmethod
    def _max_not_below_min(cls, value: int, info) -> int:
        minimum = info.data.get("db_min_connections", 1)
        if value < minimum:
            raise ValueError(f"DB_MAX_CONNECTIONS ({value}) must be >= DB_MIN_CONNECTIONS ({minimum})")
        return value

    @cached_property
    def target(self) -> DatabaseTarget:
        """The parsed connection target: ``DATABASE_URL`` first, then ``DB_*``, else the SQLite file."""
        if self.database_url is not None:
            return parse_database_url(self.database_url.get_secret_value())
        if self.db_name:
            return DatabaseTarget(
                "postgres", host=self.db_host, port=self.db_port, database=self.db_name,
                user=self.db_user, password=self.db_password,
            )
        return DatabaseTarget("sqlite", database=self.sqlite_path)

    @property
    def is_production(self) -> bool:
        return self.environment == "production"


def parse_database_url(url: str) -> DatabaseTarget:
    """Parse a ``postgres://`` or ``sqlite://`` URL; a malformed one raises ``ConfigurationError``."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        path = url[len("sqlite://"):].split("?", 1)[0]  # sqlite://rel/path, sqlite:///abs/path, sqlite://:memory:
        if not path:
            raise ConfigurationError("DATABASE_URL sqlite:// needs a path, e.g. sqlite:///data/app.sqlite3")
        return DatabaseTarget("sqlite", database=path)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(
            f"DATABASE_URL is not a valid URL ({exc}); expected postgres://user@host:5432/db"
        ) from None
    if scheme not in _POSTGRES_SCHEMES:
        raise ConfigurationError(
            f"DATABASE_URL scheme {scheme!r} is not supported; use postgres://... or sqlite:///path"
        )
    database = unquote(parts.path.lstrip("/"))
    if not database or not parts.hostname:
        raise ConfigurationError("DATABASE_URL must name a host and a database: postgres://user@host:5432/db")
    options = dict(parse_qsl(parts.query))
    ssl = options.pop("sslmode", None) or options.pop("ssl", None)
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
    )
