import datetime as dt
import json
import uuid
from decimal import Decimal

from tortoise.connection import get_connection
from tortoise.transactions import in_transaction

from datalayer import AuditAction
from datalayer.config import CONNECTION_NAME
from datalayer.managers.auditing import creation_changes, creation_changes_json
from datalayer.core.audit_log import AuditLog
from tests.models import Article, Author


async def test_every_write_path_leaves_its_audit_row_with_the_actor(ctx):
    editor = uuid.uuid4()
    articles = ctx.manager(Article)
    with ctx.acting_as(editor, correlation_id="req-42"):
        article = await articles.create({"title": "a"})
        await articles.update(article.id, {"title": "b"})
        await articles.delete(article.id)
        await articles.restore(article.id)
        await articles.delete(article.id, hard=True)
    history = await ctx.audit_logs.history(Article, article.id)
    assert [h.action for h in history] == [
        AuditAction.CREATE, AuditAction.UPDATE, AuditAction.DELETE, AuditAction.RESTORE, AuditAction.HARD_DELETE
    ]
    assert {h.actor_id for h in history} == {editor}
    assert {h.correlation_id for h in history} == {"req-42"}
    assert history[1].changes == {"title": ["a", "b"]}
    assert history[4].changes["title"] == ["b", None]


async def test_the_actor_is_stamped_on_the_row(ctx):
    creator, editor, remover = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    articles = ctx.manager(Article)
    with ctx.acting_as(creator):
        article = await articles.create({"title": "a"})
    with ctx.acting_as(editor):
        await articles.update(article.id, {"title": "b"})
    with ctx.acting_as(remover):
        await articles.delete(article.id)
    row = await Article.all_objects.get(id=article.id)
    assert (row.created_by, row.updated_by, row.deleted_by) == (creator, remover, remover)


async def test_secret_fields_appear_only_masked(ctx):
    authors = ctx.manager(Author)
    author = await authors.create({"name": "A", "email": "a@example.com", "password_hash": "$2b$12$realhash"})
    await authors.update(author.id, {"password_hash": "$2b$12$otherhash"})
    await authors.delete(author.id, hard=True)
    logs = await ctx.audit_logs.history(Author, author.id)
    assert [log.changes.get("password_hash") for log in logs] == [[None, "***"], ["***", "***"], ["***", None]]
    raw = await ctx.audit_logs.find_many(filters={"record_id": str(author.id)})
    assert all("realhash" not in str(log.changes) and "otherhash" not in str(log.changes) for log in raw.items)


async def test_bulk_writes_audit_every_row(ctx):
    rows = await ctx.manager(Article).bulk_create([{"title": f"t{i}"} for i in range(30)])
    for row in rows[:3]:
        [entry] = await ctx.audit_logs.history(Article, row.id)
        assert entry.action == AuditAction.CREATE and entry.changes["title"] == [None, row.title]
    assert await ctx.audit_logs.count({"action": "create"}) == 30


async def test_audit_values_are_json_safe(ctx):
    article = await ctx.manager(Article).create({"title": "t"})
    [entry] = await ctx.audit_logs.history(Article, article.id)
    assert entry.changes["id"] == [None, str(article.id)]
    assert entry.table_name == "test_article" and entry.record_id == str(article.id)


async def test_acting_as_works_with_async_with_and_nests(ctx):
    outer, inner = uuid.uuid4(), uuid.uuid4()
    articles = ctx.manager(Article)
    async with ctx.acting_as(outer):
        first = await articles.create({"title": "outer"})
        async with ctx.acting_as(inner), ctx.correlation("req-7"):
            second = await articles.create({"title": "inner"})
        third = await articles.create({"title": "outer again"})
    fourth = await articles.create({"title": "nobody"})
    assert [a.created_by for a in (first, second, third, fourth)] == [outer, inner, outer, None]
    [entry] = await ctx.audit_logs.history(Article, second.id)
    assert (entry.actor_id, entry.correlation_id) == (inner, "req-7")


def test_bulk_copy_changes_text_equals_the_encoded_creation_changes():
    """The COPY path writes ``changes`` as JSON text by hand; it must read exactly like the generic encoding."""
    rows = [
        {"id": uuid.uuid4(), "name": 'quote " backslash \\ tab \t ünï 😀', "email": "a@b.io", "password_hash": "$2b$12$x"},
        {"id": uuid.uuid4(), "name": "", "email": None, "password_hash": ""},
        {"name": 7, "email": True, "password_hash": 0},
        {"name": 2.5, "email": Decimal("1.10"), "password_hash": dt.datetime(2030, 1, 2, tzinfo=dt.timezone.utc)},
        {"name": {"nested": [1, None, "x"]}, "email": float("nan")},
    ]
    compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    for row in rows:
        assert creation_changes_json(Author, row) == compact(creation_changes(Author, row))
    assert '"password_hash":[null,"***"]' in creation_changes_json(Author, rows[0])


async def test_history_and_actor_lookups_are_served_by_the_audit_indexes(ctx):
    """record_id has a hash index on PostgreSQL (a B-tree on SQLite) and actor_id a partial one: the two
    lookups the audit managers make must use them, not read the whole audit table."""
    article = await ctx.manager(Article).create({"title": "t"})
    with ctx.acting_as(uuid.uuid4()):
        await ctx.manager(Article).update(article.id, {"title": "u"})
    history = AuditLog.filter(table_name="test_article", record_id=str(article.id)).order_by("-created_at")
    by_actor = AuditLog.filter(actor_id=uuid.uuid4()).order_by("-created_at")
    postgres = ctx.target.is_postgres
    async with in_transaction(CONNECTION_NAME):
        connection = get_connection(CONNECTION_NAME)
        if postgres:
            await connection.execute_script("SET LOCAL enable_seqscan = off")
        plans = []
        for query in (history, by_actor):
            explain = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
            _, rows = await connection.execute_query(explain + query.sql(params_inline=True))
            plans.append(" ".join(str(value) for row in rows for value in dict(row).values()))
    assert "idx_audit_log_record__38a0f9" in plans[0], plans[0]
    assert "idx_audit_log_actor_i_d98cf9" in plans[1], plans[1]
    assert len(await ctx.audit_logs.history(Article, article.id)) == 2
