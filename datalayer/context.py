"""``await get_context()``: one ``DataContext`` per process holding a manager for every model."""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.context import TortoiseContext
from tortoise.models import Model

from datalayer.actor import acting_as, correlation
from datalayer.cache import Cache, apply_read_through, build_cache
from datalayer.connection import close_database, open_database
from datalayer.errors import ConfigurationError, DataLayerError
from datalayer.health.context_api import ObservabilityMixin
from datalayer.managers import ModelManager
from datalayer.managers.registry import default_manager_name, manager_class_for
from datalayer.managers.registry import version as registry_version
from datalayer.project import Project, load_project
from datalayer.raw import execute_raw
from datalayer.settings import DatabaseTarget, Settings
from datalayer.transactions import TransactionBlock, on_commit, transactional
from datalayer.tunnel import close_tunnel, open_tunnel

if TYPE_CHECKING:  # the packs' managers, for the checker only: importing them registers them
    from datalayer.agent.managers import (
        CodeFileManager,
        ConfigurationManager,
        ProjectAnalysisManager,
        TaskManager,
    )
    from datalayer.agent.models import ParsedRequest
    from datalayer.analysis.managers import AnalysisFileManager, SystemLogManager
    from datalayer.analysis.models import DataAnalysis, ToolGeneration
    from datalayer.characters.managers import CharacterManager, CharacterTemplateManager
    from datalayer.core.credentials import ApiKeyManager, SessionManager
    from datalayer.core.managers import AuditLogManager, UserManager
    from datalayer.core.models import CacheEntry
    from datalayer.ml.managers import (
        EndpointConfigManager,
        MLModelManager,
        ModelUsageManager,
        StoredModelManager,
    )

ModelT = TypeVar("ModelT", bound=Model)
log = logging.getLogger("datalayer.context")


class PackManagers:
    """The packs' managers by name, as a type checker sees them: ``ctx.users`` is a ``UserManager``.

    Declarations only. At run time ``__getattr__`` serves them (and an app's own, as ``ModelManager[Any]``);
    a manager of a pack that is not loaded raises ``AttributeError`` naming the managers there are.
    """

    if TYPE_CHECKING:
        # core
        users: UserManager
        sessions: SessionManager
        api_keys: ApiKeyManager
        audit_logs: AuditLogManager
        cache_entries: ModelManager[CacheEntry]
        # agent
        tasks: TaskManager
        configurations: ConfigurationManager
        code_files: CodeFileManager
        project_analyses: ProjectAnalysisManager
        parsed_requests: ModelManager[ParsedRequest]
        # analysis
        data_analyses: ModelManager[DataAnalysis]
        analysis_files: AnalysisFileManager
        tool_generations: ModelManager[ToolGeneration]
        system_logs: SystemLogManager
        # ml
        ml_models: MLModelManager
        stored_models: StoredModelManager
        endpoint_configs: EndpointConfigManager
        model_usage: ModelUsageManager
        # characters
        characters: CharacterManager
        character_templates: CharacterTemplateManager


class TransactionScope(PackManagers):
    """What ``async with ctx.transaction() as tx`` yields: the context's managers, all on one connection.

    Usable only while its block runs: afterwards ``tx.manager(...)`` raises ``TransactionClosedError``
    (it would otherwise write outside any transaction).
    """

    def __init__(self, context: DataContext, connection: BaseDBAsyncClient) -> None:
        self.context = context
        self.connection = connection

    def _check_open(self) -> None:
        check_open = getattr(self.connection, "check_open", None)  # datalayer's engines; Tortoise's have none
        if check_open is not None:
            check_open()

    def manager(self, model: type[ModelT]) -> ModelManager[ModelT]:
        self._check_open()
        return self.context.manager(model)

    on_commit = staticmethod(on_commit)

    async def raw(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """``DataContext.raw`` inside this transaction."""
        self._check_open()
        return await execute_raw(sql, params)

    def __getattr__(self, name: str) -> ModelManager[Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        self._check_open()
        return getattr(self.context, name)


class DataContext(PackManagers, ObservabilityMixin):
    """Managers by model (``ctx.manager(Model)``) and by name (``ctx.users``), transactions, and the actor."""

    acting_as = staticmethod(acting_as)
    correlation = staticmethod(correlation)
    transactional = staticmethod(transactional)

    def __init__(self, settings: Settings, tortoise: TortoiseContext, project: Project | None = None) -> None:
        self.settings = settings
        self.project = project or load_project()
        self.tortoise = tortoise
        self.closed = False
        self.opened_at = time.monotonic()
        self._managers: dict[type[Model], ModelManager[Any]] = {}
        loaded = tortoise.apps.get_models_iterable()  # type: ignore[union-attr]  # set: the database is open
        self._models = [m for m in loaded if not m.__module__.startswith("aerich")]
        check_collisions(self._models)
        self._names_cache: tuple[int, dict[str, type[Model]]] = (-1, {})
        self.cache: Cache = build_cache(settings)  # Redis when REDIS_URL is set, else in-process

    @property
    def _names(self) -> dict[str, type[Model]]:
        """Manager name -> model, rebuilt when a manager subclass registers after the context opened."""
        version, names = self._names_cache
        if version != registry_version():
            names = manager_names(self._models)
            self._names_cache = (registry_version(), names)
        return names

    @property
    def target(self) -> DatabaseTarget:
        return self.settings.target

    @property
    def models(self) -> list[type[Model]]:
        return list(self._models)

    def manager(self, model: type[ModelT]) -> ModelManager[ModelT]:
        """The manager for ``model`` (its registered subclass, or a generic ``ModelManager``)."""
        manager = self._managers.get(model)
        manager_class = manager_class_for(model) or ModelManager
        if manager is None or type(manager) is not manager_class:
            if model not in self._models:
                raise ConfigurationError(
                    f"{model.__name__} is not loaded; pass its module to get_context(models=[...])"
                )
            manager = self._managers[model] = manager_class(model)
            apply_read_through(manager, self.cache)
            manager.settings = self.settings  # type: ignore[attr-defined]  # knobs (bcrypt cost) read here
        return manager

    def use_cache(self, cache: Cache) -> Cache:
        """Swap ``ctx.cache`` (re-wiring read-through on every manager); returns the previous cache."""
        previous, self.cache = self.cache, cache
        for manager in self._managers.values():
            apply_read_through(manager, cache)
        return previous

    def managers(self) -> dict[str, ModelManager[Any]]:
        return {name: self.manager(model) for name, model in self._names.items()}

    def __getattr__(self, name: str) -> ModelManager[Any]:
        if "_models" not in self.__dict__:  # not initialised yet (copy, unpickle)
            raise AttributeError(name)
        names = self._names
        if name in names:
            return self.manager(names[name])
        raise AttributeError(f"DataContext has no manager {name!r}; known: {', '.join(sorted(names))}")

    def transaction(self, *, retry: int = 0) -> TransactionBlock[TransactionScope]:
        """One transaction for every manager call inside; nested blocks are savepoints.

        Tasks sharing the block (``asyncio.gather`` of ``tx.manager(M).create(...)``) are served one
        statement or nested block at a time. Work still running when the block exits fails with
        ``TransactionClosedError`` and writes nothing: await it inside the block.

        ``retry=N`` reruns a whole function instead of a block: ``@ctx.transaction(retry=3)`` on an
        ``async def``, or ``await ctx.transaction(retry=3).run(func, *args)``; see ``TransactionBlock``
        for what is rerun (serialization failures, deadlocks, connections lost before the ``COMMIT``).
        """
        return TransactionBlock(lambda connection: TransactionScope(self, connection), retry)

    async def raw(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one raw SQL statement and return its rows as dicts (see ``datalayer.raw.execute_raw``).

        ``$1, $2, ...`` placeholders on both engines; inside ``ctx.transaction()`` it runs in the transaction.
        Session state the SQL changes lasts until the call (or its transaction) ends.
        """
        return await execute_raw(sql, params)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<DataContext {state} {self.target.describe()} models={len(self._names)}>"


def manager_names(models: Sequence[type[Model]]) -> dict[str, type[Model]]:
    """Manager name (``ctx.<name>``) -> model."""
    return {manager_name(m): m for m in models}


def manager_name(model: type[Model]) -> str:
    """The name the context serves ``model``'s manager under: its subclass's ``name``, else the plural."""
    return (manager_class_for(model) or ModelManager).name or default_manager_name(model)


def check_collisions(models: Sequence[type[Model]]) -> None:
    """An app's model may not take a table or a manager name another loaded model has (a pack's ``users``).

    Raises:
        ConfigurationError: naming both models and the fix (``Meta.table``, or a manager with ``name = ...``).
    """
    seen_tables: dict[str, type[Model]] = {}
    seen_names: dict[str, type[Model]] = {}
    for model in models:
        table = model._meta.db_table
        if table in seen_tables:
            other = seen_tables[table]
            raise ConfigurationError(f"{model._meta.full_name} and {other._meta.full_name} both use table {table!r}; "
                                     "give your model another Meta.table")
        seen_tables[table] = model
        name = manager_name(model)
        if name in seen_names:
            other = seen_names[name]
            raise ConfigurationError(f"{model._meta.full_name} and {other._meta.full_name} both answer to ctx.{name}; "
                                     "rename your model, or give its ModelManager subclass name = '...'")
        seen_names[name] = model


_current: DataContext | None = None
_opening: asyncio.Task[DataContext] | None = None


async def _nothing() -> None:
    """A close step with nothing to close."""


async def _open(settings: Settings, project: Project, generate_schemas: bool, migrate: bool) -> DataContext:
    """With SSH_HOST set, the tunnel first: ``settings`` then point at its local end (pool and migrations)."""
    tunnelled = await open_tunnel(settings) is not None
    try:
        return await _open_database(settings, project, generate_schemas, migrate)
    except BaseException:
        if tunnelled:
            await close_tunnel()
        raise


async def _open_database(settings: Settings, project: Project, generate_schemas: bool, migrate: bool) -> DataContext:
    if migrate:
        from datalayer.migrations import upgrade  # lazy: only apps that migrate at start load aerich

        await upgrade(settings, project, require_app_history=not generate_schemas)
    for pack in project.packs:  # importing a pack's managers registers them (ctx.users, ctx.tasks, ...)
        importlib.import_module(pack.managers_module)
    tortoise = await open_database(settings, project, generate_schemas=generate_schemas)
    try:
        return DataContext(settings, tortoise, project)
    except ConfigurationError:
        await close_database(settings)
        raise


def _conflicts(context: DataContext, settings: Settings | None, models: Sequence[str] | None,
               apps: Sequence[str] | str | None) -> str | None:
    """What the caller asked for explicitly that the open context does not have (``None``: nothing)."""
    if settings is not None and settings is not context.settings and settings.model_dump() != context.settings.model_dump():
        return f"other settings ({settings.target.describe()})"
    if models is not None or apps is not None:
        wanted = load_project(models, apps)
        if models is not None and wanted.models != context.project.models:
            return f"other models ({', '.join(wanted.models) or 'none'})"
        if apps is not None and wanted.pack_labels != context.project.pack_labels:
            return f"other packs ({', '.join(wanted.pack_labels)})"
    return None


async def get_context(
    *,
    settings: Settings | None = None,
    models: Sequence[str] | None = None,
    apps: Sequence[str] | str | None = None,
    generate_schemas: bool = False,
    migrate: bool = False,
) -> DataContext:
    """The process's ``DataContext``, opened on first call; concurrent first callers share one init.

    One context per process: asking again returns it, and asking with other settings, models or apps while
    it is open raises ``ConfigurationError`` (``close_context()`` first). What is loaded comes from the app's
    ``[tool.datalayer]`` (see ``datalayer.project``), the environment, then these arguments.

    Args:
        settings: defaults to ``Settings()`` (environment and ``.env``).
        models: the app's own model modules (its Tortoise app, label ``models`` unless configured);
            default ``DATALAYER_MODELS`` or ``[tool.datalayer] models``.
        apps: datalayer's packs to load (``["core", "ml"]``; ``core`` always); default every pack
            (``DATALAYER_APPS``).
        generate_schemas: create missing tables and indexes directly (tests, quick starts).
        migrate: apply every loaded app's pending migrations first (``datalayer.migrations.upgrade``).
    Raises:
        ConfigurationError: a context with other settings, models or apps is open; an unknown pack.
        DatabaseUnavailableError: the database (or, with ``SSH_HOST`` set, the SSH server: its tunnel opens
            first, see ``datalayer.tunnel``) did not answer after the configured retries.
    """
    global _current, _opening
    if _current is not None and not _current.closed:
        conflict = _conflicts(_current, settings, models, apps)
        if conflict:
            raise ConfigurationError(
                f"a context is already open on {_current.target.describe()}; this call asks for {conflict}. "
                "One context per process: call close_context() first, or reuse the open one"
            )
        return _current
    project = load_project(models, apps)
    if _opening is None or _opening.get_loop() is not asyncio.get_running_loop():
        _opening = asyncio.get_running_loop().create_task(
            _open(settings or Settings(), project, generate_schemas, migrate)
        )
    opening = _opening
    try:
        _current = await asyncio.shield(opening)
        return _current
    finally:
        if opening.done() and _opening is opening:
            _opening = None


async def close_context() -> None:
    """Close the health monitor, the cache, every database connection, then the SSH tunnel (``SSH_HOST``);
    a later ``get_context()`` opens again.

    Each step runs even if an earlier one failed, so the pool is always closed.

    Raises:
        DataLayerError: a step failed (after every other step ran); the message names the steps.
    """
    global _current
    context, _current = _current, None
    if context is None or context.closed:
        return
    context.closed = True
    failed: list[str] = []
    for step, close in (("health monitor", context._close_monitoring), ("cache", context.cache.close),
                        ("database", lambda: close_database(context.settings)),
                        ("SSH tunnel", close_tunnel if context.settings.ssh_host else _nothing)):
        try:
            await close()
        except Exception as exc:
            log.warning("close_context: closing the %s failed", step, exc_info=True)
            failed.append(f"{step} ({exc.__class__.__name__}: {exc})")
    if failed:
        raise DataLayerError(f"close_context closed everything it could, but closing failed for: {'; '.join(failed)}")
