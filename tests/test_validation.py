import pytest

from datalayer import ValidationError
from tests.models import Article, ArticleCreate, Author


async def test_unknown_and_managed_fields_are_rejected_by_name(ctx):
    for field in ("colour", "version", "deleted_at", "created_by", "__class__"):
        with pytest.raises(ValidationError) as caught:
            await ctx.manager(Article).create({"title": "x", field: 1})
        assert field in caught.value.errors and "allowed:" in caught.value.errors[field]
    assert await Article.all_objects.all().count() == 0


async def test_missing_required_fields_and_bad_types_name_each_field(ctx):
    with pytest.raises(ValidationError) as caught:
        await ctx.manager(Article).create({"views": "lots", "body": 3})
    assert set(caught.value.errors) == {"title", "views", "body"}
    assert caught.value.errors["title"] == "is required"


async def test_text_longer_than_the_column_is_rejected_before_the_database(ctx):
    with pytest.raises(ValidationError) as caught:
        await ctx.manager(Article).create({"title": "x" * 201})
    assert "200" in caught.value.errors["title"]


async def test_update_validates_too_and_leaves_the_row_as_it_was(ctx):
    articles = ctx.manager(Article)
    article = await articles.create({"title": "kept"})
    for bad in ({"title": None}, {"views": "x"}, {"id": "00000000-0000-0000-0000-000000000000"}, {"nope": 1}):
        with pytest.raises(ValidationError):
            await articles.update(article.id, bad)
    stored = await articles.get(article.id)
    assert (stored.title, stored.version) == ("kept", 1)


async def test_a_declared_schema_adds_its_own_rules(ctx, monkeypatch):
    monkeypatch.setattr(Article, "create_schema", ArticleCreate)
    with pytest.raises(ValidationError) as caught:
        await ctx.manager(Article).create({"title": "x", "status": "secret-status", "views": -1})
    assert set(caught.value.errors) == {"status", "views"}
    created = await ctx.manager(Article).create({"title": "ok", "status": "published"})
    assert created.status == "published"


async def test_a_declared_schema_does_not_turn_true_and_false_into_numbers(ctx, monkeypatch):
    """``views: int`` in a declared schema is pydantic's lax int, which reads True as 1: the derived rule
    (true and false are not numbers) still holds, on create, update and bulk_create, and nothing is written."""
    monkeypatch.setattr(Article, "create_schema", ArticleCreate)
    monkeypatch.setattr(Article, "update_schema", ArticleCreate)
    articles = ctx.manager(Article)
    with pytest.raises(ValidationError) as caught:
        await articles.create({"title": "x", "views": True})
    assert caught.value.errors == {"views": "expected a number, got true"}
    article = await articles.create({"title": "kept", "views": 3})
    with pytest.raises(ValidationError) as caught:
        await articles.update(article.id, {"title": "kept", "views": False})
    assert caught.value.errors == {"views": "expected a number, got false"}
    with pytest.raises(ValidationError) as caught:
        await articles.bulk_create([{"title": "a", "views": 2}, {"title": "b", "views": True}])
    assert caught.value.errors == {"rows[1].views": "expected a number, got true"}
    stored = await articles.get(article.id)
    assert (stored.views, stored.version, await Article.all_objects.all().count()) == (3, 1, 1)
    assert [row.views for row in await articles.bulk_create([{"title": "c", "views": 5}])] == [5]


async def test_a_missing_foreign_key_target_is_a_validation_error(ctx):
    with pytest.raises(ValidationError):
        await ctx.manager(Article).create({"title": "x", "author_id": "00000000-0000-0000-0000-000000000001"})
    assert await Article.all_objects.all().count() == 0
    assert await ctx.audit_logs.count() == 0


async def test_validation_error_messages_name_model_and_field(ctx):
    with pytest.raises(ValidationError) as caught:
        await ctx.manager(Author).create({"name": "A"})
    assert str(caught.value).startswith("Author: ") and "email" in str(caught.value)
