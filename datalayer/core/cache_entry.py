"""``CacheEntry``: the database cache tier of seed 002, for values worth keeping across Redis restarts."""

from __future__ import annotations

from typing import Any

from tortoise import fields

from datalayer.models.base import RecordModel


class CacheEntry(RecordModel):
    """One cached value under its namespaced key; rows past ``expires_at`` are ignored, then cleaned up."""

    key = fields.CharField(max_length=1024, unique=True)
    value: fields.JSONField[Any] = fields.JSONField()
    expires_at = fields.DatetimeField(null=True, db_index=True)

    class Meta:
        table = "cache_entry"

    def __str__(self) -> str:
        return f"CacheEntry({self.key})"
