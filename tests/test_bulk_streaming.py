"""bulk_create from streams: generators and async generators pulled a chunk at a time, ``returning`` ids or
nothing, one transaction for the whole load, and write listeners (the cache) told every id after the commit."""

from __future__ import annotations

import asyncio
import uuid
import weakref

import pytest

from datalayer import ModelManager, ValidationError
from datalayer.core.audit_log import AuditLog
from tests.cache_support import GUARD
from tests.models import Article, CachedNote

ROWS = 1000
BATCH = 300  # so ROWS cross several chunk boundaries


@pytest.fixture
def articles(ctx) -> ModelManager[Article]:
    """A manager of its own (the context's is shared across tests), writing ``BATCH`` rows a chunk."""
    manager = ModelManager(Article)
    manager.bulk_batch_size = BATCH
    return manager


class Pulled:
    """A row source that counts how many rows were pulled from it."""

    def __init__(self, count: int, bad: dict[int, object] | None = None) -> None:
        self.count, self.bad, self.pulled = count, bad or {}, 0

    def row(self, i: int) -> object:
        self.pulled += 1
        return self.bad.get(i, {"title": f"t{i}", "views": i})

    def rows(self):
        for i in range(self.count):
            yield self.row(i)

    async def async_rows(self):
        for i in range(self.count):
            if i % 100 == 0:
                await asyncio.sleep(0)  # as a reader of a file or a socket would
            yield self.row(i)


async def stored_ids(table: str = "test_article") -> tuple[set, set]:
    """(ids of the stored rows, record ids of their ``create`` audit rows)."""
    rows = {a.id for a in await Article.all_objects.all()} if table == "test_article" else set()
    audits = {entry.record_id for entry in await AuditLog.filter(table_name=table, action="create")}
    return rows, audits


async def test_a_generator_load_returning_ids_gives_every_id_in_input_order_with_its_audit_row(ctx, articles):
    ids = await articles.bulk_create(Pulled(ROWS).rows(), returning="ids")
    assert len(ids) == ROWS and all(isinstance(key, uuid.UUID) for key in ids)
    rows, audits = await stored_ids()
    assert rows == set(ids) and audits == {str(key) for key in ids}
    assert [(a.title, a.views) for a in await Article.filter(id__in=[ids[0], ids[-1]]).order_by("views")] \
        == [("t0", 0), (f"t{ROWS - 1}", ROWS - 1)]


async def test_an_async_generator_load_stores_every_row_and_returns_instances_by_default(ctx, articles):
    created = await articles.bulk_create(Pulled(ROWS).async_rows())
    assert [a.views for a in created] == list(range(ROWS))
    rows, audits = await stored_ids()
    assert rows == {a.id for a in created} and audits == {str(a.id) for a in created}
    assert (await articles.get(created[-1].id)).title == f"t{ROWS - 1}"


async def test_returning_none_returns_nothing_and_still_stores_rows_and_audit_rows(ctx, articles):
    assert await articles.bulk_create(Pulled(ROWS).async_rows(), returning="none") is None
    rows, audits = await stored_ids()
    assert len(rows) == ROWS and audits == {str(key) for key in rows}


@pytest.mark.parametrize("source", ["generator", "async generator"])
async def test_a_bad_row_mid_stream_is_named_and_nothing_is_written(ctx, articles, source):
    stream = Pulled(3000, bad={650: {"title": "x" * 201}})
    with pytest.raises(ValidationError) as caught:
        await articles.bulk_create(stream.rows() if source == "generator" else stream.async_rows(),
                                   returning="none")
    assert list(caught.value.errors) == ["rows[650].title"]
    assert stream.pulled == 900  # the chunk holding row 650 (rows 600-899), never the whole stream
    assert await Article.all_objects.all().count() == 0
    assert await AuditLog.all().count() == 0


async def test_a_row_that_is_not_a_mapping_is_named_by_its_position(ctx, articles):
    with pytest.raises(ValidationError) as caught:
        await articles.bulk_create(Pulled(ROWS, bad={BATCH + 5: None}).rows(), returning="ids")
    assert caught.value.errors == {f"rows[{BATCH + 5}].__all__": "expected a dict or a pydantic model, got NoneType"}
    assert await Article.all_objects.all().count() == 0


async def test_a_source_that_fails_mid_stream_leaves_nothing_written(ctx, articles):
    async def failing():
        for i in range(ROWS):
            if i == 700:
                raise OSError("the upload was cut")
            yield {"title": f"t{i}"}

    with pytest.raises(OSError, match="cut"):
        await articles.bulk_create(failing(), returning="none")
    assert await Article.all_objects.all().count() == 0
    assert await AuditLog.all().count() == 0


@pytest.mark.parametrize("returning", ["all", None, "IDS", 1])
async def test_an_unknown_returning_is_refused_before_any_row_is_read(ctx, articles, returning):
    stream = Pulled(10)
    with pytest.raises(ValidationError) as caught:
        await articles.bulk_create(stream.rows(), returning=returning)
    assert list(caught.value.errors) == ["returning"]
    assert "'instances', 'ids' or 'none'" in caught.value.errors["returning"]
    assert stream.pulled == 0


async def test_a_stream_is_held_at_most_two_chunks_at_a_time(ctx, articles):
    """Flat memory as behaviour: rows the load has pulled are let go once their chunk is prepared, whatever
    the row count (the figure in MB is ``python -m benchmarks.bulk_memory``'s). Today one chunk at a time;
    the promise is two (one being written while the next is prepared)."""

    class Row(dict):  # a dict a weak reference can follow
        pass

    alive: weakref.WeakValueDictionary[int, Row] = weakref.WeakValueDictionary()
    most = 0

    def rows():
        nonlocal most
        for i in range(3000):
            most = max(most, len(alive))
            alive[i] = row = Row(title=f"t{i}")
            yield row

    assert await articles.bulk_create(rows(), returning="none") is None
    assert BATCH // 2 < most <= 2 * BATCH  # rows are held while their chunk fills, never the stream
    assert await articles.count() == 3000


async def test_write_listeners_hear_every_id_in_bounded_slices_after_the_commit(ctx, articles):
    heard: list[list] = []
    committed: list[int] = []

    async def listener(manager, ids):
        heard.append(ids)
        committed.append(await Article.all_objects.filter(id__in=ids).count())  # visible: after the commit

    articles.add_write_listener(listener)
    chosen = [uuid.uuid4() for _ in range(ROWS)]
    assert await articles.bulk_create(({"id": key, "title": "t"} for key in chosen), returning="none") is None
    assert [key for ids in heard for key in ids] == chosen
    assert max(len(ids) for ids in heard) <= BATCH
    assert committed == [len(ids) for ids in heard]





async def test_a_streamed_load_returning_none_invalidates_cached_rows_of_its_ids(cached_ctx, monkeypatch):
    """Rows cached under ids the load then writes (a row deleted behind the cache, re-imported) are dropped,
    from the first listener slice to the last."""
    notes = cached_ctx.cached_notes
    monkeypatch.setattr(notes, "bulk_batch_size", 2)
    first = await notes.create({"title": "old first"})
    last = await notes.create({"title": "old last"})
    await asyncio.sleep(GUARD * 2)
    for key in (first.id, last.id):
        await notes.get(key)  # now cached
        await CachedNote.filter(pk=key).delete()  # gone behind the cache
    keys = [first.id, *(uuid.uuid4() for _ in range(5)), last.id]

    async def reimport():
        for n, key in enumerate(keys):
            yield {"id": key, "title": f"new {n}"}

    assert await notes.bulk_create(reimport(), returning="none") is None
    assert (await notes.get(first.id)).title == "new 0"
    assert (await notes.get(last.id)).title == "new 6"
