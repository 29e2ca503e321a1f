"""Writes to every row a filter selects (``update_many``, ``delete_many``, ``restore_many``), and the generic
one-row soft delete, hard delete and restore that ``delete`` and ``restore`` share with them.

On PostgreSQL each call is one statement per ``bulk_batch_size`` rows (``pg_set_writes``); on SQLite, and
for models those statements do not serve, rows are locked and written one by one. Both paths leave the same
rows, versions, ``updated_at`` stamps and audit rows. Every call is all or nothing: it runs in a transaction
(a savepoint inside a caller's), and write listeners (the cache) hear of every row written after the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel
from tortoise import timezone
from tortoise.manager import Manager
from tortoise.models import Model
from tortoise.queryset import QuerySet

from datalayer.actor import current_actor
from datalayer.core.audit_log import AuditAction
from datalayer.errors import ValidationError
from datalayer.managers import auditing, pg_set_writes
from datalayer.managers.pg_set_writes import Kind
from datalayer.managers.validation import validate_input
from datalayer.transactions import transaction
from datalayer.translate import translated


class SetWrites:
    """Mixed into ``ModelManager``: writes by filter, and the generic one-row removal and restore."""

    if TYPE_CHECKING:  # provided by ModelManager and DomainRules
        model: type[Model]
        _label: str
        _soft: bool
        _has_rules: bool
        bulk_batch_size: ClassVar[int]

        @property
        def _all_objects(self) -> Manager: ...
        def _filtered(self, filters: Mapping[str, Any] | None, search: str | None, include_deleted: bool,
                      only_deleted: bool) -> QuerySet[Any]: ...
        async def _written(self, ids: Sequence[Any], *, membership: bool = False) -> None: ...
        async def _apply(self, instance: Any, values: dict[str, Any]) -> None: ...
        def _one_statement_updates(self) -> bool: ...
        def check_domain(self, values: Mapping[str, Any], *, partial: bool) -> None: ...

    async def update_many(self, filters: Mapping[str, Any], data: Mapping[str, Any] | BaseModel) -> int:
        """Set ``data`` on every live row matching ``filters``, as ``update`` would on each.

        A row that already holds every value is left alone; each changed row gets its version bumped,
        ``updated_at``/``updated_by`` stamped and an ``update`` audit row of what changed. One statement per
        ``bulk_batch_size`` rows on PostgreSQL; all or nothing.

        Args:
            filters: ``{"<field>[__<operator>]": value}``, as ``find_many`` takes them; at least one.
            data: the values to set (a dict or a pydantic model).

        Returns:
            How many rows changed.

        Raises:
            ValidationError: no filter, a bad filter or value, a broken domain rule.
            ConflictError: the values would break a unique rule (nothing is written).
        """
        values = validate_input(self.model, data, "update")
        self.check_domain(values, partial=True)
        rows = self._selected("update_many", filters, include_deleted=False, only_deleted=False)
        if not values:
            return 0
        return await self._write_rows("update", rows, values)

    async def delete_many(self, filters: Mapping[str, Any], *, hard: bool = False) -> int:
        """Soft delete every live row matching ``filters``, as ``delete`` would each; ``hard=True`` removes
        every matching row for good, soft-deleted ones included (as ``delete(key, hard=True)`` does).

        Each row gets a ``delete`` (or ``hard_delete``) audit row. A model without soft delete is always
        deleted for good. One statement per ``bulk_batch_size`` rows on PostgreSQL; all or nothing.

        Returns:
            How many rows were deleted.

        Raises:
            ValidationError: no filter, a bad filter, ``hard`` not a bool.
        """
        if not isinstance(hard, bool):
            raise ValidationError({"hard": "expected true or false"}, model=self._label)
        removing = hard or not self._soft
        rows = self._selected("delete_many", filters, include_deleted=removing and self._soft,
                              only_deleted=False)
        return await self._write_rows("hard_delete" if removing else "delete", rows)

    async def restore_many(self, filters: Mapping[str, Any]) -> int:
        """Bring back every soft-deleted row matching ``filters``, as ``restore`` would each.

        All or nothing: if any row cannot come back (a live row took one of its unique values meanwhile, or it
        breaks a domain rule) the call raises and no row is restored.

        Returns:
            How many rows were restored.

        Raises:
            ConflictError: a restored row would break a unique rule; nothing is restored.
            ValidationError: no filter, a bad filter, a row breaking a domain rule, a model without soft
                delete.
        """
        if not self._soft:
            raise ValidationError({"__all__": f"{self._label} has no soft delete"}, model=self._label)
        rows = self._selected("restore_many", filters, include_deleted=False, only_deleted=True)
        return await self._write_rows("restore", rows)

    def _selected(self, operation: str, filters: Mapping[str, Any], *, include_deleted: bool,
                  only_deleted: bool) -> Callable[[], QuerySet[Any]]:
        """What makes the queryset of the rows ``filters`` select, once they were checked (now, before
        anything is written; at least one). A queryset binds the connection it is made on: make it in the
        transaction."""
        if not filters:
            raise ValidationError({"filters": f"{operation} needs at least one filter"}, model=self._label)
        self._filtered(filters, None, include_deleted, only_deleted)
        return lambda: self._filtered(filters, None, include_deleted, only_deleted)

    async def _write_rows(self, kind: Kind, rows: Callable[[], QuerySet[Any]],
                          values: dict[str, Any] | None = None) -> int:
        set_based = self._one_statement_updates() and not (kind == "restore" and self._has_rules)
        batch_size = max(1, self.bulk_batch_size)
        async with transaction():
            with translated(self._label):
                if set_based:
                    written = await pg_set_writes.write_many(self.model, kind, rows(), batch_size=batch_size,
                                                             values=values)
                else:
                    written = await self._row_by_row(kind, rows(), values or {})
        await self._written(written, membership=kind != "update")
        return len(written)

    async def _row_by_row(self, kind: Kind, rows: QuerySet[Any], values: dict[str, Any]) -> list[Any]:
        """The generic path: lock the rows, then write and audit each one."""
        written = []
        for instance in await rows.select_for_update():
            if kind == "update":
                changes = auditing.diff(self.model, instance, values)
                if not changes:
                    continue
                await self._apply(instance, {name: values[name] for name in changes})
                await auditing.write_audit(self.model, AuditAction.UPDATE, instance.pk, changes)
            elif kind == "restore":
                await self._bring_back(instance)
            else:
                await self._remove(instance, hard=kind == "hard_delete")
            written.append(instance.pk)
        return written

    async def _remove(self, instance: Any, *, hard: bool) -> None:
        """Soft delete (or, ``hard``, delete) one locked row and audit it: the generic path."""
        key = instance.pk
        if hard:
            changes = auditing.removal_changes(self.model, instance)
            await self._all_objects.filter(pk=key).delete() if self._soft else await instance.delete()
            await auditing.write_audit(self.model, AuditAction.HARD_DELETE, key, changes)
            return
        now = timezone.now()
        await self._apply(instance, {"deleted_at": now, "deleted_by": current_actor()})
        changes = {"deleted_at": [None, auditing.jsonable(now)]}
        await auditing.write_audit(self.model, AuditAction.DELETE, key, changes)

    async def _bring_back(self, instance: Any) -> None:
        """Restore one locked soft-deleted row and audit it, if its domain rules allow: the generic path."""
        self.check_domain(auditing.row_of(self.model, instance), partial=False)
        was = auditing.jsonable(instance.deleted_at)
        await self._apply(instance, {"deleted_at": None, "deleted_by": None})
        await auditing.write_audit(self.model, AuditAction.RESTORE, instance.pk, {"deleted_at": [was, None]})
