"""The tables the benchmarks write: plain app models, as a user of datalayer would declare them."""

from __future__ import annotations

from tortoise import fields

from datalayer import AuditedModel, ModelManager


class Item(AuditedModel):
    title = fields.CharField(max_length=200)
    body = fields.TextField(default="")
    status = fields.CharField(max_length=20, default="draft")
    views = fields.IntField(default=0)

    class Meta:
        abstract = True


class BenchItem(Item):
    class Meta:
        table = "bench_item"


class BulkItem(Item):
    """Bulk inserts land here, emptied between rounds, so the other tables keep their size."""

    class Meta:
        table = "bench_bulk_item"


class CachedItem(AuditedModel):
    title = fields.CharField(max_length=200)
    body = fields.TextField(default="")
    views = fields.IntField(default=0)

    class Meta:
        table = "bench_cached_item"


class CachedItemManager(ModelManager[CachedItem]):
    """Read-through on Redis: ``get`` answers from the cache once a row was read."""

    model = CachedItem
    cached = True
