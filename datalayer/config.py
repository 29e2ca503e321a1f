"""The Tortoise configuration, built from ``Settings``; ``TORTOISE_ORM`` is what aerich loads."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from datalayer.errors import ConfigurationError
from datalayer.project import Project, load_project
from datalayer.settings import DatabaseTarget, Settings

CONNECTION_NAME = "default"


class _Password:
    """The password as asyncpg's password callable: no string of it in a config dict, a log or a repr.

    Tortoise logs the connection config at DEBUG with a third of a string password shown; asyncpg calls this
    for each new connection instead.
    """

    __slots__ = ("_secret",)

    def __init__(self, secret: SecretStr) -> None:
        self._secret = secret

    def __call__(self) -> str:
        return self._secret.get_secret_value()

    def __repr__(self) -> str:
        return "'**********'"


def connection_config(settings: Settings, target: DatabaseTarget | None = None, *, replicas: bool = True) -> dict[str, Any]:
    """Dict-form credentials (not a URL), so ``ssl`` keeps asyncpg's meaning and the password stays out of strings.

    ``replicas=False`` leaves ``DATABASE_REPLICA_URLS`` out: every read on the primary (migrations).
    """
    target = target or settings.target
    if replicas and settings.replica_targets and not target.is_postgres:
        raise ConfigurationError("DATABASE_REPLICA_URLS lists PostgreSQL read replicas, but the database is SQLite: "
                                 "set DATABASE_URL to the PostgreSQL primary, or unset DATABASE_REPLICA_URLS")
    if not target.is_postgres:
        return {"engine": "datalayer.backends.sqlite",
                "credentials": {"file_path": target.database, **_monitoring_credentials(settings)}}
    credentials: dict[str, Any] = {
        **_server(target),
        "minsize": settings.db_min_connections,
        "maxsize": settings.db_max_connections,
        "max_inactive_connection_lifetime": settings.db_idle_timeout_ms / 1000,
        "timeout": settings.db_connection_timeout_ms / 1000,
        "server_settings": {"application_name": target.options.get("application_name", "datalayer")},
        "reset_on_release": settings.db_reset_on_release,
        "command_timeout": settings.db_command_timeout_ms / 1000 if settings.db_command_timeout_ms else None,
        "statement_retry": (settings.db_statement_retry_attempts, settings.db_statement_retry_budget_ms / 1000,
                            settings.db_statement_retry_delay_ms / 1000),
    }
    if "schema" in target.options:
        credentials["schema"] = target.options["schema"]
    if settings.db_pgbouncer or "statement_cache_size" in target.options:
        # PgBouncer's transaction pooling: no named prepared statements (asyncpg then parses every statement
        # unnamed, in the same round trip as its execution)
        credentials["statement_cache_size"] = 0 if settings.db_pgbouncer else int(target.options["statement_cache_size"])
    if replicas and settings.replica_targets:
        credentials["replicas"] = [_server(replica) for replica in settings.replica_targets]
        credentials["replica_checks"] = (settings.db_replica_max_lag_ms, settings.db_replica_check_interval_ms)
    credentials.update(_monitoring_credentials(settings))
    return {"engine": "datalayer.backends.postgres", "credentials": credentials}


def _server(target: DatabaseTarget) -> dict[str, Any]:
    """Where and as whom asyncpg connects: host and port (lists for a multi-host target), the session
    attributes a host must have, user, password (as a callable), database and TLS."""
    server: dict[str, Any] = {
        **target.address(),
        "user": target.user,
        "password": _Password(target.password) if target.password else None,
        "database": target.database,
    }
    if target.ssl:
        server["ssl"] = target.ssl
    return server


def _monitoring_credentials(settings: Settings) -> dict[str, Any]:
    """Options datalayer's instrumented engines take out of the credentials (see ``datalayer.backends``)."""
    return {
        "acquire_timeout": settings.db_pool_timeout_ms / 1000,
        "slow_query_ms": settings.db_slow_query_ms,
        "log_statements": settings.db_logging,
    }


def tortoise_config(
    settings: Settings | None = None,
    project: Project | None = None,
    *,
    with_aerich: bool = False,
    target: DatabaseTarget | None = None,
) -> dict[str, Any]:
    """The Tortoise config: one app per pack (``core``, ``agent``, ...) and one for the app's own models.

    ``with_aerich`` lists ``aerich.models`` in ``core`` (the migration commands need aerich's table) and reads
    on the primary only: a lagging replica would show an applied migration as pending.
    """
    settings = settings or Settings()
    project = project or load_project()
    apps: dict[str, dict[str, Any]] = {}
    for pack in project.packs:
        modules = [pack.models_module, *(["aerich.models"] if with_aerich and pack.label == "core" else [])]
        apps[pack.label] = {"models": modules, "default_connection": CONNECTION_NAME}
    if project.models:
        apps[project.label] = {"models": list(project.models), "default_connection": CONNECTION_NAME}
    return {
        "connections": {CONNECTION_NAME: connection_config(settings, target, replicas=not with_aerich)},
        "apps": apps,
        "use_tz": True,
        "timezone": "UTC",
    }


def __getattr__(name: str) -> Any:
    """``datalayer.config.TORTOISE_ORM`` is computed from the environment when aerich asks for it."""
    if name == "TORTOISE_ORM":
        project = load_project()
        project.importable()
        return tortoise_config(Settings(), project, with_aerich=True)
    raise AttributeError(name)
