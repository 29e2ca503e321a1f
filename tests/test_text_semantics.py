"""Text and time compare alike on both engines: non-ASCII letters fold in case-insensitive lookups, search and
case-insensitive unique indexes; ``contains`` is case-sensitive; date-times with any UTC offset compare as
instants (SQLite compares their text)."""

import datetime as dt

import pytest
from tortoise.connection import get_connection

from datalayer import ConflictError
from tests.models import Article, Author

UTC = dt.timezone.utc


def _zone(hours):
    return dt.timezone(dt.timedelta(hours=hours))


async def _authors(ctx, *names):
    authors = ctx.manager(Author)
    for index, name in enumerate(names):
        await authors.create({"name": name, "email": f"a{index}@example.com"})
    return authors


@pytest.mark.parametrize(
    ("stored", "filters"),
    [
        ("Émile", {"name__iexact": "émile"}),
        ("émile", {"name__iexact": "ÉMILE"}),
        ("Ärzte Öl", {"name__icontains": "äRZTE öL"}),
        ("Жанна", {"name__istartswith": "жАН"}),
        ("ΟΔΟΣ", {"name__iexact": "οδος"}),
        ("Ünïcödé", {"name__iendswith": "ÏCÖDÉ"}),
    ],
)
async def test_case_insensitive_lookups_fold_non_ascii_letters(ctx, stored, filters):
    authors = await _authors(ctx, stored, "someone else")
    page = await authors.find_many(filters=filters)
    assert [a.name for a in page.items] == [stored]


async def test_search_folds_non_ascii_letters(ctx):
    authors = await _authors(ctx, "Émile Zola", "Ōsaka Ōtani", "plain")
    assert [a.name for a in (await authors.find_many(search="éMILE")).items] == ["Émile Zola"]
    assert [a.name for a in (await authors.find_many(search="ōSAKA")).items] == ["Ōsaka Ōtani"]


async def test_contains_and_startswith_are_case_sensitive_on_both_engines(ctx):
    authors = await _authors(ctx, "Emile", "Élodie")
    assert await authors.count({"name__contains": "EMI"}) == 0
    assert await authors.count({"name__contains": "mil"}) == 1
    assert await authors.count({"name__startswith": "él"}) == 0
    assert await authors.count({"name__startswith": "Él"}) == 1
    assert await authors.count({"name__icontains": "EMI"}) == 1


async def test_like_wildcards_in_the_value_are_literal(ctx):
    authors = await _authors(ctx, "100% Ärger_x", "100 Ärgerax")
    assert [a.name for a in (await authors.find_many(filters={"name__icontains": "% äRGER_"})).items] == [
        "100% Ärger_x"
    ]


async def test_a_case_insensitive_unique_index_folds_non_ascii_letters(ctx):
    authors = ctx.manager(Author)
    await authors.create({"name": "a", "email": "ÉLODIE@example.com"})
    with pytest.raises(ConflictError):
        await authors.create({"name": "b", "email": "élodie@EXAMPLE.com"})
    assert await authors.count() == 1


async def test_datetimes_with_any_offset_compare_as_instants(ctx):
    articles = ctx.manager(Article)
    early = await articles.create({"title": "early", "published_at": dt.datetime(2024, 1, 1, 20, tzinfo=_zone(8))})
    late = await articles.create({"title": "late", "published_at": dt.datetime(2024, 1, 1, 13, tzinfo=UTC)})
    assert (await articles.get(early.id)).published_at == dt.datetime(2024, 1, 1, 12, tzinfo=UTC)
    noon_thirty_in_new_york = dt.datetime(2024, 1, 1, 7, 30, tzinfo=_zone(-5))
    assert [a.title for a in (await articles.find_many(filters={"published_at__lt": noon_thirty_in_new_york})).items] \
        == ["early"]
    assert await articles.count({"published_at": dt.datetime(2024, 1, 1, 7, tzinfo=_zone(-5))}) == 1
    assert await articles.count({"published_at__range": [dt.datetime(2024, 1, 1, 20, 30, tzinfo=_zone(9)),
                                                          dt.datetime(2024, 1, 1, 21, 30, tzinfo=_zone(9))]}) == 1
    ordered = await articles.find_many(sort_by="published_at")
    assert [a.id for a in ordered.items] == [early.id, late.id]


async def test_datetimes_written_through_the_orm_directly_are_stored_as_utc_too(ctx):
    """Domain code that bypasses the manager (``QuerySet.update``) still stores comparable instants."""
    article = await ctx.manager(Article).create({"title": "t"})
    await Article.filter(id=article.id).update(published_at=dt.datetime(2024, 3, 1, 8, tzinfo=_zone(8)))
    assert await ctx.manager(Article).count({"published_at": dt.datetime(2024, 3, 1, 0, tzinfo=UTC)}) == 1
    assert await ctx.manager(Article).count({"published_at__gt": dt.datetime(2024, 2, 29, 23, 59, tzinfo=UTC)}) == 1


async def test_date_times_are_stored_as_utc(ctx, backend):
    """PostgreSQL keeps an instant (timestamptz); SQLite keeps text, written in UTC so text order is time order."""
    await ctx.manager(Article).create({"title": "t", "published_at": dt.datetime(2024, 1, 1, 20, tzinfo=_zone(8))})
    [row] = await get_connection("default").execute_query_dict("SELECT published_at FROM test_article")
    if backend.is_postgres:
        assert row["published_at"] == dt.datetime(2024, 1, 1, 12, tzinfo=UTC)
    else:
        assert row["published_at"] == "2024-01-01 12:00:00+00:00"


def test_the_fallback_like_is_case_sensitive_and_honours_escapes():
    """Where SQLite lacks ``PRAGMA case_sensitive_like``, datalayer defines ``LIKE`` itself."""
    import sqlite3

    from datalayer.backends.sqlite_functions import case_sensitive_like

    connection = sqlite3.connect(":memory:")
    connection.create_function("like", 2, case_sensitive_like, deterministic=True)
    connection.create_function("like", 3, case_sensitive_like, deterministic=True)
    rows = connection.execute(
        "SELECT 'Abc' LIKE 'a%', 'Abc' LIKE 'A_c', '50% off' LIKE '50\\% %' ESCAPE '\\', "
        "'500 off' LIKE '50\\%%' ESCAPE '\\', NULL LIKE 'x', 'a\nb' LIKE 'a%b'"
    ).fetchone()
    assert rows == (0, 1, 1, 0, None, 1)
