"""Abstract bases every datalayer model (and an app's own) builds on."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, GetCoreSchemaHandler
from pydantic_core import CoreSchema
from tortoise import fields
from tortoise.models import Model

from datalayer.ids import uuid7
from datalayer.mixins import AuditMixin, SoftDeleteMixin, TimestampMixin
from datalayer.models import output
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

    @classmethod
    def schema_out(cls, *, relations: Sequence[str] = (), exclude: Sequence[str] = (),
                   include_secrets: bool = False) -> type[BaseModel]:
        """The pydantic model responses show for this model, ``secret_fields`` left out (``output.schema_out``)."""
        return output.schema_out(cls, relations=relations, exclude=exclude, include_secrets=include_secrets)

    async def to_schema(self, *, relations: Sequence[str] = (), exclude: Sequence[str] = (),
                        include_secrets: bool = False) -> BaseModel:
        """This row as its output schema, the named relations fetched first (``output.to_schema``)."""
        return await output.to_schema(self, relations=relations, exclude=exclude, include_secrets=include_secrets)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        """Pydantic and FastAPI see the model as its output schema: ``Page[User]``, ``-> User`` and
        ``response_model=User`` hold rows and serialise them without secret fields."""
        return output.core_schema_of(cls, handler)

    #: serialises a row pydantic meets untyped (in a bare ``Page``, a ``list[Any]``) by its output schema
    __pydantic_serializer__ = output.SafeSerializer()

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        """``dict(row)``: the output schema's fields, no secret. FastAPI's ``jsonable_encoder`` uses it for a
        row a route returns without a response model."""
        for name in output.output_fields(type(self)):
            yield name, getattr(self, name)


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
