import pytest

from datalayer import ConflictError, on_commit, transactional
from tests.models import Article, Author


class Boom(Exception):
    pass


async def test_an_exception_rolls_back_every_row_and_audit_row(ctx):
    with pytest.raises(Boom):
        async with ctx.transaction() as tx:
            await tx.manager(Article).create({"title": "one"})
            await tx.articles.bulk_create([{"title": "two"}, {"title": "three"}])
            article = await tx.articles.create({"title": "four"})
            await tx.articles.update(article.id, {"title": "five"})
            raise Boom()
    assert await Article.all_objects.all().count() == 0
    assert await ctx.audit_logs.count() == 0


async def test_a_driver_error_inside_a_transaction_rolls_it_back(ctx):
    await ctx.manager(Author).create({"name": "A", "email": "a@example.com"})
    with pytest.raises(ConflictError):
        async with ctx.transaction():
            await ctx.manager(Article).create({"title": "written first"})
            await ctx.manager(Author).create({"name": "B", "email": "a@example.com"})
    assert await ctx.manager(Article).count() == 0


async def test_a_caught_conflict_inside_a_transaction_does_not_poison_it(ctx):
    # each manager write is its own savepoint, so catching its error leaves the outer transaction usable
    await ctx.manager(Author).create({"name": "A", "email": "a@example.com"})
    async with ctx.transaction():
        with pytest.raises(ConflictError):
            await ctx.manager(Author).create({"name": "B", "email": "a@example.com"})
        await ctx.manager(Article).create({"title": "still fine"})
    assert await ctx.manager(Article).count() == 1


async def test_nested_transactions_are_savepoints(ctx):
    async with ctx.transaction():
        await ctx.articles.create({"title": "outer"})
        with pytest.raises(Boom):
            async with ctx.transaction():
                await ctx.articles.create({"title": "inner"})
                raise Boom()
        await ctx.articles.create({"title": "outer again"})
    titles = sorted(a.title for a in (await ctx.articles.find_many()).items)
    assert titles == ["outer", "outer again"]
    assert await ctx.audit_logs.count() == 2


async def test_the_transactional_decorator_runs_a_function_in_one_transaction(ctx):
    @transactional
    async def publish_two(fail: bool):
        await ctx.articles.create({"title": "a"})
        await ctx.articles.create({"title": "b"})
        if fail:
            raise Boom()

    with pytest.raises(Boom):
        await publish_two(True)
    assert await ctx.articles.count() == 0
    await publish_two(False)
    assert await ctx.articles.count() == 2


async def test_commit_hooks_run_after_commit_and_never_after_rollback(ctx):
    ran = []

    async def hook():
        ran.append(await ctx.articles.count())  # sees the committed row

    async with ctx.transaction():
        await ctx.articles.create({"title": "x"})
        await on_commit(hook)
        assert ran == []
    assert ran == [1]

    with pytest.raises(Boom):
        async with ctx.transaction():
            await on_commit(hook)
            raise Boom()
    async with ctx.transaction():
        with pytest.raises(Boom):
            async with ctx.transaction():
                await on_commit(hook)  # inside a savepoint that rolls back
                raise Boom()
    assert ran == [1]


async def test_write_listeners_hear_only_committed_writes(ctx):
    heard = []

    async def listener(manager, ids):
        heard.extend(ids)

    articles = ctx.articles
    articles.add_write_listener(listener)
    try:
        kept = await articles.create({"title": "kept"})
        with pytest.raises(Boom):
            async with ctx.transaction():
                await articles.create({"title": "rolled back"})
                raise Boom()
        await articles.delete(kept.id)
    finally:
        articles._write_listeners.remove(listener)
    assert heard == [kept.id, kept.id]
