import datetime as dt
import uuid
from decimal import Decimal

import pytest
from pydantic import BaseModel

from datalayer import NotFoundError, ValidationError
from tests.models import Article, Author, CachedNote


async def test_create_accepts_a_dict_or_a_pydantic_model(ctx):
    class ArticleIn(BaseModel):
        title: str
        status: str = "published"

    articles = ctx.manager(Article)
    from_dict = await articles.create({"title": "dict"})
    from_model = await articles.create(ArticleIn(title="model"))
    assert from_dict.status == "draft"  # the column default applies when the input leaves it out
    assert from_model.status == "published"
    assert from_dict.version == 1 and isinstance(from_dict.id, uuid.UUID)


async def test_get_unknown_id_raises_not_found_and_find_returns_none(ctx):
    articles = ctx.manager(Article)
    missing = uuid.uuid4()
    with pytest.raises(NotFoundError) as caught:
        await articles.get(missing)
    assert str(missing) in str(caught.value)
    assert await articles.find(missing) is None


async def test_a_malformed_id_is_a_validation_error_not_a_driver_error(ctx):
    with pytest.raises(ValidationError) as caught:
        await ctx.manager(Article).get("not-a-uuid")
    assert caught.value.fields == ["id"]


async def test_update_changes_fields_bumps_version_and_updated_at(ctx):
    articles = ctx.manager(Article)
    article = await articles.create({"title": "v1"})
    before = article.updated_at
    updated = await articles.update(article.id, {"title": "v2", "views": 3})
    assert (updated.title, updated.views, updated.version) == ("v2", 3, 2)
    assert updated.updated_at > before
    stored = await articles.get(article.id)
    assert (stored.title, stored.version) == ("v2", 2)


async def test_an_update_that_changes_nothing_writes_nothing(ctx):
    articles = ctx.manager(Article)
    article = await articles.create({"title": "same"})
    again = await articles.update(article.id, {"title": "same"})
    assert again.version == 1
    assert len(await ctx.audit_logs.history(Article, article.id)) == 1


async def test_update_many_keeps_updated_at_version_and_audit_right(ctx):
    articles = ctx.manager(Article)
    rows = await articles.bulk_create([{"title": f"t{i}", "status": "draft"} for i in range(3)])
    await articles.create({"title": "other", "status": "published"})
    changed = await articles.update_many({"status": "draft"}, {"status": "archived"})
    assert changed == 3
    for row in rows:
        stored = await articles.get(row.id)
        assert (stored.status, stored.version) == ("archived", 2)
        assert stored.updated_at > row.updated_at
        actions = [log.action.value for log in await ctx.audit_logs.history(Article, row.id)]
        assert actions == ["create", "update"]
    assert await articles.count({"status": "published"}) == 1


async def test_update_many_without_filters_is_refused(ctx):
    with pytest.raises(ValidationError, match="at least one filter"):
        await ctx.manager(Article).update_many({}, {"status": "archived"})


async def test_bulk_create_returns_rows_with_ids_and_timestamps(ctx):
    articles = ctx.manager(Article)
    created = await articles.bulk_create([{"title": f"n{i}", "views": i} for i in range(250)])
    assert len(created) == 250 and len({a.id for a in created}) == 250
    assert await articles.count() == 250
    stored = await articles.get(created[7].id)
    assert (stored.title, stored.views, stored.version) == ("n7", 7, 1)
    assert stored.created_at is not None and stored.updated_at is not None
    assert await ctx.audit_logs.count({"table_name": "test_article", "action": "create"}) == 250


async def test_bulk_create_with_one_bad_row_inserts_nothing_and_names_the_row(ctx):
    rows = [{"title": "ok"}, {"title": "x" * 201}, {"title": "ok too"}]
    with pytest.raises(ValidationError) as caught:
        await ctx.manager(Article).bulk_create(rows)
    assert list(caught.value.errors) == ["rows[1].title"]
    assert await Article.all_objects.all().count() == 0


async def test_get_or_create_creates_once_then_finds(ctx):
    authors = ctx.manager(Author)
    first, created = await authors.get_or_create(defaults={"name": "Ada"}, email="ada@example.com")
    again, created_again = await authors.get_or_create(defaults={"name": "Other"}, email="ada@example.com")
    assert created and not created_again
    assert again.id == first.id and again.name == "Ada"


async def test_upsert_creates_then_updates_by_natural_key(ctx):
    authors = ctx.manager(Author)
    made, created = await authors.upsert(defaults={"name": "Ada"}, email="ada@example.com")
    changed, created_again = await authors.upsert(defaults={"name": "Ada L."}, email="ada@example.com")
    assert created and not created_again and changed.id == made.id
    assert (await authors.get(made.id)).name == "Ada L." and changed.version == 2


async def test_count_and_exists_take_filters(ctx):
    articles = ctx.manager(Article)
    await articles.bulk_create([{"title": f"a{i}", "views": i} for i in range(10)])
    assert await articles.count({"views__gte": 5}) == 5
    assert await articles.exists({"title": "a3"})
    assert not await articles.exists({"title": "nope"})


async def test_fields_with_null_filter_and_datetimes_round_trip(ctx):
    articles = ctx.manager(Article)
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    await articles.create({"title": "dated", "published_at": when})
    await articles.create({"title": "undated"})
    assert [a.title for a in (await articles.find_many({"published_at": None})).items] == ["undated"]
    dated = (await articles.find_many({"published_at__gte": "2026-01-01T00:00:00+00:00"})).items
    assert [a.title for a in dated] == ["dated"] and dated[0].published_at == when


async def test_the_context_exposes_managers_by_plural_name(ctx):
    assert ctx.articles is ctx.manager(Article)
    assert ctx.authors.model is Author
    with pytest.raises(AttributeError, match="known:"):
        ctx.no_such_thing


async def test_get_returns_exactly_what_tortoise_fetches_for_every_field_type(ctx):
    import datetime as dt

    from datalayer.agent.models import ParsedRequest, Task, TaskStatus

    request = await ctx.manager(ParsedRequest).create({"raw_input": "build it", "intent": "feature"})
    task = await ctx.tasks.create({
        "parsed_request_id": request.id, "title": "t", "status": TaskStatus.RUNNING, "priority": 3,
        "due_at": dt.datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone.utc),
        "results": {"files": ["a.py"], "score": 0.5, "nested": {"ok": True}},
    })
    ours = await ctx.tasks.get(task.id)
    theirs = await Task.get(id=task.id)
    for name in Task._meta.fields_db_projection:
        assert getattr(ours, name) == getattr(theirs, name), name
        assert type(getattr(ours, name)) is type(getattr(theirs, name)), name
    assert ours.status is TaskStatus.RUNNING and ours.results["nested"] == {"ok": True}
    await ours.fetch_related("parsed_request")  # a normal, saved instance: relations and saves work
    assert ours.parsed_request.id == request.id


async def test_create_returns_the_row_as_stored(ctx):
    """PostgreSQL creates in one statement from values completed in Python: what comes back must be what a
    fetch returns (defaults, stamps, decimals at their scale, JSON, foreign keys)."""
    author = await ctx.authors.create({"name": "Ann", "email": "ann@example.com"})
    created = await ctx.cached_notes.create({"title": "n", "amount": Decimal("12.5"), "meta": {"tags": ["a"]},
                                             "author_id": author.id})
    fetched = await CachedNote.get(id=created.id)
    for name in CachedNote._meta.fields_db_projection:
        assert getattr(created, name) == getattr(fetched, name), name
    assert str(created.amount) == str(fetched.amount) == "12.5000"
    assert created.version == 1
    [entry] = await ctx.audit_logs.history(CachedNote, created.id)
    assert entry.changes["title"] == [None, "n"] and entry.changes["amount"] == [None, "12.5000"]


async def test_bulk_created_rows_and_their_audit_show_decimals_as_stored(ctx):
    [row] = await ctx.cached_notes.bulk_create([{"title": "n", "amount": Decimal("1.5")}])
    assert str(row.amount) == str((await CachedNote.get(id=row.id)).amount) == "1.5000"
    [entry] = await ctx.audit_logs.history(CachedNote, row.id)
    assert entry.changes["amount"] == [None, "1.5000"]
