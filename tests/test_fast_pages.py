"""Pages, keyset chunks and counts on PostgreSQL's statements built once per shape give what the generic
(Tortoise-built) path gives: the same rows in the same order, built alike, the same totals and cursors; and
``find_many``'s totals (exact, estimated, none) with ``has_next`` right in each.

Each comparison runs on both engines: on SQLite both sides take the generic path, on PostgreSQL the test
also checks that the fast statements really ran (in the query monitor's shapes). The generic side is a
manager whose subclass has its own ``query()``, which sends every read through Tortoise. The property test
runs 25 examples per engine; a longer soak: ``FAST_PAGES_EXAMPLES=1000 .venv/bin/pytest tests/test_fast_pages.py``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datalayer import ConfigurationError, DataLayerError, ModelManager, Page, User, ValidationError
from datalayer.backends import query_monitor
from tests.models import Article, Author, CachedNote

settings.register_profile("fast-pages", max_examples=int(os.environ.get("FAST_PAGES_EXAMPLES", "25")),
                          deadline=None, database=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
PST = dt.timezone(dt.timedelta(hours=-8))
TITLES = ["Alpha", "alpha", "ALPHA", "café", "CAFÉ", "日本語", "😀 smile", "O'Brien", "100% sure", "a_b",
          "back\\slash", "%", "_", "\\", 'quote"d', "straße", "ΣΊΣΥΦΟΣ", "x" * 200, "plain"]
STAMPS = [dt.datetime(2024, 1, 1, 12, 0, tzinfo=IST), dt.datetime(2024, 1, 1, 6, 30, tzinfo=dt.timezone.utc),
          dt.datetime(2023, 12, 31, 22, 30, tzinfo=PST), dt.datetime(2025, 6, 1, 0, 0, 0, 1, tzinfo=dt.timezone.utc)]
HOSTILE = ["'", "%", "_", "\\", "%_%", "\\%", "'; DROP TABLE test_article; --", "$1", "?", "ß", "😀", "x" * 5000]


class GenericReads(ModelManager):  # type: ignore[type-arg]
    """Its own ``query()``: every read of this manager takes the generic path."""

    def query(self, *, include_deleted: bool = False, only_deleted: bool = False) -> Any:
        return super().query(include_deleted=include_deleted, only_deleted=only_deleted)


def _fast_path_ran_since_reset() -> bool:
    """Whether a statement that only the fast path writes ran since the query monitor was reset (``", "``
    between selected columns, where Tortoise writes ``","``; a keyset chunk's row-value comparison)."""
    monitor = query_monitor()
    shapes = [] if monitor is None else [shape.shape for shape in monitor.snapshot().shapes]
    return any(shape.startswith("SELECT ") and ('", "' in shape.split(" FROM ")[0] or ") > (" in shape
                                                or ") < (" in shape) for shape in shapes)


def _state(instance: Any) -> dict[str, str]:
    """An instance as built, exactly: every attribute with its type and repr (time zone objects included)."""
    return {name: f"{type(value).__name__}:{value!r}" for name, value in vars(instance).items()}


def _page_view(page: Page[Any]) -> tuple:
    return ([_state(item) for item in page.items], page.total, page.total_kind, page.pages, page.has_next,
            page.has_prev)


async def _outcome(call: Any, view: Any) -> tuple:
    try:
        return ("rows", view(await call))
    except DataLayerError as exc:
        return ("error", type(exc).__name__, getattr(exc, "errors", None))


async def _same(backend: Any, fast_call: Any, generic_call: Any, view: Any, *, fast_expected: bool = True) -> tuple:
    """Both outcomes, asserted equal; on PostgreSQL the fast statements ran exactly when expected."""
    if (monitor := query_monitor()) is not None:
        monitor.reset()  # (it keeps at most 1,000 shapes: a long run would hide new ones)
    fast = await _outcome(fast_call, view)
    ran_fast = _fast_path_ran_since_reset()
    generic = await _outcome(generic_call, view)
    assert fast == generic
    if fast[0] == "rows":
        assert ran_fast is (fast_expected and backend.is_postgres)
    return fast


@pytest.fixture
async def articles(ctx):
    """38 articles: ties on every sort key, NULL dates, unicode and hostile titles, 5 soft-deleted, some with
    an author; most share one ``created_at`` (one bulk insert), a few have their own."""
    authors = await ctx.manager(Author).bulk_create(
        [{"name": name, "email": f"{index}@example.com"} for index, name in enumerate(["Ada", "Émile", "O'Hara"])])
    rows = [{"title": title, "views": index % 4, "status": ("draft", "published", "archived")[index % 3],
             "body": "ß body" if index % 5 == 0 else "",
             "published_at": None if index % 3 == 0 else STAMPS[index % len(STAMPS)],
             "author_id": None if index % 4 == 0 else str(authors[index % 3].id)}
            for index, title in enumerate(TITLES * 2)]
    created = await ctx.manager(Article).bulk_create(rows)
    for title in ("late one", "late two"):
        created.append(await ctx.manager(Article).create({"title": title, "views": 2}))
    for row in created[::8]:
        await ctx.manager(Article).delete(row.id)
    return authors, created


FILTERS: list[dict[str, Any]] = [
    {}, {"status": "published"}, {"status__not": "draft"}, {"views__gt": 1}, {"views__gte": 1, "views__lt": 3},
    {"views__in": [1, 3]}, {"views__in": []}, {"views__not_in": [0]}, {"views__not_in": []},
    {"views__range": [1, 2]}, {"published_at__isnull": True}, {"published_at__not_isnull": True},
    {"published_at": None}, {"published_at__not": None}, {"published_at__gte": "2024-01-01T12:00:00+05:30"},
    {"published_at__lt": STAMPS[2]}, {"published_at": STAMPS[0]}, {"published_at__in": [STAMPS[1], STAMPS[3]]},
    {"published_at__not_in": [STAMPS[1], STAMPS[3]]}, {"published_at__not": STAMPS[0]},
    {"published_at__range": [STAMPS[2], STAMPS[0]]},
    {"author_id__isnull": True}, {"author_id__not_isnull": False}, {"title__iexact": "alpha"},
    {"title__contains": "%"}, {"title__contains": "_"}, {"title__contains": "\\"}, {"title__icontains": "CAFÉ"},
    {"title__startswith": "O'"}, {"title__istartswith": "al"}, {"title__endswith": "\\"}, {"title__iendswith": "HA"},
    {"title": "x" * 200}, {"title__in": ["O'Brien", "café", "%"]}, {"title__not_in": ["plain"]},
    {"status__iexact": "PUBLISHED", "views": 1}, {"body__icontains": "SS"}, {"title__gt": "a", "title__lt": "z"},
    {"views__iexact": 2}, {"version": 1, "status__in": ["draft", "archived"]},
    *({"title__contains": value} for value in HOSTILE), *({"title": value} for value in HOSTILE[:4]),
]
SORTS = [("created_at", "asc"), ("views", "desc"), ("title", "asc"), ("published_at", "desc"), ("id", "asc"),
         ("status", "desc"), ("updated_at", "asc"), ("published_at", "asc"), ("views", "asc"), ("title", "desc")]
FLAGS = [(False, False), (True, False), (False, True)]


async def test_offset_pages_and_counts_match_the_generic_path(ctx, backend, articles):
    fast, generic = ctx.manager(Article), GenericReads(Article)
    for index, filters in enumerate(FILTERS):
        sort_by, sort_order = SORTS[index % len(SORTS)]
        include_deleted, only_deleted = FLAGS[index % len(FLAGS)]
        args = {"sort_by": sort_by, "sort_order": sort_order, "include_deleted": include_deleted,
                "only_deleted": only_deleted, "limit": 7, "page": (1, 2, 9)[index % 3]}
        await _same(backend, fast.find_many(filters, **args), generic.find_many(filters, **args), _page_view)
        flags = {"include_deleted": include_deleted, "only_deleted": only_deleted}
        assert await fast.count(filters, **flags) == await generic.count(filters, **flags)


async def test_every_page_of_every_sort_holds_the_same_rows(ctx, backend, articles):
    fast, generic = ctx.manager(Article), GenericReads(Article)
    for sort_by, sort_order in SORTS:
        for page in range(1, 5):
            args = {"sort_by": sort_by, "sort_order": sort_order, "page": page, "limit": 11, "include_deleted": True}
            await _same(backend, fast.find_many(**args), generic.find_many(**args), _page_view)


async def _walk(manager: Any, **args: Any) -> list[tuple]:
    """Every chunk of a keyset walk: its rows as built and its cursor (at most 30 chunks)."""
    chunks, cursor = [], None
    for _ in range(30):
        chunk = await manager.find_after(cursor, **args)
        chunks.append(([_state(item) for item in chunk.items], chunk.next_cursor, chunk.has_next))
        if (cursor := chunk.next_cursor) is None:
            return chunks
    raise AssertionError("the walk did not end within 30 chunks")


async def test_keyset_walks_match_the_generic_path_chunk_by_chunk(ctx, backend, articles):
    fast, generic = ctx.manager(Article), GenericReads(Article)
    not_null_sorts = [(sort_by, order) for sort_by, order in SORTS if sort_by != "published_at"]
    for index, filters in enumerate(FILTERS):
        sort_by, sort_order = not_null_sorts[index % len(not_null_sorts)]
        args = {"sort_by": sort_by, "sort_order": sort_order, "filters": filters, "limit": 5,
                "include_deleted": index % 2 == 1}
        walk = await _same(backend, _walk(fast, **args), _walk(generic, **args), list)
        if walk[0] == "rows":
            ids = [state["id"] for chunk in walk[1] for state in chunk[0]]
            assert len(ids) == len(set(ids))  # no row twice, even across ties on the sort key


async def test_decimal_json_and_nullable_datetime_rows_match(ctx, backend):
    notes = ctx.manager(CachedNote)
    await notes.bulk_create([
        {"title": f"n{index}", "amount": decimal.Decimal(("1.5", "-0.0001", "12345678.9999", "0")[index % 4]),
         "meta": {"k": [index, "é", None], "nested": {"x": index % 2 == 0}},
         "due_at": None if index % 3 == 0 else STAMPS[index % len(STAMPS)]} for index in range(14)])
    generic = GenericReads(CachedNote)
    for filters in [{}, {"amount__gt": "0"}, {"amount__in": ["1.5", "0"]}, {"amount": "-0.0001"},
                    {"due_at__isnull": False, "amount__range": ["-1", "2"]}]:
        for sort_by, sort_order in [("amount", "desc"), ("due_at", "asc"), ("title", "asc")]:
            args = {"sort_by": sort_by, "sort_order": sort_order, "limit": 4, "page": 2}
            await _same(backend, notes.find_many(filters, **args), generic.find_many(filters, **args), _page_view)
        args = {"sort_by": "amount", "sort_order": "asc", "filters": filters, "limit": 3}
        await _same(backend, _walk(notes, **args), _walk(generic, **args), list)


async def test_pack_rows_with_enums_and_booleans_match(ctx, backend):
    for name in ("ann", "bob", "cat", "dan"):
        await ctx.users.create_user(f"{name}@example.com", "a long passphrase", username=name)
    await ctx.users.set_subscription((await ctx.users.find_by_email("bob@example.com")).id, "pro")
    generic = GenericReads(User)
    for filters in ({}, {"is_active": True}, {"subscription_tier": "pro"}, {"role__in": ["user", "admin"]},
                    {"is_verified__not": True, "last_login_at__isnull": True}):
        for sort_by in ("subscription_tier", "is_active", "username"):
            args = {"sort_by": sort_by, "sort_order": "desc", "limit": 3}
            await _same(backend, ctx.users.find_many(filters, **args), generic.find_many(filters, **args), _page_view)
        args = {"sort_by": "username", "filters": filters, "limit": 2}
        await _same(backend, _walk(ctx.users, **args), _walk(generic, **args), list)


async def test_search_and_relation_filters_take_the_generic_path_with_the_same_answer(ctx, backend, articles):
    fast, generic = ctx.manager(Article), GenericReads(Article)
    for call in ({"search": "caf"}, {"filters": {"author__name": "Ada"}},
                 {"filters": {"author__name__icontains": "'"}, "search": "a"}):
        await _same(backend, fast.find_many(**call, limit=5), generic.find_many(**call, limit=5), _page_view,
                    fast_expected=False)
    for filters in ({"author__name": "Émile"}, {"author__email__startswith": "1"}):
        await _same(backend, _walk(fast, filters=filters, limit=4), _walk(generic, filters=filters, limit=4), list,
                    fast_expected=False)


BAD_FILTERS = [{"views": "many"}, {"title__regex": "x"}, {"password_hash": "x"}, {"views__in": "1,2"},
               {"title__contains": 5}, {"published_at__gt": "yesterday"},
               # too long for the column: Tortoise's own check, translated alike on both paths
               {"title": "x" * 5000}, {"title__in": ["ok", "x" * 300]}, {"title__gte": "x" * 201},
               {"title__not": "x" * 300}]


async def test_bad_filters_are_the_same_validation_error_on_both_paths(ctx, backend):
    fast, generic = ctx.manager(Article), GenericReads(Article)
    for bad in BAD_FILTERS:
        outcome = await _same(backend, fast.find_many(bad), generic.find_many(bad), _page_view)
        assert outcome[:2] == ("error", "ValidationError")
        with pytest.raises(ValidationError):
            await fast.find_after(filters=bad)
        with pytest.raises(ValidationError):
            await fast.count(bad)


async def test_a_subclass_with_its_own_query_is_honoured_by_every_read(ctx):
    class PublishedOnly(ModelManager):  # type: ignore[type-arg]
        def query(self, *, include_deleted: bool = False, only_deleted: bool = False) -> Any:
            return super().query(include_deleted=include_deleted, only_deleted=only_deleted).filter(status="published")

    await ctx.manager(Article).bulk_create([{"title": f"t{i}", "status": ("draft", "published")[i % 2]}
                                            for i in range(10)])
    published = PublishedOnly(Article)
    page = await published.find_many(limit=100)
    chunk = await published.find_after(limit=100)
    assert page.total == 5 and {a.status for a in page.items} == {"published"}
    assert len(chunk.items) == 5 and await published.count() == 5


async def test_fast_reads_inside_a_transaction_see_its_own_writes(ctx):
    await ctx.manager(Article).bulk_create([{"title": "committed", "views": 1}])
    async with ctx.transaction() as tx:
        articles = tx.manager(Article)
        await articles.create({"title": "uncommitted", "views": 2})
        page = await articles.find_many(sort_by="views", total="none")
        chunk = await articles.find_after(sort_by="views")
        assert [a.title for a in page.items] == ["committed", "uncommitted"]
        assert [a.title for a in chunk.items] == ["committed", "uncommitted"]
        assert await articles.count() == 2
        assert (await articles.find_many(total="estimated")).total == 2  # one page: the page proves the total
    assert await ctx.manager(Article).count() == 2


async def test_reads_in_a_rolled_back_transaction_leave_nothing_behind(ctx):
    with pytest.raises(RuntimeError):
        async with ctx.transaction() as tx:
            await tx.manager(Article).create({"title": "gone"})
            assert (await tx.manager(Article).find_many()).total == 1
            raise RuntimeError("roll back")
    assert (await ctx.manager(Article).find_many()).total == 0


# ------------------------------------------------------------------------------------------------ totals


async def test_pages_without_an_exact_total_still_know_whether_a_next_page_exists(ctx):
    articles = ctx.manager(Article)
    await articles.bulk_create([{"title": f"t{i}", "views": i} for i in range(20)])
    for total in ("none", "estimated"):
        seen = []
        for number in range(1, 10):
            page = await articles.find_many(page=number, limit=5, sort_by="views", total=total)
            seen += [a.views for a in page.items]
            assert page.has_next is (number < 4) and page.has_prev is (number > 1)
            if not page.has_next:
                break
        assert seen == list(range(20))
        exactly_full = await articles.find_many(page=2, limit=10, sort_by="views", total=total)
        assert len(exactly_full.items) == 10 and not exactly_full.has_next


async def test_no_total_means_none_for_total_and_pages(ctx):
    await ctx.manager(Article).bulk_create([{"title": f"t{i}"} for i in range(3)])
    page = await ctx.manager(Article).find_many(limit=2, total="none")
    assert (page.total, page.pages, page.total_kind, page.has_next) == (None, None, "none", True)
    body = page.model_dump()
    assert (body["total"], body["pages"], body["total_kind"], body["has_next"]) == (None, None, "none", True)
    assert Page.model_validate(body).has_next is True  # survives a round trip (FastAPI re-validates)


async def test_an_estimated_total_is_exact_on_the_last_page_and_never_below_the_rows_seen(ctx, backend):
    articles = ctx.manager(Article)
    await articles.bulk_create([{"title": f"t{i}", "views": i} for i in range(30)])
    first = await articles.find_many(limit=10, sort_by="views", total="estimated")
    last = await articles.find_many(page=3, limit=10, sort_by="views", total="estimated")
    beyond = await articles.find_many(page=9, limit=10, sort_by="views", total="estimated")
    expected_kind = "estimated" if backend.is_postgres else "exact"
    assert (first.total_kind, last.total_kind) == (expected_kind, expected_kind)
    assert first.total >= 11 and first.pages >= 2 and first.has_next
    assert (last.total, last.pages, last.has_next) == (30, 3, False)
    assert beyond.items == [] and 0 <= beyond.total <= 80 and not beyond.has_next
    if not backend.is_postgres:
        assert (first.total, beyond.total) == (30, 30)  # SQLite has no estimate: it counts


@pytest.mark.postgres_only
async def test_the_estimate_follows_the_table_after_analyze(ctx):
    """PostgreSQL-only: the planner's estimate, read after ANALYZE, is close to the real count."""
    articles = ctx.manager(Article)
    await articles.bulk_create([{"title": f"t{i}", "status": "published" if i % 4 else "draft"} for i in range(400)])
    await ctx.raw("ANALYZE test_article")
    everything = await articles.find_many(limit=10, total="estimated")
    published = await articles.find_many({"status": "published"}, limit=10, total="estimated")
    searched = await articles.find_many(search="t1", limit=10, total="estimated")  # the generic path's estimate
    assert everything.total_kind == published.total_kind == searched.total_kind == "estimated"
    assert 360 <= everything.total <= 440 and 250 <= published.total <= 350
    assert searched.total >= 11 and searched.has_next


async def test_the_default_total_comes_from_the_manager_then_the_model(ctx, backend, monkeypatch):
    await ctx.manager(Article).bulk_create([{"title": f"t{i}"} for i in range(3)])

    class NoTotals(ModelManager):  # type: ignore[type-arg]
        page_total = "none"

    assert (await NoTotals(Article).find_many()).total_kind == "none"
    assert (await NoTotals(Article).find_many(total="exact")).total == 3  # the call wins
    monkeypatch.setattr(Article, "page_total", "estimated", raising=False)
    assert (await ModelManager(Article).find_many()).total_kind == ("estimated" if backend.is_postgres else "exact")


async def test_a_bad_total_is_a_validation_error_naming_it_and_the_choices(ctx):
    for total in ("approximate", "", "EXACT", 1, True, ["exact"]):
        with pytest.raises(ValidationError) as caught:
            await ctx.manager(Article).find_many(total=total)
        assert list(caught.value.errors) == ["total"]
        assert "'exact', 'estimated', 'none'" in caught.value.errors["total"]
        assert caught.value.errors["total"].endswith(f"got {total!r}"), "the error echoes the value given"


async def test_a_bad_default_total_is_a_configuration_error_naming_where_it_was_set(ctx):
    class Sometimes(ModelManager):  # type: ignore[type-arg]
        page_total = "sometimes"

    with pytest.raises(ConfigurationError, match=r"Sometimes\.page_total .*'exact', 'estimated', 'none'"):
        await Sometimes(Article).find_many()


# ------------------------------------------------------------------------------------------ property test

TEXT = st.one_of(st.text(max_size=12), st.sampled_from(HOSTILE + TITLES))
FILTER_ITEMS = st.one_of(
    st.tuples(st.sampled_from(["title", "title__iexact", "title__contains", "title__icontains", "title__startswith",
                               "title__iendswith", "title__not", "title__gte", "body__contains"]), TEXT),
    st.tuples(st.sampled_from(["views", "views__gt", "views__lte", "views__not"]), st.integers(-2, 5)),
    st.tuples(st.sampled_from(["views__in", "views__not_in"]), st.lists(st.integers(-1, 4), max_size=4)),
    st.tuples(st.sampled_from(["title__in", "title__not_in"]), st.lists(TEXT, max_size=3)),
    st.tuples(st.sampled_from(["published_at__isnull", "author_id__isnull"]), st.booleans()),
    st.tuples(st.sampled_from(["published_at__gt", "published_at__lte", "published_at", "published_at__not"]),
              st.one_of(st.sampled_from(STAMPS), st.datetimes(min_value=dt.datetime(2023, 1, 1),
                                                              max_value=dt.datetime(2026, 1, 1),
                                                              timezones=st.sampled_from([dt.timezone.utc, IST, PST])))),
    st.tuples(st.sampled_from(["published_at__in", "published_at__not_in"]), st.lists(st.sampled_from(STAMPS),
                                                                                     max_size=3)),
)


@settings(settings.get_profile("fast-pages"))
@given(items=st.lists(FILTER_ITEMS, max_size=3), sort=st.sampled_from(SORTS), flags=st.sampled_from(FLAGS),
       page=st.integers(1, 4), total=st.sampled_from(["exact", "none"]))
async def test_random_filters_read_the_same_rows_on_both_paths(ctx, backend, articles, items, sort, flags, page,
                                                               total):
    filters = dict(items)
    args = {"sort_by": sort[0], "sort_order": sort[1], "include_deleted": flags[0], "only_deleted": flags[1],
            "page": page, "limit": 6, "total": total}
    await _same(backend, ctx.manager(Article).find_many(filters, **args),
                GenericReads(Article).find_many(filters, **args), _page_view)
    if sort[0] != "published_at" and not flags[1]:
        keyset = {"sort_by": sort[0], "sort_order": sort[1], "include_deleted": flags[0], "filters": filters,
                  "limit": 9}
        await _same(backend, _walk(ctx.manager(Article), **keyset), _walk(GenericReads(Article), **keyset), list)

