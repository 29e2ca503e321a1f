import pytest
from tortoise import fields
from tortoise.manager import Manager

from datalayer import NotFoundError, SoftDeleteManager, ValidationError
from tests.models import Article, Author, Comment


async def test_soft_deleted_rows_are_invisible_to_get_find_many_count_and_exists(ctx):
    articles = ctx.manager(Article)
    gone = await articles.create({"title": "gone"})
    await articles.create({"title": "kept"})
    await articles.delete(gone.id)

    with pytest.raises(NotFoundError):
        await articles.get(gone.id)
    assert await articles.find(gone.id) is None
    page = await articles.find_many()
    assert [a.title for a in page.items] == ["kept"] and page.total == 1
    assert await articles.count() == 1
    assert not await articles.exists({"title": "gone"})
    assert await Article.filter(title="gone").count() == 0  # Tortoise's own default manager hides it too


async def test_deleted_rows_are_reachable_when_asked(ctx):
    articles = ctx.manager(Article)
    gone = await articles.create({"title": "gone"})
    await articles.create({"title": "kept"})
    await articles.delete(gone.id)

    assert (await articles.get(gone.id, include_deleted=True)).deleted_at is not None
    assert await articles.count(include_deleted=True) == 2
    only = await articles.find_many(only_deleted=True)
    assert [a.id for a in only.items] == [gone.id]
    assert await Article.all_objects.filter(id=gone.id).count() == 1


async def test_soft_deleted_children_are_hidden_through_relations_and_prefetch(ctx):
    article = await ctx.manager(Article).create({"title": "post"})
    comments = ctx.manager(Comment)
    hidden = await comments.create({"article_id": article.id, "text": "spam"})
    await comments.create({"article_id": article.id, "text": "nice"})
    await comments.delete(hidden.id)

    assert [c.text for c in await article.comments.all()] == ["nice"]
    fetched = await Article.get(id=article.id).prefetch_related("comments")
    assert [c.text for c in fetched.comments] == ["nice"]
    await article.fetch_related("comments")
    assert [c.text for c in article.comments] == ["nice"]


async def test_soft_deleting_a_parent_hides_it_but_children_stay_reachable(ctx):
    article = await ctx.manager(Article).create({"title": "parent"})
    comment = await ctx.manager(Comment).create({"article_id": article.id, "text": "child"})
    await ctx.manager(Article).delete(article.id)

    assert await ctx.manager(Article).find(article.id) is None
    assert (await ctx.manager(Comment).get(comment.id)).text == "child"


async def test_restore_brings_back_a_soft_deleted_row(ctx):
    articles = ctx.manager(Article)
    article = await articles.create({"title": "back"})
    await articles.delete(article.id)
    restored = await articles.restore(article.id)
    assert restored.deleted_at is None and restored.deleted_by is None
    assert (await articles.get(article.id)).title == "back"


async def test_restore_of_a_live_row_and_delete_of_a_deleted_row_are_not_found(ctx):
    articles = ctx.manager(Article)
    article = await articles.create({"title": "x"})
    with pytest.raises(NotFoundError, match="no deleted row"):
        await articles.restore(article.id)
    await articles.delete(article.id)
    with pytest.raises(NotFoundError):
        await articles.delete(article.id)


async def test_hard_delete_removes_the_row_for_good_even_when_soft_deleted(ctx):
    articles = ctx.manager(Article)
    live = await articles.create({"title": "live"})
    soft = await articles.create({"title": "soft"})
    await articles.delete(soft.id)
    await articles.delete(live.id, hard=True)
    await articles.delete(soft.id, hard=True)
    assert await Article.all_objects.all().count() == 0
    with pytest.raises(NotFoundError):
        await articles.restore(soft.id)


async def test_every_model_has_its_own_soft_delete_manager(ctx):
    # a shared manager instance would be rebound to the last model defined and query its table
    assert isinstance(Article._meta.manager, SoftDeleteManager)
    assert Article._meta.manager is not Author._meta.manager
    assert '"test_article"' in Article.all().sql() and "deleted_at" in Article.all().sql()
    assert '"test_author"' in Author.all().sql()
    assert type(Article.all_objects) is Manager and "WHERE" not in Article.all_objects.all().sql()


def test_the_soft_delete_mixin_works_on_its_own():
    from tortoise.models import Model

    from datalayer import SoftDeleteMixin

    class Note(Model, SoftDeleteMixin):
        id = fields.IntField(primary_key=True)

        class Meta:
            table = "note_alone"

    assert isinstance(Note._meta.manager, SoftDeleteManager)
    assert Note._meta.manager._model is Note
    assert Note.all_objects._model is Note


async def test_update_of_a_soft_deleted_row_is_not_found_and_changes_nothing(ctx):
    articles = ctx.manager(Article)
    article = await articles.create({"title": "frozen"})
    await articles.delete(article.id)
    with pytest.raises(NotFoundError):
        await articles.update(article.id, {"title": "thawed"})
    assert (await Article.all_objects.get(id=article.id)).title == "frozen"


async def test_restore_on_a_model_without_soft_delete_is_a_validation_error(ctx):
    log_manager = ctx.audit_logs
    with pytest.raises(ValidationError, match="no soft delete"):
        await log_manager.restore("00000000-0000-0000-0000-000000000000")
