"""Concurrent work inside one transaction is served one statement or nested block at a time, and work that
outlives its block fails with TransactionClosedError and writes nothing. Real databases, both engines."""

from __future__ import annotations

import asyncio

import pytest

from datalayer import ConflictError, TransactionClosedError, on_commit
from tests.models import Article, Author


class Boom(Exception):
    pass


async def _titles(ctx) -> list[str]:
    return sorted(a.title for a in await Article.all_objects.all())


async def test_gathered_creates_in_one_transaction_all_commit(ctx):
    async with ctx.transaction() as tx:
        created = await asyncio.gather(*(tx.manager(Article).create({"title": f"t{n}"}) for n in range(10)))
        assert await tx.manager(Article).count() == 10  # visible inside, before the commit
    assert len({a.id for a in created}) == 10
    assert await _titles(ctx) == sorted(f"t{n}" for n in range(10))
    assert await ctx.audit_logs.count() == 10


async def test_gathered_writes_roll_back_together_when_the_block_fails(ctx):
    with pytest.raises(Boom):
        async with ctx.transaction() as tx:
            await asyncio.gather(*(tx.articles.create({"title": f"t{n}"}) for n in range(5)),
                                 tx.articles.find_many(), tx.articles.count())
            raise Boom()
    assert await Article.all_objects.all().count() == 0
    assert await ctx.audit_logs.count() == 0


async def test_one_conflicting_task_in_a_gather_loses_only_its_own_row(ctx):
    await ctx.manager(Author).create({"name": "A", "email": "taken@example.com"})
    async with ctx.transaction() as tx:
        outcomes = await asyncio.gather(
            *(tx.manager(Author).create({"name": f"N{n}", "email": f"n{n}@example.com"}) for n in range(4)),
            tx.manager(Author).create({"name": "dup", "email": "taken@example.com"}),
            return_exceptions=True,
        )
        await tx.manager(Article).create({"title": "after the conflict"})  # the transaction is still usable
    assert isinstance(outcomes[-1], ConflictError) and outcomes[-1].fields == ("email",)
    assert not any(isinstance(o, BaseException) for o in outcomes[:-1])
    assert await ctx.manager(Author).count() == 5
    assert await _titles(ctx) == ["after the conflict"]


async def test_concurrent_nested_blocks_are_whole_savepoints_one_after_another(ctx):
    async def writer(n: int) -> str:
        try:
            async with ctx.transaction():
                await ctx.articles.create({"title": f"a{n}"})
                await asyncio.sleep(0)  # let the other writers try to interleave
                await asyncio.gather(ctx.articles.create({"title": f"b{n}"}), ctx.articles.count())
                if n % 3 == 0:
                    raise Boom()
        except Boom:
            return "rolled back"
        return "kept"

    async with ctx.transaction():
        outcomes = await asyncio.gather(*(writer(n) for n in range(9)))
    kept = [n for n in range(9) if n % 3]
    assert outcomes.count("rolled back") == 3
    assert await _titles(ctx) == sorted([f"a{n}" for n in kept] + [f"b{n}" for n in kept])
    assert await ctx.audit_logs.count() == 2 * len(kept)


async def test_nested_blocks_inside_concurrent_nested_blocks(ctx):
    async def inner(n: int, m: int) -> None:
        async with ctx.transaction():
            await ctx.articles.create({"title": f"{n}.{m}"})
            if m == 1:
                raise Boom()

    async def outer(n: int) -> None:
        async with ctx.transaction():
            results = await asyncio.gather(*(inner(n, m) for m in range(3)), return_exceptions=True)
            assert [type(r) for r in results] == [type(None), Boom, type(None)]

    async with ctx.transaction():
        await asyncio.gather(*(outer(n) for n in range(3)))
    assert await _titles(ctx) == sorted(f"{n}.{m}" for n in range(3) for m in (0, 2))


async def test_a_statement_on_the_outer_connection_inside_a_nested_block_joins_the_savepoint(ctx):
    async with ctx.transaction() as outer:
        with pytest.raises(Boom):
            async with ctx.transaction():
                # the outer block's connection, captured before: runs inside the open savepoint, no deadlock
                await asyncio.wait_for(Article.create(title="inner", using_db=outer.connection), 5)
                raise Boom()
        await Article.create(title="outer", using_db=outer.connection)
    assert await _titles(ctx) == ["outer"]


async def test_a_task_outliving_its_block_fails_clearly_and_writes_nothing(ctx):
    async with ctx.transaction() as tx:
        async def late() -> None:
            await asyncio.sleep(0.05)
            await tx.manager(Article).create({"title": "late"})

        task = asyncio.create_task(late())
    with pytest.raises(TransactionClosedError, match="block has already ended"):
        await task
    assert await Article.all_objects.all().count() == 0
    assert await ctx.audit_logs.count() == 0
    await ctx.articles.create({"title": "the next call is fine"})
    assert await _titles(ctx) == ["the next call is fine"]


async def test_a_task_still_writing_when_the_block_ends_keeps_only_what_finished_inside(ctx):
    first_done = asyncio.Event()

    async def writer() -> None:
        for n in range(50):
            await ctx.articles.create({"title": f"w{n}"})
            first_done.set()

    async with ctx.transaction():
        task = asyncio.create_task(writer())
        await first_done.wait()
    with pytest.raises(TransactionClosedError):
        await task
    titles = await _titles(ctx)
    assert titles == ["w0"] or titles == ["w0", "w1"]  # a write already running when the block ended
    assert await ctx.audit_logs.count() == len(titles)  # every kept row has its audit row: no half writes


async def test_a_raw_statement_or_queryset_after_the_block_is_refused(ctx):
    async with ctx.transaction() as tx:
        connection = tx.connection
    with pytest.raises(TransactionClosedError):
        await Article.all().using_db(connection).count()
    with pytest.raises(TransactionClosedError):
        await connection.execute_query("SELECT 1")
    assert await ctx.articles.count() == 0


async def test_the_scope_refuses_use_after_its_block(ctx):
    async with ctx.transaction() as tx:
        await tx.articles.create({"title": "inside"})
    with pytest.raises(TransactionClosedError):
        tx.manager(Article)
    with pytest.raises(TransactionClosedError):
        tx.articles  # noqa: B018
    assert await _titles(ctx) == ["inside"]


async def test_on_commit_from_a_task_outliving_its_block_raises(ctx):
    ran = []

    async def hook() -> None:
        ran.append(1)

    async with ctx.transaction():
        async def late() -> None:
            await asyncio.sleep(0.02)
            await on_commit(hook)

        task = asyncio.create_task(late())
    with pytest.raises(TransactionClosedError):
        await task
    assert ran == []


async def test_a_nested_block_outliving_its_enclosing_block_is_rolled_back(ctx):
    in_nested = asyncio.Event()
    proceed = asyncio.Event()

    async def nested() -> None:
        async with ctx.transaction():
            await ctx.articles.create({"title": "too late"})
            in_nested.set()
            await proceed.wait()

    async with ctx.transaction():
        await ctx.articles.create({"title": "on time"})
        task = asyncio.create_task(nested())
        await in_nested.wait()
        asyncio.get_running_loop().call_later(0.05, proceed.set)  # the block's end waits for the nested block
    with pytest.raises(TransactionClosedError, match="rolled back"):
        await task
    assert await _titles(ctx) == ["on time"]


async def test_separate_transactions_still_run_side_by_side(ctx, backend):
    async def one(n: int) -> None:
        async with ctx.transaction() as tx:
            await asyncio.gather(tx.articles.create({"title": f"x{n}"}), tx.articles.create({"title": f"y{n}"}))

    await asyncio.gather(*(one(n) for n in range(6)))
    assert await ctx.articles.count() == 12
    stats = ctx.pool_stats()
    assert (stats.in_use, stats.waiting) == (0, 0)


async def test_a_block_cancelled_while_it_waits_for_other_tasks_rolls_back_and_the_next_call_works(ctx):
    in_nested, proceed = asyncio.Event(), asyncio.Event()

    async def nested() -> None:
        async with ctx.transaction():
            await ctx.articles.create({"title": "nested"})
            in_nested.set()
            await proceed.wait()

    spawned: list[asyncio.Task] = []

    async def block() -> None:
        async with ctx.transaction():
            await ctx.articles.create({"title": "outer"})
            spawned.append(asyncio.create_task(nested()))
            await in_nested.wait()
        # the block's end waits for the nested block; it is cancelled meanwhile

    task = asyncio.create_task(block())
    await in_nested.wait()
    await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.sleep(0.02)
    proceed.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(TransactionClosedError):
        await spawned[0]
    assert await Article.all_objects.all().count() == 0
    await ctx.articles.create({"title": "next"})
    assert await _titles(ctx) == ["next"]
    stats = ctx.pool_stats()
    assert (stats.in_use, stats.waiting) == (0, 0)
