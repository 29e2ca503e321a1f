"""Settings read from the environment (and an optional ``.env``), with secrets kept out of every repr.

Configuration cannot fail silently: a bad value raises ``ConfigurationError`` naming the environment
variable that was read and the form it needs (never echoing a password or a URL), and production without a
configured database is an error instead of a fallback to the SQLite file.
"""

from __future__ import annotations

import math
import os
import re
import types
import typing
from functools import cached_property
from typing import Any, Literal
from urllib.parse import quote

import annotated_types
from pydantic import (
    AliasChoices,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from datalayer.database_url import (  # re-exported: settings is where users import them from
    DatabaseTarget,
    parse_database_url,
    parse_replica_urls,
)
from datalayer.errors import ConfigurationError

Environment = Literal["development", "test", "production"]

DEFAULT_SQLITE_PATH = "datalayer.sqlite3"
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://", "rediss+sentinel://")
#: Docker and Kubernetes service links set e.g. POSTGRES_PORT=tcp://10.0.0.7:5432 for a service "postgres"
_LINK_PORT = re.compile(r"^\s*tcp://[^/]*:(\d+)/?\s*$")
#: only honoured when DATALAYER_ENV=test; dropped unvalidated otherwise
_TEST_ONLY = ("TEST_DATABASE_URL", "TEST_POSTGRES_HOST", "TEST_POSTGRES_PORT", "TEST_POSTGRES_DB",
              "TEST_POSTGRES_USER", "TEST_POSTGRES_PASSWORD")
#: TEST_POSTGRES_* field -> the field it replaces in the test environment
_TEST_PARTS = {"test_db_host": "db_host", "test_db_port": "db_port", "test_db_name": "db_name",
               "test_db_user": "db_user", "test_db_password": "db_password"}
_DATABASE_FIELDS = ("database_url", "db_host", "db_port", "db_name", "db_user", "db_password")
#: fields whose value is never shown in an error (a password, or a URL that may hold one)
_SECRET_FIELDS = {"database_url", "db_password", "redis_url", "redis_password", "test_database_url",
                  "test_db_password", "key_wrapping_secret", "database_replica_urls", "ssh_key_passphrase",
                  "ssh_password"}
#: the expected form, where the type and bounds alone would not say it well
_FORMS = {
    "environment": "development, test or production",
    "log_partition_interval": "day, week or month",
    "pool_recycle_s": "a number of seconds >= 0, or -1 for never",
    "database_url": "postgres://user:password@host:5432/db or sqlite:///path",
    "test_database_url": "postgres://user:password@host:5432/db or sqlite:///path",
    "redis_url": "redis://:password@host:6379/0 (or rediss://, unix://, "
                 "redis+sentinel://:password@sentinel:26379[,sentinel2:26379]/master_name/0)",
    "database_replica_urls": "postgres://user:password@replica1:5432/db,postgres://...@replica2:5432/db",
}
def _port(value: object) -> object:
    """``tcp://host:5432`` (a Docker or Kubernetes link variable) reads as its port; others unchanged."""
    if isinstance(value, str) and (match := _LINK_PORT.match(value)):
        return int(match.group(1))
    return value


class Settings(BaseSettings):
    """Every knob of the data layer. Durations ending in ``_ms`` are milliseconds, as in the env names.

    Each field reads its own variable first, then the aliases the seed projects use (``DATABASE_*``,
    ``POSTGRES_*``, ``POOL_*``, ``REDIS_*``, ``TEST_*``); README "Configuration" lists them all.
    """

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: SecretStr | None = Field(default=None, validation_alias="DATABASE_URL")
    db_host: str = Field(
        default="127.0.0.1", validation_alias=AliasChoices("DB_HOST", "DATABASE_HOST", "POSTGRES_HOST")
    )
    db_port: int = Field(
        default=5432, ge=1, le=65535,
        validation_alias=AliasChoices("DB_PORT", "DATABASE_PORT", "POSTGRES_PORT"),
    )
    db_name: str | None = Field(
        default=None, validation_alias=AliasChoices("DB_NAME", "DATABASE_NAME", "POSTGRES_DB")
    )
    db_user: str = Field(
        default="postgres", validation_alias=AliasChoices("DB_USER", "DATABASE_USER", "POSTGRES_USER")
    )
    db_password: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("DB_PASSWORD", "DATABASE_PASSWORD", "POSTGRES_PASSWORD")
    )
    sqlite_path: str = Field(default=DEFAULT_SQLITE_PATH, validation_alias="DATALAYER_SQLITE_PATH")

    db_min_connections: int = Field(
        default=1, ge=0, validation_alias=AliasChoices("DB_MIN_CONNECTIONS", "POOL_MIN_SIZE")
    )
    db_max_connections: int = Field(
        default=10, ge=1, validation_alias=AliasChoices("DB_MAX_CONNECTIONS", "POOL_SIZE")
    )
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
    db_command_timeout_ms: int = Field(default=0, ge=0, validation_alias="DB_COMMAND_TIMEOUT_MS")
    """Milliseconds a PostgreSQL statement may run before asyncpg cancels it and the call raises
    ``DatabaseUnavailableError`` (0: no limit). Bounds the wait on a stalled server or network; set it above
    your slowest statement (migrations and maintenance share the setting)."""
    db_statement_retry_attempts: int = Field(default=3, ge=0, le=100, validation_alias="DB_STATEMENT_RETRY_ATTEMPTS")
    """Retries of a statement outside a transaction whose connection was lost (reads, and writes that
    provably never reached the server); 0 turns it off. See ``datalayer.backends.retry``."""
    db_statement_retry_budget_ms: int = Field(default=5_000, ge=0, validation_alias="DB_STATEMENT_RETRY_BUDGET_MS")
    """Milliseconds after a statement's first failure past which no retry starts."""
    db_statement_retry_delay_ms: int = Field(default=50, ge=0, validation_alias="DB_STATEMENT_RETRY_DELAY_MS")
    """Milliseconds: the base of the retries' exponential backoff (the first retry is immediate)."""
    database_replica_urls: SecretStr | None = Field(default=None, validation_alias="DATABASE_REPLICA_URLS")
    """Comma-separated ``postgres://`` URLs of streaming read replicas: reads outside a transaction go to a
    healthy one (``datalayer.backends.replicas``)."""
    db_replica_max_lag_ms: int = Field(default=1_000, ge=0, validation_alias="DB_REPLICA_MAX_LAG_MS")
    """Milliseconds a replica may be behind the primary and still serve reads."""
    db_replica_check_interval_ms: int = Field(default=500, ge=10, validation_alias="DB_REPLICA_CHECK_INTERVAL_MS")
    """Milliseconds between two measures of every replica's lag and state."""
    db_pgbouncer: bool = Field(default=False, validation_alias="DB_PGBOUNCER")
    """Connect through PgBouncer in transaction pooling mode: no server-side named prepared statements
    (asyncpg's ``statement_cache_size=0``, also set by that URL option)."""
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
    log_partition_interval: Literal["day", "week", "month"] = Field(default="day",
                                                                    validation_alias="LOG_PARTITION_INTERVAL")
    """The span of each new ``system_logs`` partition (PostgreSQL; UTC, weeks from Monday)."""
    log_partitions_ahead: int = Field(default=7, ge=0, le=366, validation_alias="LOG_PARTITIONS_AHEAD")
    """How many intervals after the current one ``datalayer maintain`` keeps partitions ready for."""

    # SQLAlchemy-style names, in SECONDS as the seed documents state them ("Timeout: 30 seconds",
    # "Recycle: 1 hour" for POOL_TIMEOUT=30, POOL_RECYCLE=3600); they fill the _ms fields above unless
    # those are set under their own names.
    pool_timeout_s: float | None = Field(default=None, gt=0, validation_alias="POOL_TIMEOUT")
    """Seconds; sets ``db_pool_timeout_ms`` when ``DB_POOL_TIMEOUT`` is not set."""
    pool_recycle_s: float | None = Field(default=None, validation_alias="POOL_RECYCLE")
    """Seconds, -1 for never; sets ``db_idle_timeout_ms`` (asyncpg closes idle connections, its nearest
    equivalent of recycling) when ``DB_IDLE_TIMEOUT`` is not set."""

    redis_url: SecretStr | None = Field(default=None, validation_alias="REDIS_URL")
    redis_host: str | None = Field(default=None, validation_alias="REDIS_HOST")
    """With ``REDIS_URL`` unset, builds ``redis_url`` from ``REDIS_HOST``/``PORT``/``DB``/``PASSWORD``."""
    redis_port: int = Field(default=6379, ge=1, le=65535, validation_alias="REDIS_PORT")
    redis_db: int = Field(default=0, ge=0, validation_alias="REDIS_DB")
    redis_password: SecretStr | None = Field(default=None, validation_alias="REDIS_PASSWORD")

    environment: Environment = Field(default="development", validation_alias="DATALAYER_ENV")
    bcrypt_rounds: int = Field(default=12, ge=4, le=31, validation_alias="BCRYPT_ROUNDS")
    #: wraps stored models' encryption keys (AES-GCM); required only to store or read such keys
    key_wrapping_secret: SecretStr | None = Field(default=None, validation_alias="DATALAYER_KEY_WRAPPING_SECRET")

    # Read only when DATALAYER_ENV=test, where they replace the database settings above (the conventional
    # pytest names). Keyword arguments naming the database still win over them.
    test_database_url: SecretStr | None = Field(default=None, validation_alias="TEST_DATABASE_URL")
    test_db_host: str | None = Field(default=None, validation_alias="TEST_POSTGRES_HOST")
    test_db_port: int | None = Field(default=None, ge=1, le=65535, validation_alias="TEST_POSTGRES_PORT")
    test_db_name: str | None = Field(default=None, validation_alias="TEST_POSTGRES_DB")
    test_db_user: str | None = Field(default=None, validation_alias="TEST_POSTGRES_USER")
    test_db_password: SecretStr | None = Field(default=None, validation_alias="TEST_POSTGRES_PASSWORD")

    # An SSH tunnel to PostgreSQL (``datalayer.tunnel``, the ``ssh`` extra): with SSH_HOST set, get_context()
    # opens it first and the pool connects through its local end. Key-based authentication only.
    ssh_host: str | None = Field(default=None, validation_alias="SSH_HOST")
    ssh_port: int = Field(default=22, ge=1, le=65535, validation_alias="SSH_PORT")
    ssh_user: str | None = Field(default=None, validation_alias=AliasChoices("SSH_USER", "SSH_USERNAME"))
    ssh_key_path: str | None = Field(default=None, validation_alias="SSH_KEY_PATH")
    ssh_key_passphrase: SecretStr | None = Field(default=None, validation_alias="SSH_KEY_PASSPHRASE")
    ssh_password: SecretStr | None = Field(default=None, validation_alias="SSH_PASSWORD")
    """Never used: set with SSH_HOST, opening the tunnel raises ``ConfigurationError`` (keys only)."""
    ssh_known_hosts: str = Field(default="~/.ssh/known_hosts", validation_alias="SSH_KNOWN_HOSTS")
    ssh_strict_host_key_checking: bool = Field(default=True, validation_alias="SSH_STRICT_HOST_KEY_CHECKING")
    """Check the server's host key against SSH_KNOWN_HOSTS; ``false`` is for development only."""
    ssh_max_retries: int = Field(default=3, ge=0, le=1000, validation_alias="SSH_MAX_RETRIES")
    ssh_retry_delay_ms: int = Field(default=1_000, ge=0,
                                    validation_alias=AliasChoices("SSH_RETRY_DELAY", "SSH_RETRY_DELAY_MS"))
    ssh_health_check_interval_ms: int = Field(
        default=30_000, gt=0, validation_alias=AliasChoices("SSH_HEALTH_CHECK_INTERVAL", "SSH_HEALTH_CHECK_INTERVAL_MS")
    )
    ssh_connect_timeout_ms: int = Field(default=10_000, gt=0,
                                        validation_alias=AliasChoices("SSH_CONNECT_TIMEOUT", "SSH_CONNECT_TIMEOUT_MS"))
    ssh_remote_db_host: str | None = Field(default=None, validation_alias="SSH_REMOTE_DB_HOST")
    """The database's host as the SSH server sees it; default the database's own host (127.0.0.1 unless set)."""
    ssh_remote_db_port: int | None = Field(default=None, ge=1, le=65535, validation_alias="SSH_REMOTE_DB_PORT")
    """Default: the database's port."""
    ssh_local_port: int = Field(default=0, ge=0, le=65535, validation_alias="SSH_LOCAL_PORT")
    """The tunnel's local port on 127.0.0.1; 0 picks a free one (kept across reconnects)."""

    _database_url_source: str = PrivateAttr(default="DATABASE_URL")

    def __init__(self, **values: Any) -> None:
        problem = None
        try:
            super().__init__(**values)
        except PydanticValidationError as exc:
            try:
                problem = _explain(type(self), exc, values)
            except Exception:  # noqa: BLE001 - a bug here must not surface pydantic's error (raw values)
                names = ", ".join(str(error["loc"][0]) for error in exc.errors() if error["loc"])
                problem = f"invalid value for {names or 'the settings'}; see README Configuration"
        if problem is not None:
            # raised outside the except block and from None: the pydantic error, which holds the raw
            # input values (passwords included), is neither the __cause__ nor the __context__
            raise ConfigurationError(problem) from None
        self._apply_aliases(explicit={key for key in values if not key.startswith("_")})

    def _apply_aliases(self, explicit: set[str]) -> None:
        """Fill what the alias-only settings imply (seconds -> ms, REDIS_* -> URL, TEST_* in tests)."""
        given = self.model_fields_set
        if self.pool_timeout_s is not None and "db_pool_timeout_ms" not in given:
            self.db_pool_timeout_ms = max(1, math.ceil(self.pool_timeout_s * 1000))
        if self.pool_recycle_s is not None and "db_idle_timeout_ms" not in given:
            self.db_idle_timeout_ms = 0 if self.pool_recycle_s == -1 else round(self.pool_recycle_s * 1000)
        if self.redis_url is None and self.redis_host:
            host = f"[{self.redis_host}]" if ":" in self.redis_host else self.redis_host
            password = self.redis_password.get_secret_value() if self.redis_password else ""
            auth = f":{quote(password, safe='')}@" if password else ""
            self.redis_url = SecretStr(f"redis://{auth}{host}:{self.redis_port}/{self.redis_db}")
        if self.environment == "test" and not explicit & _aliases_of(type(self), _DATABASE_FIELDS):
            if self.test_database_url is not None:
                self.database_url = self.test_database_url
                self._database_url_source = "TEST_DATABASE_URL"
            else:
                for test_field, field in _TEST_PARTS.items():
                    if (value := getattr(self, test_field)) is not None:
                        setattr(self, field, value)
                if self.test_db_name is not None:  # it names the test database: the parts win over a URL
                    self.database_url = None

    @model_validator(mode="before")
    @classmethod
    def _test_names_only_in_tests(cls, data: Any) -> Any:
        if isinstance(data, dict):
            environment = data.get("DATALAYER_ENV", "development")
            if not (isinstance(environment, str) and environment.strip().lower() == "test"):
                data = {key: value for key, value in data.items() if key not in _TEST_ONLY}
        return data

    @field_validator("environment", mode="before")
    @classmethod
    def _known_environment(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower()
            if value not in ("development", "test", "production"):
                raise ValueError("unknown environment")
        return value

    @field_validator("db_port", "redis_port", "test_db_port", mode="before")
    @classmethod
    def _link_port(cls, value: object) -> object:
        return _port(value)

    @field_validator("pool_recycle_s")
    @classmethod
    def _recycle_never_or_positive(cls, value: float | None) -> float | None:
        if value is not None and value < 0 and value != -1:
            raise ValueError("only -1 may be negative")
        return value

    @field_validator("redis_url", "database_replica_urls", mode="before")
    @classmethod
    def _empty_redis_url_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value  # REDIS_URL= in a .env file

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip().lower().startswith(_REDIS_SCHEMES):
            raise ValueError("unsupported scheme")
        if value is not None and "#" in value.get_secret_value():
            raise ValueError("'#' starts a URL fragment, which would be dropped: percent-encode it as %23")
        return value

    @field_validator("db_max_connections")
    @classmethod
    def _max_not_below_min(cls, value: int, info: ValidationInfo) -> int:
        minimum = info.data.get("db_min_connections", 1)
        if value < minimum:
            raise PydanticCustomError("pool_max_below_min", "below the minimum", {"minimum": minimum})
        return value

    @cached_property
    def target(self) -> DatabaseTarget:
        """The parsed connection target: ``DATABASE_URL`` first, then ``DB_*``, else the SQLite file.

        In production the SQLite fallback is refused: a database must be configured (an explicit
        ``DATABASE_URL=sqlite:///...`` is allowed).
        """
        if self.database_url is not None:
            return parse_database_url(self.database_url.get_secret_value(), source=self._database_url_source)
        if self.db_name:
            return DatabaseTarget(
                "postgres", host=self.db_host, port=self.db_port, database=self.db_name,
                user=self.db_user, password=self.db_password,
            )
        if self.is_production:
            raise ConfigurationError(
                "DATALAYER_ENV=production needs a database: set DATABASE_URL or DB_HOST/DB_NAME "
                "(POSTGRES_HOST/POSTGRES_DB); the SQLite fallback is for development and test only "
                "(for SQLite in production set DATABASE_URL=sqlite:///path)"
            )
        return DatabaseTarget("sqlite", database=self.sqlite_path)

    @cached_property
    def replica_targets(self) -> list[DatabaseTarget]:
        """The read replicas of ``DATABASE_REPLICA_URLS`` (``[]`` when unset); ``ConfigurationError`` if malformed."""
        if self.database_replica_urls is None:
            return []
        return parse_replica_urls(self.database_replica_urls.get_secret_value())

    @property
    def is_production(self) -> bool:
        return self.environment == "production"


def _aliases(field: Any) -> list[str]:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [choice for choice in alias.choices if isinstance(choice, str)]
    return [alias] if isinstance(alias, str) else []


def _aliases_of(cls: type[Settings], fields: tuple[str, ...]) -> set[str]:
    return {alias for name in fields for alias in _aliases(cls.model_fields[name])}


def _dotenv(cls: type[Settings], values: dict[str, Any]) -> dict[str, str]:
    """The ``.env`` variables pydantic-settings read (upper-cased names), for naming the one that was used."""
    files = values.get("_env_file", cls.model_config.get("env_file"))
    if files is None:
        return {}
    from dotenv import dotenv_values

    found: dict[str, str] = {}
    for path in [files] if isinstance(files, (str, os.PathLike)) else list(files):
        if os.path.isfile(path):
            encoding = values.get("_env_file_encoding") or cls.model_config.get("env_file_encoding")
            for key, value in dotenv_values(path, encoding=encoding).items():
                if value is not None:
                    found.setdefault(key.upper(), value)
    return found


def _variable_used(cls: type[Settings], field_name: str, key: str, values: dict[str, Any]) -> str:
    """The name a value came from: its keyword argument, else the first alias set in the environment or .env.

    pydantic-settings files an environment value under the field's first alias whichever alias it found,
    so the error's location alone cannot tell ``POOL_SIZE`` from ``DB_MAX_CONNECTIONS``.
    """
    if key in values:
        return key
    aliases = _aliases(cls.model_fields[field_name])
    environ = {name.upper() for name in os.environ}
    for names in (environ, _dotenv(cls, values)):
        for alias in aliases:
            if alias.upper() in names:
                return alias
    return key


def _expected(field_name: str, field: Any) -> str:
    """The form a field's value must have, e.g. ``a whole number of milliseconds >= 0``."""
    if field_name in _FORMS:
        return _FORMS[field_name]
    annotation = field.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    if annotation is bool:
        return "true or false"
    if annotation not in (int, float):
        return "text"
    unit = {"ms": " of milliseconds", "s": " of seconds"}.get(field_name.rpartition("_")[2], "")
    form = ("a whole number" if annotation is int else "a number") + unit
    bounds = {name: getattr(item, name) for item in field.metadata for name in ("ge", "gt", "le", "lt")
              if isinstance(item, annotated_types.BaseMetadata) and hasattr(item, name)}
    if "ge" in bounds and "le" in bounds:
        return f"{form} from {bounds['ge']} to {bounds['le']}"
    signs = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
    limits = [f"{sign} {bounds[name]}" for name, sign in signs if name in bounds]
    return " ".join([form, " and ".join(limits)]) if limits else form


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _explain(cls: type[Settings], exc: PydanticValidationError, values: dict[str, Any]) -> str:
    """One line naming each bad variable, its expected form and (unless secret) the value it had."""
    by_alias = {alias: name for name, field in cls.model_fields.items() for alias in _aliases(field)}
    problems: list[str] = []
    for error in exc.errors(include_url=False, include_context=True, include_input=True):
        key = str(error["loc"][0]) if error["loc"] else ""
        if error["type"] == "pool_max_below_min":
            problems.append(_pool_problem(cls, error, values))
            continue
        field_name = by_alias.get(key)
        if field_name is None:  # not tied to one field; our own messages hold no input values
            problems.append(str(error["msg"]).removeprefix("Value error, "))
            continue
        variable = _variable_used(cls, field_name, key, values)
        expected = _expected(field_name, cls.model_fields[field_name])
        if field_name in _SECRET_FIELDS:
            problems.append(f"{variable} must be {expected} (the value is not shown: it may hold a password)")
            continue
        message = f"{variable} must be {expected}, got {_shown(error['input'])}"
        if error["type"] == "value_error":
            message += f" ({str(error['msg']).removeprefix('Value error, ')})"
        problems.append(message)
    return "; ".join(problems)


def _pool_problem(cls: type[Settings], error: Any, values: dict[str, Any]) -> str:
    """The pool's maximum is below its minimum: name both variables and both values (a default one too)."""

    def named(field_name: str) -> str | None:
        """The variable that set ``field_name`` (keyword, environment or .env), ``None`` for its default."""
        aliases = _aliases(cls.model_fields[field_name])
        given = next((alias for alias in aliases if alias in values), None)
        if given is not None:
            return given
        used = _variable_used(cls, field_name, aliases[0], values)
        found = {name.upper() for name in os.environ} | set(_dotenv(cls, values))
        return used if used.upper() in found else None

    minimum, maximum = error["ctx"]["minimum"], error["input"]
    min_aliases = _aliases(cls.model_fields["db_min_connections"])
    max_aliases = _aliases(cls.model_fields["db_max_connections"])
    min_var = named("db_min_connections") or min_aliases[0]
    max_var = named("db_max_connections")
    if max_var is None:
        return (f"{min_var}={minimum} is above the pool's maximum, {max_aliases[0]} (or {max_aliases[1]}), "
                f"which is {maximum} by default; lower {min_var} or set {max_aliases[0]} to {minimum} or more")
    return (f"{max_var} must be >= {min_var} ({minimum}), got {_shown(maximum)}; the pool cannot keep more "
            f"connections open than its maximum")
