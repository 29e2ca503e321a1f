import pytest

from datalayer import ValidationError
from tests.models import Article, Author

HOSTILE_KEYS = [
    "id; DROP TABLE test_article",
    "title) OR 1=1 --",
    "__class__",
    "_meta",
    "password_hash",           # a secret field on Author
    "author__password_hash",   # a secret reached through a relation
    "title__regex",            # unknown operator
    "title__icontains__x",
    "comments__text",          # a relation not declared in filter_relations
    "nonexistent",
]


async def _snapshot(ctx):
    rows = await Article.all_objects.all().order_by("id").values()
    return rows, await ctx.audit_logs.count()


@pytest.mark.parametrize("key", HOSTILE_KEYS)
async def test_filter_keys_outside_the_allow_list_raise_and_touch_nothing(ctx, key):
    author = await ctx.manager(Author).create({"name": "Ada", "email": "ada@example.com", "password_hash": "h"})
    await ctx.manager(Article).create({"title": "safe", "author_id": author.id})
    before = await _snapshot(ctx)
    model = Author if key == "password_hash" else Article
    with pytest.raises(ValidationError) as caught:
        await ctx.manager(model).find_many(filters={key: "x"})
    assert key in caught.value.errors
    for call in (ctx.manager(model).count, ctx.manager(model).exists):
        with pytest.raises(ValidationError):
            await call({key: "x"})
    with pytest.raises(ValidationError):
        await ctx.manager(model).update_many({key: "x"}, {})
    assert await _snapshot(ctx) == before


@pytest.mark.parametrize("sort_by", ["id; DROP TABLE test_article", "password_hash", "__class__", "comments", "changes"])
async def test_sort_fields_outside_the_allow_list_raise(ctx, sort_by):
    model = Author if sort_by == "password_hash" else Article
    with pytest.raises(ValidationError) as caught:
        await ctx.manager(model).find_many(sort_by=sort_by)
    assert "sort_by" in caught.value.errors


async def test_sort_order_must_be_asc_or_desc(ctx):
    with pytest.raises(ValidationError, match="sort_order"):
        await ctx.manager(Article).find_many(sort_order="desc; DROP TABLE x")


@pytest.mark.parametrize(
    ("filters", "key"),
    [
        ({"views": "many"}, "views"),
        ({"views__gte": [1, 2]}, "views__gte"),
        ({"published_at__lt": "yesterday"}, "published_at__lt"),
        ({"id": "not-a-uuid"}, "id"),
        ({"views__in": "1,2,3"}, "views__in"),
        ({"views__icontains": "1"}, "views__icontains"),
        ({"title__isnull": "yes"}, "title__isnull"),
        ({"views__range": [1]}, "views__range"),
        ({"title": {"$gt": ""}}, "title"),
    ],
)
async def test_filter_values_of_the_wrong_type_raise_naming_the_key(ctx, filters, key):
    with pytest.raises(ValidationError) as caught:
        await ctx.manager(Article).find_many(filters=filters)
    assert list(caught.value.errors) == [key]


@pytest.mark.parametrize("filters", ["", 0, False, [], (), "title=x", ["title"]])
async def test_filters_that_are_not_a_mapping_raise_even_when_empty(ctx, filters):
    """None or {} mean no filter; an empty string, list or a zero is a caller's mistake, not "everything"."""
    articles = ctx.manager(Article)
    await articles.create({"title": "one"})
    for call in (lambda: articles.find_many(filters=filters), lambda: articles.count(filters),
                 lambda: articles.exists(filters), lambda: articles.delete_many(filters)):
        with pytest.raises(ValidationError) as caught:
            await call()
        assert "filters" in caught.value.errors
    assert await articles.count() == await articles.count(None) == await articles.count({}) == 1


async def test_known_operators_filter_as_documented(ctx):
    articles = ctx.manager(Article)
    await articles.bulk_create([
        {"title": "Alpha", "views": 1, "status": "draft"},
        {"title": "beta", "views": 5, "status": "published"},
        {"title": "Gamma", "views": 9, "status": "published"},
    ])

    async def titles(**filters):
        page = await articles.find_many(filters=filters, sort_by="title")
        return [a.title for a in page.items]

    assert await titles(views__gt=1) == ["Gamma", "beta"]
    assert await titles(views__in=[1, 9]) == ["Alpha", "Gamma"]
    assert await titles(title__icontains="AM") == ["Gamma"]
    assert await titles(title__startswith="b") == ["beta"]
    assert await titles(views__range=[2, 9]) == ["Gamma", "beta"]
    assert await titles(status__not="published") == ["Alpha"]
    assert await titles(views="5") == ["beta"]  # coerced to the field's type


async def test_declared_relation_paths_can_be_filtered(ctx):
    ada = await ctx.manager(Author).create({"name": "Ada", "email": "ada@example.com"})
    bob = await ctx.manager(Author).create({"name": "Bob", "email": "bob@example.com"})
    await ctx.manager(Article).create({"title": "by ada", "author_id": ada.id})
    await ctx.manager(Article).create({"title": "by bob", "author_id": bob.id})
    page = await ctx.manager(Article).find_many(filters={"author__name": "Ada"})
    assert [a.title for a in page.items] == ["by ada"]
    page = await ctx.manager(Article).find_many(filters={"author_id": str(bob.id)})
    assert [a.title for a in page.items] == ["by bob"]


async def test_search_looks_in_the_declared_fields_only(ctx):
    articles = ctx.manager(Article)
    await articles.create({"title": "Hello world"})
    await articles.create({"title": "other", "body": "says HELLO"})
    await articles.create({"title": "nothing", "status": "hello"})  # status is not searchable
    page = await articles.find_many(search="hello", sort_by="title")
    assert [a.title for a in page.items] == ["Hello world", "other"]
    with pytest.raises(ValidationError, match="search"):
        await articles.find_many(search="x" * 201)
    with pytest.raises(ValidationError, match="no searchable fields"):
        await ctx.audit_logs.find_many(search="x")
