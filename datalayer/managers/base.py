"""``ModelManager[ModelT]``: the generic async operations every model gets.

Every write runs in a transaction (a savepoint inside a caller's), adds its ``AuditLog`` rows there, keeps
``updated_at``/``version`` right, and tells write listeners (the cache) only after the commit.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Generic, Literal, TypeVar, overload

from pydantic import BaseModel
from tortoise import timezone
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.connection import get_connection
from tortoise.manager import Manager
from tortoise.models import Model
from tortoise.queryset import QuerySet

from datalayer.actor import current_actor
from datalayer.config import CONNECTION_NAME
from datalayer.core.audit_log import AuditAction
from datalayer.errors import ConcurrencyError, ConflictError, NotFoundError, ValidationError, shown
from datalayer.managers import auditing, pg_create, pg_pages, pg_set_writes, pg_update, registry
from datalayer.managers.bulk import Returning, SourceFailed, insert_created
from datalayer.managers.by_key import fetch_by_key
from datalayer.managers.domain_rules import DomainRules
from datalayer.managers.filters import check_flags, checked_filters, filter_q, search_q
from datalayer.managers.pagination import (
    TotalKind,
)
from datalayer.managers.paging import Paging
from datalayer.managers.set_writes import SetWrites
from datalayer.managers.validation import validate_input
from datalayer.schema import LiveUnique
from datalayer.transactions import in_transaction_block, on_commit, transaction
from datalayer.translate import translated

ModelT = TypeVar("ModelT", bound=Model)
T = TypeVar("T")
Input = Mapping[str, Any] | BaseModel
BulkRows = Iterable[Input] | AsyncIterable[Input]
WriteListener = Callable[["ModelManager[Any]", list[Any]], Awaitable[object]]
MembershipListener = Callable[["ModelManager[Any]"], Awaitable[object]]
#: models whose ``guarded_fields`` the current task may write (inside a manager's ``domain_write()``)
class ModelManager(DomainRules, SetWrites, Paging[ModelT], Generic[ModelT]):
    """Create, read, page, update, soft delete, restore and bulk work for one model.

    Subclass with ``model = MyModel`` to add domain methods; the subclass registers itself and the
    context serves it under ``name`` (default: plural snake case of the model).
    """

    model: type[ModelT]
    """The model this manager serves (a subclass sets it at class level: ``model = Task``)."""
    name: ClassVar[str | None] = None
    max_page_size: ClassVar[int] = 100
    bulk_batch_size: ClassVar[int] = 5000
    """Rows per statement of ``bulk_create`` and of writes by filter (``update_many``, ``delete_many``...)."""
    one_statement_writes: bool = True
    """On PostgreSQL, writes of this model take one statement (per batch) where they can; False keeps every
    write on the generic path (lock, write and audit row by row), as on SQLite."""
    page_total: ClassVar[TotalKind | None] = None
    """``find_many``'s default total: ``"exact"``, ``"estimated"`` or ``"none"``; None: the model's
    ``page_total`` attribute if it has one, else ``"exact"``."""

    def __init__(self, model: type[ModelT] | None = None) -> None:
        if model is not None:
            self.model = model
        if getattr(self, "model", None) is None:
            raise TypeError("ModelManager needs a model: ModelManager(MyModel) or a subclass with model = ...")
        self._label = self.model.__name__
        self._soft = "deleted_at" in self.model._meta.fields_map
        self._versioned = "version" in self.model._meta.fields_map
        self._write_listeners: list[WriteListener] = []
        self._membership_listeners: list[MembershipListener] = []
        self._pg_update_ok = pg_update.supported(self.model)
        self._pg_create_ok = pg_create.supported(self.model)
        self._init_domain_rules()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "model" in cls.__dict__:
            registry.register(cls)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} for {self._label}>"

    # ----------------------------------------------------------------- plumbing

    def add_write_listener(self, listener: WriteListener) -> None:
        """``listener(manager, ids)`` runs after every committed write through this manager."""
        self._write_listeners.append(listener)

    def add_membership_listener(self, listener: MembershipListener) -> None:
        """``listener(manager)`` runs after every committed write through this manager that added or removed
        rows, live or deleted (create, bulk, delete, restore, and their ``_many`` forms; not updates), after
        the write listeners."""
        self._membership_listeners.append(listener)

    async def _written(self, ids: Sequence[Any], *, membership: bool = False) -> None:
        """Tell the listeners, once committed, that rows ``ids`` were written; with ``membership``, that rows
        were added or removed (which changes counts)."""
        membership = membership and bool(self._membership_listeners)
        if not self._write_listeners and not membership:
            return
        ids = list(ids)

        async def notify() -> None:
            for listener in self._write_listeners:
                await listener(self, ids)
            if membership:
                for changed in self._membership_listeners:
                    await changed(self)

        await on_commit(notify)

    @property
    def _all_objects(self) -> Manager:
        """``model.all_objects``: every row, deleted ones too (soft-deletable models only)."""
        return self.model.all_objects  # type: ignore[attr-defined]  # added by SoftDeleteMixin

    def query(self, *, include_deleted: bool = False, only_deleted: bool = False) -> QuerySet[ModelT]:
        """A Tortoise queryset of live rows (or deleted ones when asked), for domain methods to refine."""
        if not self._soft:
            return self.model.all()
        if only_deleted:
            return self._all_objects.filter(deleted_at__isnull=False)
        return self._all_objects.all() if include_deleted else self.model.all()

    def _key(self, key: Any) -> Any:
        """Check a primary key's type up front: a bad id is a ``ValidationError``, not a driver error."""
        pk_field = self.model._meta.pk
        if isinstance(pk_field.field_type, type) and issubclass(pk_field.field_type, uuid.UUID):
            if isinstance(key, uuid.UUID):
                return key
            try:
                return uuid.UUID(str(key))
            except (ValueError, RecursionError):  # str() of a huge int or of deeply nested lists fails too
                raise ValidationError({"id": f"expected a UUID, got {shown(key)}"}, model=self._label) from None
        return key

    def _filtered(
        self, filters: Mapping[str, Any] | None, search: str | None, include_deleted: bool, only_deleted: bool
    ) -> QuerySet[ModelT]:
        check_flags(self.model, include_deleted=include_deleted, only_deleted=only_deleted)
        queryset = self.query(include_deleted=include_deleted, only_deleted=only_deleted)
        if (where := filter_q(self.model, filters)) is not None:
            queryset = queryset.filter(where)
        if (q := search_q(self.model, search)) is not None:
            queryset = queryset.filter(q)
        return queryset

    # ------------------------------------------------------------------- reads

    async def get(self, key: Any, *, include_deleted: bool = False) -> ModelT:
        """The live row with this id; ``NotFoundError`` if missing or soft-deleted."""
        found = await self.find(key, include_deleted=include_deleted)
        if found is None:
            raise NotFoundError(self._label, key)
        return found

    async def find(self, key: Any, *, include_deleted: bool = False) -> ModelT | None:
        key = self._key(key)
        with translated(self._label):
            return await fetch_by_key(self.model, key, live_only=self._soft and not include_deleted)

    async def find_one(self, filters: Mapping[str, Any], *, include_deleted: bool = False) -> ModelT | None:
        with translated(self._label):
            return await self._filtered(filters, None, include_deleted, False).first()

    def _fast_where(
        self, filters: Mapping[str, Any] | None, search: Any, include_deleted: bool, only_deleted: bool
    ) -> pg_pages.Where | None:
        """What these arguments read, checked as ``_filtered`` checks them, for PostgreSQL's statements built
        once per shape (``pg_pages``); None when the generic path reads (SQLite, search, relation filters,
        a subclass's own ``query``/``_filtered``)."""
        cls = type(self)
        if (search is not None and search != "") or cls.query is not ModelManager.query \
                or cls._filtered is not ModelManager._filtered or not pg_pages.usable(self.model):
            return None
        if (connection := pg_pages.postgres_connection()) is None:
            return None
        check_flags(self.model, include_deleted=include_deleted, only_deleted=only_deleted)
        return pg_pages.where_of(self.model, connection, checked_filters(self.model, filters), soft=self._soft,
                                 include_deleted=include_deleted, only_deleted=only_deleted)

    async def exists(
        self, filters: Mapping[str, Any] | None = None, *, include_deleted: bool = False
    ) -> bool:
        with translated(self._label):
            return await self._filtered(filters, None, include_deleted, False).exists()

    # ------------------------------------------------------------------ writes

    def _stamped(self, values: dict[str, Any]) -> dict[str, Any]:
        actor = current_actor()
        if "created_by" in self.model._meta.fields_map:
            values.setdefault("created_by", actor)
            values.setdefault("updated_by", actor)
        return values

    def _creation_stamps(self) -> dict[str, Any]:
        now = timezone.now()
        return {name: now for name in ("created_at", "updated_at") if name in self.model._meta.fields_map}

    async def create(self, data: Input) -> ModelT:
        """Validate and insert one row, with its audit row, atomically (one statement on PostgreSQL)."""
        values = self._stamped(validate_input(self.model, data, "create"))
        self.check_domain(values, partial=False)
        if (client := self._one_statement_client(self._pg_create_ok)) is not None:
            stamps = self._creation_stamps()
            instance = await self._single(
                lambda on: pg_create.create_in_one_statement(self.model, values, stamps, on), client)
        else:
            async with transaction():
                with translated(self._label):
                    instance = await self.model.create(**values)
                    await auditing.write_audit(
                        self.model, AuditAction.CREATE, instance.pk,
                        auditing.creation_changes(self.model, auditing.row_of(self.model, instance)),
                    )
        await self._written([instance.pk], membership=True)
        return instance

    @overload
    async def bulk_create(self, rows: BulkRows, *, returning: Literal["instances"] = ...) -> list[ModelT]: ...
    @overload
    async def bulk_create(self, rows: BulkRows, *, returning: Literal["ids"]) -> list[Any]: ...
    @overload
    async def bulk_create(self, rows: BulkRows, *, returning: Literal["none"]) -> None: ...

    async def bulk_create(self, rows: BulkRows, *, returning: Returning = "instances") -> list[Any] | None:
        """Insert many rows with their audit rows, all or none (COPY on PostgreSQL), ``bulk_batch_size`` at a time.

        The whole load is one transaction (a savepoint inside a caller's): a failure in any row, chunk or
        the commit leaves no row and no audit row written, and write listeners (the cache) hear of the ids
        only after the commit, in slices of ``bulk_batch_size``.

        Args:
            rows: dicts or pydantic models, from any iterable or async iterable (a list, a generator, an
                async generator reading a file): pulled ``bulk_batch_size`` rows at a time, never all held.
            returning: ``"instances"`` (default) the stored rows as model instances; ``"ids"`` their primary
                keys, in input order; ``"none"``: nothing. With ``"ids"`` or ``"none"`` and rows from a
                generator, memory stays flat: about 12 MB added for a million rows with ``"none"``, plus
                about 85 MB a million UUIDs for ``"ids"`` (``python -m benchmarks.bulk_memory``).

        Returns:
            A list of instances, a list of ids, or None, as ``returning`` says.

        Raises:
            ValidationError: a bad row, keyed ``rows[i].field`` (``i`` counts from 0 across the whole
                stream); ``rows`` that is not an iterable of rows (None, one dict), keyed ``rows``; a
                ``returning`` other than the three, keyed ``returning``.
            ConflictError: a row breaks a unique rule.
        """
        from datalayer.core import rules  # the rules module imports this layer's values: import at call time

        if returning not in ("instances", "ids", "none"):
            raise ValidationError({"returning": f"expected 'instances', 'ids' or 'none', got {shown(returning)}"},
                                  model=self._label)
        if not isinstance(rows, AsyncIterable):
            rows = rules.rows_of(rows, model=self._label)
        keep: Returning = "ids" if returning == "none" and (self._write_listeners or self._membership_listeners) \
            else returning
        stamps = self._creation_stamps()
        try:
            async with transaction():
                with translated(self._label):
                    kept = await insert_created(
                        self.model, rows, shared=self._stamped(stamps), batch_size=self.bulk_batch_size,
                        check=self._check_rows if self._has_rules else None, keep=keep,
                    )
        except SourceFailed as failed:  # the caller's own error, from their rows: as they raised it
            raise failed.error from None
        if self._write_listeners or self._membership_listeners:
            ids = kept if keep == "ids" else [instance.pk for instance in kept]
            step = max(1, self.bulk_batch_size)
            for start in range(0, len(ids), step):  # bounded work per call, however big the load
                await self._written(ids[start:start + step], membership=start == 0)
        return None if returning == "none" else kept

    async def _locked_row(self, key: Any, *, deleted: bool | None) -> ModelT:
        """The row, locked for the rest of the transaction (``FOR UPDATE`` where the backend has it)."""
        queryset = self._all_objects.filter(pk=key) if self._soft else self.model.filter(pk=key)
        if deleted is not None and self._soft:
            queryset = queryset.filter(deleted_at__isnull=not deleted)
        instance = await queryset.select_for_update().first()
        if instance is None:
            raise self._missing(key, deleted)
        return instance

    def _missing(self, key: Any, deleted: bool | None) -> NotFoundError:
        state = {True: "deleted ", False: "live ", None: ""}[deleted]
        return NotFoundError(self._label, key, f"{self._label} {key} not found (no {state}row)")

    async def _apply(self, instance: ModelT, values: dict[str, Any]) -> None:
        """Write ``values`` guarded by the version read, bumping version and ``updated_at``."""
        stamp: dict[str, Any] = dict(values)
        if "updated_at" in self.model._meta.fields_map:
            stamp["updated_at"] = timezone.now()
        if "updated_by" in self.model._meta.fields_map:
            stamp["updated_by"] = current_actor()
        guard: dict[str, Any] = {"pk": instance.pk}
        if self._versioned:
            guard["version"] = instance.version  # type: ignore[attr-defined]  # _versioned: it has one
            stamp["version"] = instance.version + 1  # type: ignore[attr-defined]
        changed = await self._all_objects.filter(**guard).update(**stamp) if self._soft else \
            await self.model.filter(**guard).update(**stamp)
        if changed != 1:
            raise ConcurrencyError(self._label, instance.pk, getattr(instance, "version", None), None)
        for name, value in stamp.items():
            setattr(instance, name, value)

    async def update(self, key: Any, data: Input, *, expected_version: int | None = None) -> ModelT:
        """Change a live row. With ``expected_version``, a row changed meanwhile raises ``ConcurrencyError``."""
        key = self._key(key)
        if expected_version is not None:
            self._check_version(expected_version)
        values = validate_input(self.model, data, "update")
        self.check_domain(values, partial=True)
        if values and (client := self._one_statement_client(self._pg_update_ok)) is not None:
            return await self._update_in_one_statement(client, key, values, expected_version)
        async with transaction():
            with translated(self._label):
                instance = await self._locked_row(key, deleted=False)
                if expected_version is not None and instance.version != expected_version:  # type: ignore[attr-defined]
                    raise ConcurrencyError(self._label, key, expected_version, instance.version)  # type: ignore[attr-defined]
                changes = auditing.diff(self.model, instance, values)
                if not changes:
                    return instance
                await self._apply(instance, {name: values[name] for name in changes})
                await auditing.write_audit(self.model, AuditAction.UPDATE, key, changes)
        await self._written([key])
        return instance

    def _check_version(self, expected_version: Any) -> None:
        """``expected_version`` is a version this model keeps: a whole number from 1 up (a 32-bit column)."""
        if not self._versioned:
            raise ValidationError({"expected_version": f"{self._label} keeps no version; leave it out"},
                                  model=self._label)
        from datalayer.core import rules

        rules.whole_number(expected_version, field="expected_version", model=self._label, maximum=2**31 - 1)

    def _one_statement_updates(self) -> bool:
        return self._one_statement_client(self._pg_update_ok) is not None

    def _one_statement_client(self, supported: bool) -> BaseDBAsyncClient | None:
        """The connection a one-statement write goes to, when it may take one (a model those writes serve,
        ``one_statement_writes`` on, PostgreSQL); None: the generic path writes."""
        if not (supported and self.one_statement_writes):
            return None
        client = get_connection(CONNECTION_NAME)
        return client if client.capabilities.dialect == "postgres" else None

    async def _single(self, statement: Callable[[BaseDBAsyncClient | None], Awaitable[T]],
                      client: BaseDBAsyncClient) -> T:
        """Run a write made in one statement on ``client``: errors translated, and inside a caller's
        transaction in a savepoint (``statement(None)``: on the savepoint's connection), since a failing
        statement would otherwise abort the caller's whole transaction."""
        if not in_transaction_block():
            with translated(self._label):
                return await statement(client)
        async with transaction():
            with translated(self._label):
                return await statement(None)

    async def _update_in_one_statement(self, client: BaseDBAsyncClient, key: Any, values: dict[str, Any],
                                       expected: int | None) -> ModelT:
        found, instance = await self._single(
            lambda on: pg_update.update_in_one_statement(self.model, key, values, expected, on), client)
        if found is None:
            raise NotFoundError(self._label, key)
        if instance is None:
            if expected is not None and found != expected:
                raise ConcurrencyError(self._label, key, expected, found)
            return await self.get(key)  # nothing differed: nothing written
        await self._written([key])
        return instance

    async def delete(self, key: Any, *, hard: bool = False) -> None:
        """Soft delete (hidden everywhere, restorable); ``hard=True`` removes the row for good.

        One statement on PostgreSQL. ``NotFoundError`` if no live row (for ``hard``: no row) has ``key``.
        """
        key = self._key(key)
        removing = hard or not self._soft
        if (client := self._one_statement_client(self._pg_update_ok)) is not None:
            kind: pg_set_writes.Kind = "hard_delete" if removing else "delete"
            found = await self._single(
                lambda on: pg_set_writes.write_one(self.model, kind, key, client=on), client)
            if found is None:
                raise self._missing(key, None if removing else False)
        else:
            async with transaction():
                with translated(self._label):
                    instance = await self._locked_row(key, deleted=None if removing else False)
                    await self._remove(instance, hard=removing)
        await self._written([key], membership=True)

    async def restore(self, key: Any) -> ModelT:
        """Bring a soft-deleted row back (one statement on PostgreSQL); ``NotFoundError`` if no deleted row
        has ``key``, ``ConflictError`` if a live row took its unique values meanwhile."""
        if not self._soft:
            raise ValidationError({"__all__": f"{self._label} has no soft delete"}, model=self._label)
        key = self._key(key)
        client = None if self._has_rules else self._one_statement_client(self._pg_update_ok)
        if client is not None:  # (domain rules must see the row before it is written: the generic path)
            instance = await self._single(
                lambda on: pg_set_writes.write_one(self.model, "restore", key, client=on), client)
            if instance is None:
                raise self._missing(key, True)
        else:
            async with transaction():
                with translated(self._label):
                    instance = await self._locked_row(key, deleted=True)
                    await self._bring_back(instance)
        await self._written([key], membership=True)
        return instance

    async def get_or_create(self, defaults: Input | None = None, **lookup: Any) -> tuple[ModelT, bool]:
        """The live row matching ``lookup``, or a new one from ``lookup`` + ``defaults``.

        Concurrent callers on one key all get the same row; exactly one of them reports ``created``.

        Args:
            defaults: values for a new row only.
            **lookup: the natural key (field filters) of the row.

        Returns:
            ``(row, created)``.

        Raises:
            ConflictError: the new row breaks a unique rule other than ``lookup``'s.
            ValidationError: bad ``defaults`` or ``lookup``.
        """
        async with transaction():
            found = await self.find_one(self._natural_key(lookup))
            if found is not None:
                return found, False
            return await self._create_or_take_winner(defaults, lookup)

    def _natural_key(self, lookup: Mapping[str, Any]) -> dict[str, Any]:
        """``lookup`` as the database compares it: a text field unique case-insensitively among live rows
        (``LiveUnique(..., lower=True)``, the users' email) matches in any case, as the unique index does."""
        folded = {name for spec in getattr(self.model, "live_unique_fields", ())
                  if (rule := LiveUnique.of(spec)).lower for name in rule.fields}
        return {f"{name}__iexact" if name in folded and isinstance(value, str) else name: value
                for name, value in lookup.items()}

    async def _create_or_take_winner(self, defaults: Input | None, lookup: dict[str, Any]) -> tuple[ModelT, bool]:
        """Insert ``lookup`` + ``defaults``; when a concurrent caller inserted that key first, its row instead.

        The insert runs in a savepoint, so losing the race leaves the enclosing transaction usable (PostgreSQL
        aborts a whole transaction on a failed statement otherwise); the winner's row is then read back.
        A conflict on another unique rule (no live row matches ``lookup``) is re-raised.
        """
        data = {**dict(validate_input(self.model, defaults or {}, "update")), **lookup}
        try:
            async with transaction():
                return await self.create(data), True
        except ConflictError:
            found = await self.find_one(self._natural_key(lookup))
            if found is None:
                raise
            return found, False

    async def upsert(self, defaults: Input | None = None, **lookup: Any) -> tuple[ModelT, bool]:
        """Create from ``lookup`` + ``defaults``, or update the live row matching ``lookup`` with ``defaults``.

        Concurrent callers on one key all end on the same row: one creates it, the others update it.

        Args:
            defaults: values for a new row, or the changes for an existing one.
            **lookup: the natural key (field filters) of the row.

        Returns:
            ``(row, created)``.

        Raises:
            ConflictError: ``defaults`` break a unique rule other than ``lookup``'s.
            ValidationError: bad ``defaults`` or ``lookup``.
        """
        async with transaction():
            found = await self.find_one(self._natural_key(lookup))
            if found is None:
                found, created = await self._create_or_take_winner(defaults, lookup)
                if created:
                    return found, True
            return await self.update(found.pk, defaults or {}), False


def _on_postgres() -> bool:
    return get_connection(CONNECTION_NAME).capabilities.dialect == "postgres"
