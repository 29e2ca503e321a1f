import asyncio

from datalayer import ConcurrencyError
from tests.models import Article


async def test_racing_updates_with_the_same_expected_version_have_one_winner(ctx):
    articles = ctx.manager(Article)
    article = await articles.create({"title": "v1"})

    async def attempt(n):
        try:
            await articles.update(article.id, {"title": f"writer {n}"}, expected_version=1)
            return "won"
        except ConcurrencyError as exc:
            assert (exc.expected_version, exc.actual_version) == (1, 2)
            return "lost"

    outcomes = await asyncio.gather(*(attempt(n) for n in range(20)))
    assert outcomes.count("won") == 1
    stored = await articles.get(article.id)
    assert stored.version == 2
    assert len(await ctx.audit_logs.history(Article, article.id)) == 2


async def test_twenty_writers_retrying_on_conflict_lose_no_update(ctx):
    articles = ctx.manager(Article)
    article = await articles.create({"title": "counter", "views": 0})
    winners_per_version = {}

    async def increment(n):
        while True:
            current = await articles.get(article.id)
            try:
                await articles.update(article.id, {"views": current.views + 1}, expected_version=current.version)
            except ConcurrencyError:
                await asyncio.sleep(0)
                continue
            winners_per_version.setdefault(current.version, []).append(n)
            return

    await asyncio.gather(*(increment(n) for n in range(20)))
    stored = await articles.get(article.id)
    assert stored.views == 20 and stored.version == 21
    assert all(len(w) == 1 for w in winners_per_version.values()) and len(winners_per_version) == 20


async def test_updates_without_expected_version_are_serialised_not_lost(ctx):
    articles = ctx.manager(Article)
    article = await articles.create({"title": "t"})
    await asyncio.gather(*(articles.update(article.id, {"body": f"b{n}"}) for n in range(20)))
    stored = await articles.get(article.id)
    assert stored.version == 21
    assert len(await ctx.audit_logs.history(Article, article.id)) == 21
