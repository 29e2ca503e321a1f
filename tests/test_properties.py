"""Property-based tests: hostile filters, sorts, pages, search strings and cursors, generated at random.

Whatever a client sends, a read either returns rows or raises a datalayer error, and the data never changes.
Runs on both engines against the migrated schema. The default profile keeps CI fast; the full one runs more
than 10,000 cases: ``HYPOTHESIS_PROFILE=full .venv/bin/python -m pytest -q tests/test_properties.py``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datalayer import DataLayerError, User
from tests.models import Article, Author

settings.register_profile("default", max_examples=60, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
# 5 properties x 2 engines x 1,000 examples = 10,000 cases
settings.register_profile("full", max_examples=1000, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

NASTY_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["'", '"', "%", "_", "\\", "\x00", "'; DROP TABLE test_article; --", "ß", "İ", "ǅ", "Ω",
                     "😀", "a\x00b", "%_%", "\\%", "NULL", "1=1", "*/", "/*", ")", "(", "$1", "?", ":name"]),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), NASTY_TEXT, st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.decimals(allow_nan=False, allow_infinity=False),
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())), st.dates(), st.uuids(),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NASTY_TEXT, inner, max_size=3),
                      max_leaves=8)
FIELDS = ["id", "title", "body", "status", "views", "published_at", "created_at", "updated_at", "deleted_at",
          "version", "author", "author_id", "author__name", "author__email", "author__password_hash",
          "password_hash", "comments__text", "author__articles__title", "created_by", "pk"]
LOOKUPS = ["", "__in", "__gt", "__gte", "__lt", "__lte", "__icontains", "__contains", "__startswith", "__iexact",
           "__isnull", "__not", "__range", "__search", "__regex", "__year", "__filter", "__"]
FILTER_KEYS = st.one_of(st.builds(lambda f, lookup: f + lookup, st.sampled_from(FIELDS), st.sampled_from(LOOKUPS)),
                        NASTY_TEXT)
FILTERS = st.one_of(st.none(), st.dictionaries(FILTER_KEYS, VALUES, max_size=3))
SORT_BY = st.one_of(st.none(), st.sampled_from(FIELDS), NASTY_TEXT)
SORT_ORDER = st.one_of(st.sampled_from(["asc", "desc", "ASC", "DESC", "Desc", ""]), NASTY_TEXT)
NUMBERS = st.one_of(st.integers(min_value=-3, max_value=300), st.integers(min_value=-(2**80), max_value=2**80),
                    st.just(10**18), NASTY_TEXT, st.none(), st.floats())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


CURSORS = st.one_of(
    st.none(), NASTY_TEXT,
    st.builds(lambda v: _b64(json.dumps(v, default=str).encode()), VALUES),
    st.builds(lambda v, i: _b64(json.dumps(["created_at", False, v, i], default=str).encode()), VALUES, VALUES),
    st.binary(max_size=40).map(_b64),
)


async def snapshot(ctx) -> tuple:
    """Everything a read must leave alone: every article, author and user, deleted ones included."""
    articles = sorted((str(a.id), a.title, a.views, a.version, str(a.deleted_at)) for a in await Article.all_objects.all())
    authors = sorted((str(a.id), a.name, a.email) for a in await Author.all_objects.all())
    users = sorted((str(u.id), u.email, u.password_hash) for u in await User.all_objects.all())
    return articles, authors, users


@pytest.fixture
async def rows(ctx):
    """A few rows with awkward text, one soft-deleted, so filters have something to find."""
    authors = ctx.manager(Author)
    articles = ctx.manager(Article)
    ada = await authors.create({"name": "Ådä 😀", "email": "ada@example.com", "password_hash": "x" * 60})
    for index, title in enumerate(["ΣΊΣΥΦΟΣ", "straße", "50% off_now", "a'b\"c", "plain"]):
        await articles.create({"title": title, "views": index * 7, "author_id": str(ada.id), "status": "published"})
    gone = await articles.create({"title": "gone", "author_id": str(ada.id)})
    await articles.delete(gone.id)
    await ctx.users.create_user("prop@example.com", "a long passphrase", username="prop")
    return await snapshot(ctx)


async def _attempt(call) -> None:
    try:
        await call
    except DataLayerError:
        pass  # a clear library error is a fine answer to hostile input


@given(filters=FILTERS, search=st.one_of(st.none(), NASTY_TEXT), page=NUMBERS, limit=NUMBERS,
       sort_by=SORT_BY, sort_order=SORT_ORDER)
async def test_find_many_returns_rows_or_a_library_error_and_changes_nothing(ctx, rows, filters, search, page,
                                                                             limit, sort_by, sort_order):
    await _attempt(ctx.manager(Article).find_many(filters, search=search, page=page, limit=limit,
                                                  sort_by=sort_by, sort_order=sort_order))
    assert await snapshot(ctx) == rows


@given(cursor=CURSORS, limit=NUMBERS, sort_by=SORT_BY, sort_order=SORT_ORDER, filters=FILTERS)
async def test_find_after_returns_rows_or_a_library_error_and_changes_nothing(ctx, rows, cursor, limit, sort_by,
                                                                              sort_order, filters):
    await _attempt(ctx.manager(Article).find_after(cursor, limit=limit, sort_by=sort_by or "created_at",
                                                   sort_order=sort_order, filters=filters))
    assert await snapshot(ctx) == rows


@given(filters=FILTERS)
async def test_count_and_exists_return_numbers_or_a_library_error(ctx, rows, filters):
    manager = ctx.manager(Article)
    try:
        total = await manager.count(filters)
        assert isinstance(total, int) and total >= 0
        assert await manager.exists(filters) is (total > 0)
    except DataLayerError:
        pass
    assert await snapshot(ctx) == rows


@given(key=st.one_of(VALUES, st.uuids().map(str)))
async def test_get_by_any_key_returns_a_row_or_a_library_error(ctx, rows, key):
    await _attempt(ctx.manager(Article).get(key))
    await _attempt(ctx.users.get(key))
    assert await snapshot(ctx) == rows


@given(filters=FILTERS, search=st.one_of(st.none(), NASTY_TEXT), sort_by=SORT_BY)
async def test_secret_fields_never_filter_sort_or_leak(ctx, rows, filters, search, sort_by):
    """Filtering or sorting by a secret (directly or through a relation) is refused, whatever the spelling."""
    secret = {"password_hash": "x" * 60, **(filters or {})}
    with pytest.raises(DataLayerError):
        await ctx.users.find_many(secret, search=search)
    with pytest.raises(DataLayerError):
        await ctx.manager(Article).find_many({"author__password_hash__startswith": "x"})
    await _attempt(ctx.users.find_many(filters, search=search, sort_by=sort_by))
    assert await snapshot(ctx) == rows


def test_the_full_profile_reaches_ten_thousand_cases():
    full = settings.get_profile("full")
    properties = [name for name, value in globals().items() if name.startswith("test_") and hasattr(value, "hypothesis")]
    assert len(properties) * 2 * full.max_examples >= 10_000  # x 2 engines
    assert dt.timezone.utc  # (datetime strategies above include aware and naive values)
