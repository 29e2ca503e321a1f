"""Soft delete: ``deleted_at`` / ``deleted_by`` and a default manager that hides deleted rows everywhere."""

from __future__ import annotations

from typing import Any, ClassVar

from tortoise import fields
from tortoise.manager import Manager
from tortoise.queryset import QuerySet


class SoftDeleteManager(Manager):
    """The default Tortoise manager of soft-deletable models: live rows only.

    Because Tortoise routes ``filter``/``get``/reverse relations/``prefetch_related`` through the default
    manager, deleted rows stay hidden there too. ``Model.all_objects`` reaches every row.
    """

    def get_queryset(self) -> QuerySet:
        return QuerySet(self._model).filter(deleted_at__isnull=True)


class SoftDeleteMixin:
    deleted_at = fields.DatetimeField(null=True)
    deleted_by = fields.UUIDField(null=True)
    #: every row, deleted ones included (set on each concrete model by ``__init_subclass__``)
    all_objects: ClassVar[Manager]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Give every concrete model its *own* ``SoftDeleteManager`` and an ``all_objects`` escape hatch.

        Runs inside Tortoise's ``ModelMeta.__new__`` before the manager is bound to the class, so a model
        only has to subclass; a shared manager instance would be rebound to the last model defined.
        """
        super().__init_subclass__(**kwargs)
        meta = cls.__dict__.get("_meta")
        if meta is None:
            return
        if type(meta.manager) is Manager:
            meta.manager = SoftDeleteManager()
        if "all_objects" not in cls.__dict__:
            cls.all_objects = Manager(cls)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None  # type: ignore[call-overload]  # a field read on a Model subclass
