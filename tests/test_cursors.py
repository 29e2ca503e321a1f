"""Client-supplied paging input (cursors, pages, limits, sorts, flags): a ValidationError naming it, alike on
both engines, never a driver error, never rows from a cursor that was edited."""

import base64
import json

import pytest

from datalayer import ValidationError
from tests.models import Article


def _payload(cursor):
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def _cursor(payload):
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


async def _first_chunk(ctx, sort_by):
    articles = ctx.manager(Article)
    await articles.bulk_create([{"title": f"t{i:02}", "views": i} for i in range(6)])
    return await articles.find_after(limit=2, sort_by=sort_by)


@pytest.mark.parametrize(
    ("sort_by", "value"),
    [
        ("created_at", ["v", "not a date"]),
        ("created_at", ["dt", "2024-02-30T00:00:00"]),
        ("created_at", ["u", "3f2504e0-4f89-11d3-9a0c-0305e82c3301"]),
        ("created_at", ["v", None]),
        ("created_at", ["v", {"$gt": ""}]),
        ("views", ["dt", "2024-01-01T00:00:00+00:00"]),
        ("views", ["v", "many"]),
        ("views", ["v", 2**40]),
        ("views", ["v", True]),
        ("views", ["v", [1, 2]]),
        ("title", ["v", 12]),
        ("title", ["v", "x\x00"]),
        ("id", ["u", "not-a-uuid"]),
    ],
)
async def test_a_cursor_whose_value_was_edited_is_a_validation_error(ctx, sort_by, value):
    chunk = await _first_chunk(ctx, sort_by)
    tampered = _cursor({**_payload(chunk.next_cursor), "v": value})
    with pytest.raises(ValidationError) as caught:
        await ctx.manager(Article).find_after(tampered, limit=2, sort_by=sort_by)
    assert list(caught.value.errors) == ["cursor"]
    assert "cursor=None" in caught.value.errors["cursor"]


@pytest.mark.parametrize("last_id", ["not-a-uuid", 12, None, ["x"]])
async def test_a_cursor_whose_id_was_edited_is_a_validation_error(ctx, last_id):
    chunk = await _first_chunk(ctx, "views")
    tampered = _cursor({**_payload(chunk.next_cursor), "id": last_id})
    with pytest.raises(ValidationError) as caught:
        await ctx.manager(Article).find_after(tampered, limit=2, sort_by="views")
    assert list(caught.value.errors) == ["cursor"]


NOT_CURSORS = [12, ["x"], "x" * 20_000, _cursor(["v", 1]), _cursor({"s": "views", "o": "a", "v": "flat", "id": "x"})]


@pytest.mark.parametrize("cursor", NOT_CURSORS)
async def test_a_cursor_that_is_not_one_is_a_validation_error(ctx, cursor):
    with pytest.raises(ValidationError) as caught:
        await ctx.manager(Article).find_after(cursor, sort_by="views")
    assert list(caught.value.errors) == ["cursor"]


async def test_an_untouched_cursor_still_walks_on(ctx):
    chunk = await _first_chunk(ctx, "views")
    following = await ctx.manager(Article).find_after(chunk.next_cursor, limit=2, sort_by="views")
    assert [a.views for a in following.items] == [2, 3]


async def test_a_page_too_far_to_address_is_a_validation_error(ctx):
    articles = ctx.manager(Article)
    for page, limit in [(10**18, 20), (2**62, 100), (10**30, 1)]:
        with pytest.raises(ValidationError) as caught:
            await articles.find_many(page=page, limit=limit)
        assert list(caught.value.errors) == ["page"]
    far = await articles.find_many(page=10**18, limit=1)  # an offset that fits: just past the last row
    assert far.items == [] and far.total == 0


@pytest.mark.parametrize(
    ("call", "key"),
    [
        ({"page": True}, "page"),
        ({"page": 1.0}, "page"),
        ({"limit": "10"}, "limit"),
        ({"limit": None}, "limit"),
        ({"sort_by": ["title"]}, "sort_by"),
        ({"sort_by": 3}, "sort_by"),
        ({"sort_order": None}, "sort_order"),
        ({"sort_order": ["asc"]}, "sort_order"),
        ({"include_deleted": "no"}, "include_deleted"),
        ({"only_deleted": 1}, "only_deleted"),
        ({"filters": [("title", "x")]}, "filters"),
        ({"search": 12}, "search"),
    ],
)
async def test_find_many_input_of_the_wrong_type_is_a_validation_error_naming_it(ctx, call, key):
    with pytest.raises(ValidationError) as caught:
        await ctx.manager(Article).find_many(**call)
    assert key in caught.value.errors


@pytest.mark.parametrize(
    ("call", "key"),
    [
        ({"limit": True}, "limit"),
        ({"limit": 10**6}, "limit"),
        ({"sort_by": {"x": 1}}, "sort_by"),
        ({"sort_order": 1}, "sort_order"),
        ({"include_deleted": "false"}, "include_deleted"),
        ({"only_deleted": "yes"}, "only_deleted"),
    ],
)
async def test_find_after_input_of_the_wrong_type_is_a_validation_error_naming_it(ctx, call, key):
    with pytest.raises(ValidationError) as caught:
        await ctx.manager(Article).find_after(**call)
    assert key in caught.value.errors


async def test_find_after_walks_the_trash_with_only_deleted_as_find_many_lists_it(ctx):
    articles = ctx.manager(Article)
    made = await articles.bulk_create([{"title": f"t{i:02}", "views": i % 3} for i in range(9)])
    for row in made[1::2]:
        await articles.delete(row.id)
    walked, cursor = [], None
    for _ in range(10):
        chunk = await articles.find_after(cursor, limit=2, sort_by="title", only_deleted=True,
                                          filters={"views__lte": 1})
        walked += [row.title for row in chunk.items]
        if (cursor := chunk.next_cursor) is None:
            break
    listed = await articles.find_many({"views__lte": 1}, sort_by="title", only_deleted=True, limit=100)
    assert walked == [row.title for row in listed.items] == ["t01", "t03", "t07"]
    assert [row.title for row in (await articles.find_after(limit=100, sort_by="title")).items] == \
        ["t00", "t02", "t04", "t06", "t08"]


async def test_count_and_exists_check_their_flags_too(ctx):
    with pytest.raises(ValidationError, match="include_deleted"):
        await ctx.manager(Article).count(include_deleted="yes")
    with pytest.raises(ValidationError, match="only_deleted"):
        await ctx.manager(Article).count(only_deleted=None)
    with pytest.raises(ValidationError, match="include_deleted"):
        await ctx.manager(Article).exists(include_deleted=0)


@pytest.mark.parametrize(
    "filters",
    [{"published_at__gte": "2024-13-01"}, {"views": True}, {"views__in": [1, "x"]}, {"id__in": ["nope"]},
     {"views__range": ["a", "b"]}, {"title__startswith": 5}, {"status__in": [None]}],
)
async def test_filter_values_of_the_wrong_type_are_refused_alike(ctx, filters):
    for call in (ctx.manager(Article).find_many, ctx.manager(Article).find_after):
        with pytest.raises(ValidationError) as caught:
            await call(filters=filters)
        assert list(caught.value.errors) == list(filters)
    with pytest.raises(ValidationError):
        await ctx.manager(Article).count(filters)
