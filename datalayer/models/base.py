"""Abstract bases every datalayer model (and an app's own) builds on."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel
from tortoise import fields
from tortoise.models import Model

from datalayer.ids import uuid7
from datalayer.mixins import AuditMixin, SoftDeleteMixin, TimestampMixin
from datalayer.schema import LiveUnique


class DataModel(Model):
    """UUID primary key plus the declarations managers read. Subclass ``AuditedModel`` or ``RecordModel``."""

    id = fields.UUIDField(primary_key=True, default=uuid7)  # time-ordered: see datalayer/ids.py

    #: fields ``find_many(search=...)`` looks in (case-insensitive contains)
    searchable_fields: ClassVar[tuple[str, ...]] = ()
    #: fields never filterable, sortable or shown in the audit log (password hashes, key hashes, tokens)
    secret_fields: ClassVar[tuple[str, ...]] = ()
    #: relation paths that filters may follow, e.g. ``("user__email",)``
    filter_relations: ClassVar[tuple[str, ...]] = ()
    #: unique among live rows (partial unique index ``WHERE deleted_at IS NULL``)
    live_unique_fields: ClassVar[tuple[str | tuple[str, ...] | LiveUnique, ...]] = ()
    #: pydantic schemas validating ``create`` / ``update`` input; derived from the fields when None
    create_schema: ClassVar[type[BaseModel] | None] = None
    update_schema: ClassVar[type[BaseModel] | None] = None
    #: whether writes through a manager add ``AuditLog`` rows
    audited: ClassVar[bool] = True

    class Meta:
        abstract = True


class AuditedModel(DataModel, TimestampMixin, SoftDeleteMixin, AuditMixin):
    """UUID key, timestamps, soft delete and audit fields, and the soft-delete default manager.

    Concrete subclasses also get an index on ``(created_at, id)`` so keyset pagination stays constant-cost.
    """

    class Meta:
        abstract = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        meta = cls.__dict__.get("_meta")
        if meta is not None and not meta.abstract and ("created_at", "id") not in meta.indexes:
            meta.indexes = (*meta.indexes, ("created_at", "id"))


class RecordModel(DataModel, TimestampMixin):
    """Append-only records (logs, usage, cache entries): UUID key and timestamps, never soft-deleted or audited."""

    audited: ClassVar[bool] = False

    class Meta:
        abstract = True
