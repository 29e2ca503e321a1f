"""Primary keys are time-ordered UUIDs (version 7): valid RFC 9562 ids whose order follows creation time."""

from __future__ import annotations

import asyncio
import time
import uuid

from datalayer.ids import new_uuid4s, new_uuid7s, uuid7
from tests.models import Article


def stamp_ms(value: uuid.UUID) -> int:
    return value.int >> 80


def test_uuid7_carries_version_variant_and_the_current_millisecond():
    before = time.time_ns() // 1_000_000
    ids = [uuid7() for _ in range(1000)] + new_uuid7s(1000)
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == 2000
    for value in ids:
        assert isinstance(value, uuid.UUID)
        assert value.version == 7 and value.variant == uuid.RFC_4122
        assert before <= stamp_ms(value) <= after
        assert uuid.UUID(str(value)) == value


def test_batches_of_random_uuids_are_valid_version_4():
    ids = new_uuid4s(1000)
    assert len(set(ids)) == 1000
    assert all(value.version == 4 and value.variant == uuid.RFC_4122 for value in ids)


async def test_created_rows_get_ids_that_sort_in_creation_order(ctx):
    first = await ctx.manager(Article).create({"title": "first"})
    await asyncio.sleep(0.002)  # ids only order across milliseconds
    second = await ctx.manager(Article).create({"title": "second"})
    assert first.id.version == second.id.version == 7
    assert first.id < second.id
    ordered = await Article.all().order_by("id").values_list("title", flat=True)
    assert ordered == ["first", "second"]
