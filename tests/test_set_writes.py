"""Writes by filter (``update_many``, ``delete_many``, ``restore_many``) and one-row delete/restore leave the
rows, versions, ``updated_at`` stamps and audit rows ``update``/``delete``/``restore`` would, all or nothing,
and the cache hears of every row after the commit.

On PostgreSQL these writes take one statement (per batch); the tests marked ``postgres_only`` run the same
scenario through that path and through the generic one (``one_statement_writes = False``, what SQLite runs)
and compare what a user sees.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from decimal import Decimal

import pytest

from datalayer import ConcurrencyError, ConflictError, ModelManager, NotFoundError, ValidationError, acting_as
from datalayer.core.audit_log import AuditLog
from tests.cache_support import GUARD
from tests.models import Article, Author, CachedNote

EDITOR = uuid.UUID("00000000-0000-7000-8000-0000000000ed")
UTC = dt.timezone.utc
WHOLE_SECOND = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
MICROSECONDS = dt.datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
HALF_SECOND_PLUS_TWO = dt.datetime(2031, 6, 7, 8, 9, 10, 500000, tzinfo=dt.timezone(dt.timedelta(hours=2)))


def ids(count: int, start: int = 1) -> list[uuid.UUID]:
    """Keys in a known order (the set-based path walks rows in key order)."""
    return [uuid.UUID(f"00000000-0000-7000-8000-{number:012x}") for number in range(start, start + count)]


async def history(model, key) -> list[tuple]:
    """The row's audit rows, oldest first, as ``(action, changes, actor, correlation id)``."""
    rows = await AuditLog.filter(table_name=model._meta.db_table, record_id=str(key)).order_by("created_at", "id")
    return [(row.action.value, row.changes, row.actor_id, row.correlation_id) for row in rows]


async def test_update_many_changes_only_rows_that_differ_and_audits_each(ctx):
    articles = ctx.manager(Article)
    first, second, same = await articles.bulk_create([
        {"title": "a", "status": "draft", "views": 1}, {"title": "b", "status": "draft", "views": 2},
        {"title": "same", "status": "draft", "views": 7},
    ])
    other = await articles.create({"title": "other", "status": "published"})
    gone = await articles.create({"title": "gone", "status": "draft"})
    await articles.delete(gone.id)
    with ctx.acting_as(EDITOR, correlation_id="req-1"):
        assert await articles.update_many({"status": "draft"}, {"views": 7}) == 2
    for row, old_views in ((first, 1), (second, 2)):
        stored = await articles.get(row.id)
        assert (stored.views, stored.version, stored.updated_by) == (7, 2, EDITOR)
        assert stored.updated_at > row.updated_at
        assert (await history(Article, row.id))[-1] == ("update", {"views": [old_views, 7]}, EDITOR, "req-1")
    untouched = await articles.get(same.id)
    assert (untouched.version, untouched.updated_at) == (1, same.updated_at)
    assert len(await history(Article, same.id)) == 1
    assert (await articles.get(other.id)).version == 1
    assert (await articles.get(gone.id, include_deleted=True)).views == 0
    assert await articles.update_many({"status": "draft"}, {}) == 0


async def test_writes_by_filter_walk_more_rows_than_one_batch(ctx):
    articles = ModelManager(Article)
    articles.bulk_batch_size = 3
    await articles.bulk_create([{"id": key, "title": f"t{n}", "status": "draft"} for n, key in enumerate(ids(10))])
    await articles.create({"title": "kept", "status": "published"})
    assert await articles.update_many({"status": "draft"}, {"status": "archived"}) == 10  # the filter stops holding
    assert await articles.count({"status": "archived"}) == 10
    assert await AuditLog.filter(table_name="test_article", action="update").count() == 10
    assert await articles.delete_many({"status": "archived"}) == 10
    assert await articles.restore_many({"title__startswith": "t"}) == 10
    assert await articles.delete_many({"title__startswith": "t"}, hard=True) == 10
    assert [row.title for row in await Article.all_objects.all()] == ["kept"]


async def test_delete_many_soft_deletes_live_matches_and_hard_removes_every_match(ctx):
    articles = ctx.manager(Article)
    drafts = await articles.bulk_create([{"title": f"d{n}", "status": "draft"} for n in range(3)])
    kept = await articles.create({"title": "kept", "status": "published"})
    await articles.delete(drafts[0].id)
    with ctx.acting_as(EDITOR):
        assert await articles.delete_many({"status": "draft"}) == 2
    for row in drafts[1:]:
        stored = await articles.get(row.id, include_deleted=True)
        assert (stored.deleted_by, stored.updated_by, stored.version) == (EDITOR, EDITOR, 2)
        assert (await history(Article, row.id))[-1] == (
            "delete", {"deleted_at": [None, stored.deleted_at.isoformat()]}, EDITOR, None)
    assert await articles.count() == 1
    assert await articles.delete_many({"status": "draft"}, hard=True) == 3  # soft-deleted ones too
    assert await Article.all_objects.filter(status="draft").count() == 0
    action, changes, _, _ = (await history(Article, drafts[0].id))[-1]
    assert action == "hard_delete"
    assert (changes["id"], changes["title"], changes["published_at"]) == ([str(drafts[0].id), None], ["d0", None],
                                                                          [None, None])
    assert (await articles.get(kept.id)).version == 1


async def test_restore_many_brings_back_deleted_matches_with_their_audit(ctx):
    articles = ctx.manager(Article)
    rows = await articles.bulk_create([{"title": f"r{n}", "status": "draft"} for n in range(3)])
    live = await articles.create({"title": "live", "status": "draft"})
    assert await articles.delete_many({"title__startswith": "r"}) == 3
    deleted_at = {row.id: (await articles.get(row.id, include_deleted=True)).deleted_at for row in rows}
    with ctx.acting_as(EDITOR):
        assert await articles.restore_many({"status": "draft"}) == 3
    for row in rows:
        stored = await articles.get(row.id)
        assert (stored.deleted_at, stored.deleted_by, stored.updated_by, stored.version) == (None, None, EDITOR, 3)
        assert (await history(Article, row.id))[-1][:3] == (
            "restore", {"deleted_at": [deleted_at[row.id].isoformat(), None]}, EDITOR)
    assert (await articles.get(live.id)).version == 1
    assert await articles.restore_many({"status": "draft"}) == 0


async def test_writes_by_filter_follow_relation_paths_and_lists(ctx):
    authors, articles = ctx.manager(Author), ctx.manager(Article)
    ann = await authors.create({"name": "Ann", "email": "ann@x.io"})
    bob = await authors.create({"name": "Bob", "email": "bob@x.io"})
    for title, author in (("a1", ann), ("a2", ann), ("a3", ann), ("b1", bob)):
        await articles.create({"title": title, "author_id": author.id})
    assert await articles.update_many({"author__name": "Ann", "title__in": ["a1", "a2", "b1"]},
                                      {"status": "published"}) == 2
    assert await articles.delete_many({"author__email": "bob@x.io", "title__icontains": "B"}) == 1
    assert sorted(row.title for row in (await articles.find_many({"status": "published"})).items) == ["a1", "a2"]
    assert [row.title for row in (await articles.find_many(only_deleted=True)).items] == ["b1"]


async def test_writes_by_filter_refuse_no_filter_and_bad_filters_and_write_nothing(ctx):
    articles = ctx.manager(Article)
    row = await articles.create({"title": "t"})
    await articles.delete(row.id)
    calls = (lambda f: articles.update_many(f, {"title": "x"}), articles.delete_many,
             lambda f: articles.delete_many(f, hard=True), articles.restore_many)
    for call in calls:
        with pytest.raises(ValidationError, match="at least one filter"):
            await call({})
        with pytest.raises(ValidationError) as caught:
            await call({"nope": 1})
        assert caught.value.fields == ["nope"]
        with pytest.raises(ValidationError) as caught:
            await call({"views__gt": "many"})
        assert caught.value.fields == ["views__gt"]
    with pytest.raises(ValidationError) as caught:
        await articles.delete_many({"title": "t"}, hard="yes")
    assert caught.value.fields == ["hard"]
    with pytest.raises(ValidationError, match="no soft delete"):
        await ctx.audit_logs.restore_many({"action": "create"})
    assert (await articles.get(row.id, include_deleted=True)).version == 2
    assert [entry[0] for entry in await history(Article, row.id)] == ["create", "delete"]


async def test_restore_many_is_all_or_nothing_when_a_live_row_took_a_unique_value(ctx):
    authors = ModelManager(Author)
    authors.bulk_batch_size = 2  # the clash is in the third batch: the first two must be undone
    for number, key in enumerate(ids(5)):
        await authors.create({"id": key, "name": "old", "email": f"a{number}@x.io"})
    assert await authors.delete_many({"name": "old"}) == 5
    await authors.create({"name": "new", "email": "A4@x.io"})  # emails are unique among live rows, in any case
    with pytest.raises(ConflictError) as caught:
        await authors.restore_many({"name": "old"})
    assert caught.value.fields == ("email",)
    assert await authors.count({"name": "old"}) == 0
    assert await AuditLog.filter(table_name="test_author", action="restore").count() == 0
    assert await authors.restore_many({"name": "old", "email__not": "a4@x.io"}) == 4


async def test_update_many_that_would_break_a_unique_rule_is_a_conflict_and_writes_nothing(ctx):
    authors = ctx.manager(Author)
    for number in range(3):
        await authors.create({"name": "many", "email": f"m{number}@x.io"})
    with pytest.raises(ConflictError) as caught:
        await authors.update_many({"name": "many"}, {"email": "same@x.io"})
    assert caught.value.fields == ("email",)
    assert sorted(row.email for row in (await authors.find_many({"name": "many"})).items) == [
        "m0@x.io", "m1@x.io", "m2@x.io"]
    assert await AuditLog.filter(table_name="test_author", action="update").count() == 0


async def test_restore_many_refuses_rows_that_would_clash_with_each_other(ctx):
    authors = ctx.manager(Author)
    for _ in range(2):
        gone = await authors.create({"name": "twin", "email": "same@x.io"})
        await authors.delete(gone.id)
    with pytest.raises(ConflictError):
        await authors.restore_many({"name": "twin"})
    assert await authors.count({"name": "twin"}) == 0


async def test_a_failure_inside_a_transaction_leaves_no_half_written_rows(ctx):
    articles = ctx.manager(Article)
    rows = await articles.bulk_create([{"title": f"t{n}", "status": "draft"} for n in range(4)])
    with pytest.raises(RuntimeError):
        async with ctx.transaction():
            assert await articles.update_many({"status": "draft"}, {"views": 5}) == 4
            assert await articles.delete_many({"title": "t0"}) == 1
            await articles.delete(rows[1].id)
            assert await articles.restore_many({"title": "t1"}) == 1
            await articles.delete(rows[2].id, hard=True)
            raise RuntimeError("abort")
    for row in rows:
        stored = await articles.get(row.id)
        assert (stored.views, stored.version) == (0, 1)
    assert await AuditLog.filter(table_name="test_article").exclude(action="create").count() == 0


async def test_a_refused_restore_inside_a_transaction_leaves_the_transaction_usable(ctx):
    authors = ctx.manager(Author)
    gone = await authors.create({"name": "gone", "email": "g@x.io"})
    await authors.delete(gone.id)
    await authors.create({"name": "taker", "email": "g@x.io"})
    async with ctx.transaction():
        with pytest.raises(ConflictError):
            await authors.restore_many({"name": "gone"})
        with pytest.raises(ConflictError):
            await authors.restore(gone.id)
        assert await authors.update_many({"name": "taker"}, {"name": "kept"}) == 1
    assert await authors.count({"name": "kept"}) == 1
    assert (await authors.get(gone.id, include_deleted=True)).deleted_at is not None


async def test_one_row_delete_and_restore_say_which_row_is_missing(ctx):
    articles = ctx.manager(Article)
    row = await articles.create({"title": "t"})
    with pytest.raises(NotFoundError, match="no deleted row"):
        await articles.restore(row.id)
    await articles.delete(row.id)
    with pytest.raises(NotFoundError, match="no live row"):
        await articles.delete(row.id)
    missing = uuid.uuid4()
    with pytest.raises(NotFoundError, match=str(missing)):
        await articles.delete(missing, hard=True)
    assert [entry[0] for entry in await history(Article, row.id)] == ["create", "delete"]
    restored = await articles.restore(row.id)
    assert (restored.version, restored.deleted_at, restored.title) == (3, None, "t")


async def test_an_update_against_a_stale_version_is_a_concurrency_error_and_writes_nothing(ctx):
    articles = ctx.manager(Article)
    row = await articles.create({"title": "v1"})
    await articles.update(row.id, {"title": "v2"})
    with pytest.raises(ConcurrencyError) as caught:
        await articles.update(row.id, {"title": "v3"}, expected_version=1)
    assert (caught.value.expected_version, caught.value.actual_version) == (1, 2)
    assert (await articles.get(row.id)).title == "v2"
    assert len(await history(Article, row.id)) == 2


async def test_concurrent_writes_by_filter_on_the_same_rows_lose_no_change(ctx):
    articles = ctx.manager(Article)
    rows = await articles.bulk_create([{"title": f"t{n}", "status": "draft"} for n in range(20)])
    await asyncio.wait_for(asyncio.gather(
        *(articles.update_many({"status": "draft"}, {"views": views}) for views in range(1, 6))), 60)
    for row in rows:
        stored = await articles.get(row.id)
        updates = [changes["views"] for action, changes, _, _ in await history(Article, row.id) if action == "update"]
        assert stored.version == 6 and len(updates) == 5
        assert [old for old, _ in updates] == [0] + [new for _, new in updates[:-1]]  # each saw the one before
        assert updates[-1][1] == stored.views


async def update_drafts_while_a_writer_moves(ctx, articles, moved) -> tuple[bool, int]:
    """``update_many`` of the drafts (views 9) while another transaction holds ``moved``, which it publishes
    (out of the filter) and commits once the batch waits for its lock. Returns (whether ``update_many`` was
    still waiting for that lock, how many rows it wrote)."""
    holding, release = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        async with ctx.transaction():
            await articles.update(moved.id, {"status": "published"})
            holding.set()
            await asyncio.wait_for(release.wait(), 10)

    held = asyncio.create_task(writer())
    await asyncio.wait_for(holding.wait(), 10)
    waiting = asyncio.create_task(articles.update_many({"status": "draft"}, {"views": 9}))
    await asyncio.sleep(0.3)
    blocked = not waiting.done()
    release.set()
    await asyncio.wait_for(held, 10)
    return blocked, await asyncio.wait_for(waiting, 10)


@pytest.mark.postgres_only  # needs two connections at once; SQLite has one, so writers never overlap there
async def test_a_row_a_concurrent_writer_moved_out_of_the_filter_is_left_alone(ctx):
    articles = ctx.manager(Article)
    rows = await articles.bulk_create([{"title": f"t{n}", "status": "draft"} for n in range(3)])
    blocked, written = await update_drafts_while_a_writer_moves(ctx, articles, rows[1])
    assert blocked  # it waited for the row the writer held
    assert written == 2
    moved = await articles.get(rows[1].id)
    assert (moved.status, moved.views, moved.version) == ("published", 0, 2)


@pytest.mark.postgres_only  # as above: two connections at once
async def test_a_row_dropped_from_a_batch_is_replaced_and_the_walk_goes_on(ctx):
    """A batch's locking SELECT re-checks a row a concurrent writer changed and drops it; PostgreSQL's LIMIT sits
    above the lock, so the next matching row takes its place: a short batch still means the walk is done, and
    no row after the dropped one is missed (batches of 2 over 5 rows, the second row moved out)."""
    articles = ModelManager(Article)
    articles.bulk_batch_size = 2
    rows = await articles.bulk_create([{"id": key, "title": f"t{n}", "status": "draft"}
                                       for n, key in enumerate(ids(5))])
    blocked, written = await update_drafts_while_a_writer_moves(ctx, articles, rows[1])
    assert blocked and written == 4
    stored = {row.id: (row.status, row.views) for row in await Article.filter(id__in=[r.id for r in rows])}
    assert [stored[row.id] for row in rows] == [("draft", 9), ("published", 0), ("draft", 9), ("draft", 9),
                                               ("draft", 9)]


async def test_write_listeners_hear_every_row_once_the_transaction_commits(ctx):
    articles = ModelManager(Article)
    heard: list[list[uuid.UUID]] = []

    async def listener(manager, keys):
        heard.append(sorted(keys))

    articles.add_write_listener(listener)
    rows = await articles.bulk_create([{"title": f"t{n}"} for n in range(3)])
    heard.clear()
    async with ctx.transaction():
        assert await articles.update_many({"title__startswith": "t"}, {"views": 1}) == 3
        assert await articles.delete_many({"title": "t0"}) == 1
        assert heard == []
    assert heard == [sorted(row.id for row in rows), [rows[0].id]]
    with pytest.raises(RuntimeError):
        async with ctx.transaction():
            assert await articles.restore_many({"title": "t0"}) == 1
            raise RuntimeError("abort")
    assert len(heard) == 2



async def cached_reads(ctx, keys):
    """Read rows once the write guard has passed, so the reads fill the cache."""
    await asyncio.sleep(GUARD * 2)
    return [await ctx.cached_notes.get(key) for key in keys]


async def test_writes_by_filter_leave_no_stale_cached_row(cached_ctx):
    notes = cached_ctx.cached_notes
    keys = [(await notes.create({"title": f"n{n}"})).id for n in range(3)]
    await cached_reads(cached_ctx, keys)
    assert await notes.update_many({"title__startswith": "n"}, {"title": "changed"}) == 3
    assert [row.title for row in await cached_reads(cached_ctx, keys)] == ["changed"] * 3
    assert await notes.delete_many({"title": "changed"}) == 3
    for key in keys:
        with pytest.raises(NotFoundError):
            await notes.get(key)
    assert await notes.restore_many({"title": "changed"}) == 3
    assert [row.deleted_at for row in await cached_reads(cached_ctx, keys)] == [None] * 3
    assert await notes.delete_many({"title": "changed"}, hard=True) == 3
    await asyncio.sleep(GUARD * 2)
    assert [await notes.find(key) for key in keys] == [None] * 3


async def test_restore_many_refuses_a_row_that_breaks_a_domain_rule_and_restores_none(ctx):
    from datalayer.ml.models import EndpointConfig

    owner = await ctx.users.create_user("rules@example.com", "password123", username="rules")
    model = await ctx.ml_models.create({"owner_id": owner.id, "name": "m", "framework": "onnx"})
    good = await ctx.endpoint_configs.create({"ml_model_id": model.id, "path": "/v1/good"})
    bad = await ctx.endpoint_configs.create({"ml_model_id": model.id, "path": "/v1/bad"})
    await EndpointConfig.filter(id=bad.id).update(rate_limit=-5)  # written behind the manager's back
    assert await ctx.endpoint_configs.delete_many({"ml_model_id": model.id}) == 2
    with pytest.raises(ValidationError) as caught:
        await ctx.endpoint_configs.restore_many({"ml_model_id": model.id})
    assert "rate_limit" in caught.value.errors
    assert await ctx.endpoint_configs.find(good.id) is None


# --------------------------------------------- PostgreSQL: the one-statement path against the generic one


@pytest.mark.postgres_only  # the one-statement writes exist on PostgreSQL only; SQLite always runs the generic path
async def test_each_batch_and_each_one_row_write_is_one_statement(ctx):
    articles = ModelManager(Article)
    articles.bulk_batch_size = 4
    keys = ids(10)
    await articles.bulk_create([{"id": key, "title": "t", "status": "draft"} for key in keys])
    for write, statements in ((lambda: articles.update_many({"status": "draft"}, {"views": 1}), 3),
                              (lambda: articles.delete(keys[0]), 1), (lambda: articles.restore(keys[0]), 1),
                              (lambda: articles.update(keys[0], {"views": 2}), 1),
                              (lambda: articles.delete(keys[0], hard=True), 1)):
        ctx.reset_stats()
        await write()
        assert ctx.stats().queries.statements == statements
    audit_ids = [row.id for row in await AuditLog.filter(table_name="test_article").exclude(action="create")]
    assert len(set(audit_ids)) == 10 + 4 and {key.version for key in audit_ids} == {7}


_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?[+-]\d\d:\d\d$")
_GIVEN_TIMES = {moment.isoformat() for moment in (WHOLE_SECOND, MICROSECONDS, HALF_SECOND_PLUS_TWO)} | {
    moment.astimezone(UTC).isoformat() for moment in (WHOLE_SECOND, MICROSECONDS, HALF_SECOND_PLUS_TWO)}


def _relabel(value, labels, stamps):
    """``value`` with this run's ids and world marker named, and times it made numbered by first sight."""
    if isinstance(value, dict):
        return {key: _relabel(item, labels, stamps) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_relabel(item, labels, stamps) for item in value]
    if isinstance(value, (uuid.UUID, str)) and str(value) in labels:
        return labels[str(value)]
    if isinstance(value, dt.datetime):
        value = value.isoformat()
    if isinstance(value, str) and _TIME.match(value) and value not in _GIVEN_TIMES:
        return stamps.setdefault(value, f"<time {len(stamps)}>")
    return value


async def _what_a_user_sees(model, keys, labels) -> list:
    """Each row (or None once removed) and its audit trail, ids and made-up times relabelled."""
    seen = []
    for key in keys:
        stamps: dict[str, str] = {}  # numbered per row: the generic path stamps each row apart
        row = await model.all_objects.filter(id=key).first()
        fields = None
        if row is not None:
            fields = {name: getattr(row, name) for name in row._meta.fields_db_projection if name != "updated_at"}
            fields["changed since created"] = row.updated_at > row.created_at
        seen.append((_relabel(fields, labels, stamps), _relabel(await history(model, key), labels, stamps)))
    return seen


async def _compare(ctx, scenario, model) -> None:
    fast, generic = ModelManager(model), ModelManager(model)
    generic.one_statement_writes = False
    seen, row_locks = {}, {}
    for world, manager in (("fast", fast), ("generic", generic)):
        ctx.reset_stats()
        keys, labels = await scenario(manager, world)
        row_locks[world] = [shape.shape for shape in ctx.stats().queries.shapes
                            if shape.shape.startswith("SELECT") and "FOR UPDATE" in shape.shape]
        seen[world] = await _what_a_user_sees(model, keys, {**labels, world: "<world>"})
    assert row_locks["fast"] == [] and row_locks["generic"]  # each world really took its own path
    assert seen["fast"] == seen["generic"]


async def _articles(articles: ModelManager, world: str):
    authors = ModelManager(Author)
    writer = await authors.create({"name": world, "email": f"{world}@x.io"})
    seeds = [{"published_at": None, "author_id": writer.id, "views": 1}, {"published_at": WHOLE_SECOND},
             {"published_at": MICROSECONDS, "views": 4},
             {"title": "same", "published_at": HALF_SECOND_PLUS_TWO, "views": 3}]  # already as update_many sets
    made = [await articles.create({"title": f"t{n}", "body": world, "status": "draft", **seed})
            for n, seed in enumerate(seeds)]
    with acting_as(EDITOR, correlation_id="req"):
        assert await articles.update_many({"body": world, "status": "draft"}, {
            "title": "same", "published_at": HALF_SECOND_PLUS_TWO, "author_id": None, "views": 3}) == 3
        await articles.update(made[0].id, {"published_at": None, "title": "solo", "author_id": writer.id})
        await articles.update(made[3].id, {"title": "same"})  # nothing differs: nothing written
        assert await articles.delete_many({"body": world, "views": 3}) == 4
        assert await articles.restore_many({"body": world, "title": "same"}) == 3
        await articles.delete(made[1].id)
        await articles.restore(made[1].id)
        assert await articles.delete_many({"body": world, "title": "solo"}, hard=True) == 1
        await articles.delete(made[2].id, hard=True)
    labels = {str(row.id): f"<row {n}>" for n, row in enumerate(made)} | {str(writer.id): "<writer>"}
    return [row.id for row in made], labels


async def _notes(notes: ModelManager, world: str):
    owner = await ModelManager(Author).create({"name": world, "email": f"{world}@x.io"})
    seeds = [{"amount": Decimal("1.5"), "meta": {"k": [1, None], "n": None}, "due_at": None},
             {"amount": Decimal(0), "meta": {}, "due_at": WHOLE_SECOND},
             {"amount": Decimal("12.3456"), "meta": ["x", {"y": None}], "due_at": MICROSECONDS}]
    made = [await notes.create({"title": f"n{n}", "author_id": owner.id, **seed}) for n, seed in enumerate(seeds)]
    assert await notes.update_many({"author_id": owner.id}, {
        "amount": Decimal("2.25"), "meta": {"k": [1, None], "n": None}, "due_at": HALF_SECOND_PLUS_TWO}) == 3
    await notes.update(made[1].id, {"meta": {"deep": {"x": None}}, "amount": Decimal(7), "due_at": None})
    assert await notes.delete_many({"author_id": owner.id, "title": "n2"}) == 1
    assert await notes.delete_many({"author_id": owner.id}, hard=True) == 3
    labels = {str(row.id): f"<note {n}>" for n, row in enumerate(made)} | {str(owner.id): "<owner>"}
    return [row.id for row in made], labels


async def _secrets(authors: ModelManager, world: str):
    made = [await authors.create({"name": world, "email": f"{world}{n}@x.io", "password_hash": secret})
            for n, secret in enumerate(("", "$2b$12$first", "$2b$12$second"))]
    assert await authors.update_many({"name": world}, {"password_hash": ""}) == 2
    await authors.update(made[0].id, {"password_hash": "$2b$12$third", "email": f"{world}-moved@x.io"})
    assert await authors.delete_many({"name": world}) == 3
    assert await authors.restore_many({"name": world}) == 3
    assert await authors.delete_many({"name": world}, hard=True) == 3
    emails = {f"{world}{n}@x.io": f"<email {n}>" for n in range(3)} | {f"{world}-moved@x.io": "<moved>"}
    return [row.id for row in made], {str(row.id): f"<author {n}>" for n, row in enumerate(made)} | emails


AWKWARD_TEXT = ['say "hi" \\ back\\slash', "tab\there\nnewline\r\x1f", "fox 🦊, 中文, é", "\u2028\u2029 separators",
                "</script>", "", " spaced "]


async def _text(articles: ModelManager, world: str):
    """Values whose audit JSON the one-statement writes spell by hand (quotes, escapes, non-ASCII, edges)."""
    made = [await articles.create({"title": f"t{n}", "body": world, "views": n}) for n in range(len(AWKWARD_TEXT))]
    for n, (row, text) in enumerate(zip(made, AWKWARD_TEXT, strict=True)):
        await articles.update(row.id, {"title": text, "views": (-1, 2**31 - 1, 0)[n % 3]})
    assert await articles.update_many({"body": world}, {"status": 'quoted "status"'}) == len(made)
    return [row.id for row in made], {str(row.id): f"<row {n}>" for n, row in enumerate(made)}


@pytest.mark.postgres_only  # the one-statement writes exist on PostgreSQL only; SQLite always runs the generic path
@pytest.mark.parametrize(("scenario", "model"),
                         [(_articles, Article), (_notes, CachedNote), (_secrets, Author), (_text, Article)],
                         ids=["dates-keys-nulls", "decimals-json", "secrets", "awkward-text"])
async def test_one_statement_writes_leave_what_the_generic_path_leaves(ctx, scenario, model):
    await _compare(ctx, scenario, model)
