"""bulk_create in chunks: every chunk or none, and the same audit rows as single creates."""

import datetime as dt
import gc
import uuid

import pytest

from datalayer import ConflictError, ValidationError
from datalayer.core.audit_log import AuditLog
from tests.models import Article, Author, Visit


@pytest.fixture
def chunked_articles(ctx):
    """Articles written 300 rows per chunk, so a few thousand rows cross many chunk boundaries."""
    articles = ctx.manager(Article)
    articles.bulk_batch_size = 300
    return articles


async def test_rows_from_every_chunk_are_stored_with_one_audit_row_each(ctx, chunked_articles):
    created = await chunked_articles.bulk_create({"title": f"t{i}", "views": i} for i in range(1000))
    assert [a.views for a in created] == list(range(1000))
    assert len({a.id for a in created}) == 1000 and all(a.id.version == 7 for a in created)
    assert await chunked_articles.count() == 1000
    assert await ctx.audit_logs.count({"table_name": "test_article", "action": "create"}) == 1000
    last = await chunked_articles.get(created[-1].id)
    assert (last.title, last.views) == ("t999", 999)


async def test_a_bad_row_in_a_late_chunk_is_named_by_its_position_and_nothing_is_written(ctx, chunked_articles):
    rows = [{"title": f"t{i}"} for i in range(1000)]
    rows[950] = {"title": "x" * 201}
    with pytest.raises(ValidationError) as caught:
        await chunked_articles.bulk_create(rows)
    assert list(caught.value.errors) == ["rows[950].title"]
    assert await Article.all_objects.all().count() == 0
    assert await AuditLog.all().count() == 0


async def test_a_conflict_in_a_late_chunk_rolls_back_the_chunks_before_it(ctx):
    authors = ctx.manager(Author)
    authors.bulk_batch_size = 300
    await authors.create({"name": "Taken", "email": "taken@example.com"})
    rows = [{"name": f"a{i}", "email": f"a{i}@example.com"} for i in range(800)]
    rows[700]["email"] = "TAKEN@example.com"  # unique among live rows, case-insensitively
    with pytest.raises(ConflictError) as caught:
        await authors.bulk_create(rows)
    assert "email" in str(caught.value)
    assert await authors.count() == 1
    assert await AuditLog.filter(table_name="test_author").count() == 1


async def test_bulk_audit_rows_read_like_a_single_creates(ctx):
    authors = ctx.manager(Author)
    data = {"name": "Ada", "email": "ada@example.com", "password_hash": "$2b$12$secret"}
    single = await authors.create(data)
    [bulk] = await authors.bulk_create([{**data, "email": "ada2@example.com"}])
    [single_entry] = await ctx.audit_logs.history(Author, single.id)
    [bulk_entry] = await ctx.audit_logs.history(Author, bulk.id)
    assert bulk_entry.changes.pop("id") == [None, str(bulk.id)]
    assert single_entry.changes.pop("id") == [None, str(single.id)]
    assert bulk_entry.changes.pop("email") == [None, "ada2@example.com"]
    single_entry.changes.pop("email")
    assert bulk_entry.changes == single_entry.changes
    assert bulk_entry.changes["password_hash"] == [None, "***"]
    assert (bulk_entry.action, bulk_entry.record_id) == (single_entry.action, str(bulk.id))


async def test_bulk_create_inside_a_transaction_rolls_back_with_it(ctx, chunked_articles):
    with pytest.raises(RuntimeError):
        async with ctx.transaction():
            await chunked_articles.bulk_create([{"title": f"t{i}"} for i in range(700)])
            raise RuntimeError("caller gives up")
    assert await Article.all_objects.all().count() == 0
    assert await AuditLog.all().count() == 0


async def test_ids_given_by_the_caller_are_kept(ctx, chunked_articles):
    chosen = [uuid.uuid4() for _ in range(3)]
    created = await chunked_articles.bulk_create([{"id": key, "title": "t"} for key in chosen])
    assert [a.id for a in created] == chosen
    assert {a.id for a in await Article.all()} == set(chosen)


async def test_the_garbage_collector_is_back_as_it_was_after_success_and_failure(ctx, chunked_articles):
    """bulk_create pauses cyclic GC while it runs (it only allocates what it keeps); it must never leave it off."""
    await chunked_articles.bulk_create({"title": f"t{i}"} for i in range(400))
    assert gc.isenabled()
    with pytest.raises(ValidationError):
        await chunked_articles.bulk_create([{"title": "ok"}, {"title": None}])
    assert gc.isenabled()
    gc.disable()  # an app that runs with the collector off keeps it off
    try:
        await chunked_articles.bulk_create([{"title": "ok"}])
        assert not gc.isenabled()
    finally:
        gc.enable()


async def test_auto_now_fields_are_stamped_as_a_single_create_stamps_them(ctx):
    visits = ctx.manager(Visit)
    opened = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    single = await visits.create({"page": "/one"})
    created = await visits.bulk_create([{"page": "/a"}, {"page": "/b", "opened_at": opened}])
    assert (await Visit.get(id=single.id)).checked_at >= before
    for row in created:
        stored = await Visit.get(id=row.id)
        assert stored.checked_at >= before and stored.checked_at == row.checked_at
    assert (await Visit.get(id=created[0].id)).opened_at >= before
    assert (await Visit.get(id=created[1].id)).opened_at == opened  # auto_now_add keeps a given value
