"""Filtering through relation paths (``filter_relations``): each row once, counted once, live related rows only."""

import pytest

from datalayer import ValidationError
from datalayer.analysis.models import DataAnalysis
from tests.models import Article, Author, Comment


async def _ada_with_three_matching_articles(ctx):
    authors, articles = ctx.manager(Author), ctx.manager(Article)
    ada = await authors.create({"name": "Ada", "email": "ada@example.com"})
    bob = await authors.create({"name": "Bob", "email": "bob@example.com"})
    for title in ("Rust notes", "Rust tips", "Rust again"):
        await articles.create({"title": title, "author_id": ada.id})
    await articles.create({"title": "Go notes", "author_id": bob.id})
    return ada, bob


async def test_a_parent_with_many_matching_children_comes_back_once_and_counts_once(ctx):
    ada, _ = await _ada_with_three_matching_articles(ctx)
    authors = ctx.manager(Author)
    page = await authors.find_many(filters={"articles__title__startswith": "Rust"})
    assert [a.id for a in page.items] == [ada.id]
    assert page.total == 1
    assert await authors.count({"articles__title__startswith": "Rust"}) == 1
    chunk = await authors.find_after(filters={"articles__title__startswith": "Rust"})
    assert [a.id for a in chunk.items] == [ada.id]
    assert await authors.exists({"articles__title__icontains": "notes"})
    assert await authors.count({"articles__title__icontains": "notes"}) == 2


async def test_pages_through_a_to_many_filter_have_no_repeats_and_the_right_total(ctx):
    authors, articles = ctx.manager(Author), ctx.manager(Article)
    for index in range(5):
        author = await authors.create({"name": f"a{index}", "email": f"a{index}@example.com"})
        await articles.bulk_create([{"title": f"hit {n}", "author_id": author.id} for n in range(4)])
    page = await authors.find_many(filters={"articles__title__startswith": "hit"}, limit=2, page=2)
    assert page.total == 5 and page.pages == 3 and len(page.items) == 2


async def test_soft_deleted_children_do_not_match(ctx):
    ada, _ = await _ada_with_three_matching_articles(ctx)
    authors, articles = ctx.manager(Author), ctx.manager(Article)
    for article in (await articles.find_many(filters={"author_id": ada.id})).items:
        await articles.delete(article.id)
    assert await authors.count({"articles__title__startswith": "Rust"}) == 0
    assert await authors.count({"articles__title__startswith": "Rust"}, include_deleted=True) == 0
    rust = (await articles.find_many(filters={"title": "Rust tips"}, include_deleted=True)).items[0]
    await articles.restore(rust.id)
    assert await authors.count({"articles__title__startswith": "Rust"}) == 1


async def test_a_soft_deleted_parent_is_not_reached_through_a_to_one_path(ctx):
    ada, _ = await _ada_with_three_matching_articles(ctx)
    articles = ctx.manager(Article)
    assert await articles.count({"author__name": "Ada"}) == 3
    await ctx.manager(Author).delete(ada.id)
    assert await articles.count({"author__name": "Ada"}) == 0


async def test_paths_of_two_hops_match_through_live_rows_only(ctx):
    ada, _ = await _ada_with_three_matching_articles(ctx)
    articles = ctx.manager(Article)
    rust = (await articles.find_many(filters={"title": "Rust tips"})).items[0]
    go = (await articles.find_many(filters={"title": "Go notes"})).items[0]
    comments = ctx.manager(Comment)
    await comments.bulk_create([{"article_id": rust.id, "text": "great"} for _ in range(3)])
    gone = await comments.create({"article_id": go.id, "text": "great"})
    await comments.delete(gone.id)
    page = await ctx.manager(Author).find_many(filters={"articles__comments__text": "great"})
    assert [a.id for a in page.items] == [ada.id] and page.total == 1


async def test_null_tests_through_a_relation_ask_whether_a_live_related_row_has_a_value(ctx):
    _, bob = await _ada_with_three_matching_articles(ctx)
    authors, articles = ctx.manager(Author), ctx.manager(Article)
    carol = await authors.create({"name": "Carol", "email": "carol@example.com"})
    orphan = await articles.create({"title": "anonymous"})

    def names(page):
        return sorted(a.name for a in page.items)

    assert names(await authors.find_many(filters={"articles__title__isnull": True})) == ["Carol"]
    assert names(await authors.find_many(filters={"articles__title__not_isnull": True})) == ["Ada", "Bob"]
    assert names(await authors.find_many(filters={"articles__title": None})) == ["Carol"]
    no_author = await articles.find_many(filters={"author__name__isnull": True})
    assert [a.id for a in no_author.items] == [orphan.id]
    await authors.delete(bob.id)  # Bob's article now has no live author
    assert await articles.count({"author__name__isnull": True}) == 2
    assert carol.id not in [a.id for a in (await authors.find_many(filters={"articles__status": "draft"})).items]


async def test_update_many_through_a_to_many_path_touches_each_row_once(ctx):
    ada, _ = await _ada_with_three_matching_articles(ctx)
    changed = await ctx.manager(Author).update_many({"articles__title__startswith": "Rust"}, {"name": "Ada L."})
    assert changed == 1
    assert (await ctx.manager(Author).get(ada.id)).version == 2


@pytest.mark.parametrize("key", ["articles__password_hash", "articles__author__password_hash", "articles",
                                 "articles__comments", "articles__title__regex"])
async def test_undeclared_or_secret_relation_paths_are_refused(ctx, key):
    with pytest.raises(ValidationError) as caught:
        await ctx.manager(Author).find_many(filters={key: "x"})
    assert key in caught.value.errors


async def test_relation_filter_values_are_coerced_like_own_fields(ctx):
    with pytest.raises(ValidationError) as caught:
        await ctx.manager(Author).find_many(filters={"articles__title__in": "a,b"})
    assert list(caught.value.errors) == ["articles__title__in"]
    with pytest.raises(ValidationError, match="NUL"):
        await ctx.manager(Author).find_many(filters={"articles__title": "x\x00"})


async def test_analyses_can_be_found_by_their_users_username(ctx):
    alice = await ctx.users.create_user("alice@example.com", "correct horse battery", username="alice")
    bob = await ctx.users.create_user("bob@example.com", "correct horse battery", username="bob")
    analyses = ctx.manager(DataAnalysis)
    await analyses.create({"user_id": alice.id, "title": "churn"})
    await analyses.create({"user_id": alice.id, "title": "growth"})
    await analyses.create({"user_id": bob.id, "title": "costs"})
    page = await analyses.find_many(filters={"user__username": "alice"}, sort_by="title")
    assert [a.title for a in page.items] == ["churn", "growth"] and page.total == 2
    with pytest.raises(ValidationError):
        await analyses.find_many(filters={"user__password_hash": "x"})


async def test_every_declared_relation_path_of_the_packs_resolves(ctx):
    from datalayer.managers.filters import filter_fields

    declared = [model for model in ctx.models if getattr(model, "filter_relations", ())]
    assert len(declared) >= 10
    for model in declared:
        assert set(model.filter_relations) <= set(filter_fields(model))
