import pytest

from datalayer import ValidationError
from tests.models import Article


async def test_pages_report_totals_and_neighbours(ctx):
    articles = ctx.manager(Article)
    await articles.bulk_create([{"title": f"t{i:02}", "views": i} for i in range(45)])
    page = await articles.find_many(page=2, limit=20, sort_by="views", sort_order="desc")
    assert [a.views for a in page.items] == list(range(24, 4, -1))
    assert (page.total, page.page, page.limit, page.pages, page.has_next, page.has_prev) == (45, 2, 20, 3, True, True)
    last = await articles.find_many(page=3, limit=20, sort_by="views")
    assert len(last.items) == 5 and not last.has_next
    beyond = await articles.find_many(page=9, limit=20)
    assert beyond.items == [] and beyond.total == 45


@pytest.mark.parametrize(("page", "limit", "key"), [(0, 20, "page"), (1, 0, "limit"), (1, 101, "limit"), ("2", 20, "page")])
async def test_page_and_limit_out_of_range_raise(ctx, page, limit, key):
    with pytest.raises(ValidationError) as caught:
        await ctx.manager(Article).find_many(page=page, limit=limit)
    assert key in caught.value.errors


async def test_keyset_walks_every_row_once_in_order(ctx):
    articles = ctx.manager(Article)
    await articles.bulk_create([{"title": f"t{i}", "views": i % 7} for i in range(95)])
    seen, cursor = [], None
    while True:
        chunk = await articles.find_after(cursor, limit=10, sort_by="views", sort_order="desc")
        seen.extend(chunk.items)
        cursor = chunk.next_cursor
        if cursor is None:
            break
    assert len(seen) == 95 and len({a.id for a in seen}) == 95
    keys = [(a.views, str(a.id)) for a in seen]
    assert keys == sorted(keys, reverse=True)


async def test_keyset_is_stable_when_rows_are_inserted_before_the_cursor(ctx):
    articles = ctx.manager(Article)
    await articles.bulk_create([{"title": f"t{i}", "views": 100 + i} for i in range(30)])
    first = await articles.find_after(limit=10, sort_by="views")
    await articles.bulk_create([{"title": "early", "views": 1}])  # lands before the cursor
    second = await articles.find_after(first.next_cursor, limit=10, sort_by="views")
    assert [a.views for a in second.items] == list(range(110, 120))


async def test_keyset_skips_deleted_rows_and_respects_filters(ctx):
    articles = ctx.manager(Article)
    rows = await articles.bulk_create([{"title": f"t{i}", "status": "a" if i % 2 else "b"} for i in range(20)])
    await articles.delete(rows[1].id)
    chunk = await articles.find_after(limit=100, filters={"status": "a"})
    assert len(chunk.items) == 9 and chunk.next_cursor is None


@pytest.mark.parametrize("cursor", ["garbage", "eyJzIjoiY3JlYXRlZF9hdCJ9", "", "!!!!"])
async def test_a_mangled_cursor_is_a_validation_error(ctx, cursor):
    with pytest.raises(ValidationError) as caught:
        await ctx.manager(Article).find_after(cursor)
    assert "cursor" in caught.value.errors


async def test_a_cursor_from_another_sort_is_refused(ctx):
    articles = ctx.manager(Article)
    await articles.bulk_create([{"title": f"t{i}"} for i in range(5)])
    chunk = await articles.find_after(limit=2, sort_by="title")
    with pytest.raises(ValidationError, match="another sort"):
        await articles.find_after(chunk.next_cursor, limit=2, sort_by="views")


async def test_keyset_refuses_a_nullable_sort_field(ctx):
    with pytest.raises(ValidationError, match="NULL"):
        await ctx.manager(Article).find_after(sort_by="published_at")
