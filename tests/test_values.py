"""Values keep their meaning on the way in and out, alike on PostgreSQL and SQLite.

Naive date-times are read as UTC whatever the process's time zone; what ``create``/``update`` return is what
``get`` returns; JSON, integers, decimals and text that one engine would store and the other refuse (or
store differently) are a ``ValidationError`` naming the field on both, and nothing is written.
"""

import datetime as dt
import time
from decimal import Decimal

import pytest

from datalayer import ValidationError
from datalayer.analysis.models import AnalysisFile
from datalayer.ml.models import ModelUsage
from tests.models import Article, Author, CachedNote

UTC = dt.timezone.utc
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture
def shanghai(monkeypatch):
    """The process's local time zone is Asia/Shanghai (UTC+8) for the test, restored afterwards."""
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def _snapshot(ctx, model):
    rows = await model.all_objects.all().order_by("id").values()
    return rows, await ctx.audit_logs.count()


def _fields(instance, names):
    return {name: getattr(instance, name) for name in names}


async def test_a_naive_datetime_is_read_as_utc_under_any_local_time_zone(ctx, shanghai):
    articles = ctx.manager(Article)
    noon = dt.datetime(2024, 1, 1, 12, 0)
    created = await articles.create({"title": "t", "published_at": noon})
    stored = await articles.get(created.id)
    assert stored.published_at == dt.datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    assert created.published_at == stored.published_at and created.published_at.utcoffset() == dt.timedelta(0)
    assert await articles.count({"published_at": noon}) == 1
    assert await articles.count({"published_at": "2024-01-01T12:00:00"}) == 1
    assert await articles.count({"published_at": dt.datetime(2024, 1, 1, 20, 0, tzinfo=SHANGHAI)}) == 1
    updated = await articles.update(created.id, {"published_at": dt.datetime(2024, 1, 2, 12, 0)})
    assert updated.published_at == (await articles.get(created.id)).published_at
    assert updated.published_at == dt.datetime(2024, 1, 2, 12, 0, tzinfo=UTC)
    [bulk] = await articles.bulk_create([{"title": "b", "published_at": noon}])
    assert (await articles.get(bulk.id)).published_at == dt.datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


async def test_an_aware_datetime_keeps_its_instant_and_comes_back_in_utc(ctx, shanghai):
    articles = ctx.manager(Article)
    evening = dt.datetime(2024, 1, 1, 20, 0, tzinfo=SHANGHAI)
    created = await articles.create({"title": "t", "published_at": evening})
    stored = await articles.get(created.id)
    assert stored.published_at == evening and stored.published_at.utcoffset() == dt.timedelta(0)
    assert created.published_at == stored.published_at
    assert created.published_at.isoformat() == stored.published_at.isoformat() == "2024-01-01T12:00:00+00:00"


async def test_what_create_and_update_return_is_what_get_returns(ctx):
    notes = ctx.manager(CachedNote)
    names = ("title", "amount", "meta", "due_at")
    created = await notes.create({
        "title": "n", "amount": "1.23445", "meta": {"tags": ("a", "b"), 1: None},
        "due_at": dt.datetime(2024, 5, 1, 9, 30, tzinfo=SHANGHAI),
    })
    assert _fields(created, names) == _fields(await notes.get(created.id), names)
    assert created.amount == Decimal("1.2345")  # rounded half-up to the column's scale, as PostgreSQL rounds
    assert created.meta == {"tags": ["a", "b"], "1": None}  # as JSON gives it back
    updated = await notes.update(created.id, {"amount": 2.00005, "meta": [1, {"x": (2,)}],
                                              "due_at": dt.datetime(2024, 5, 2)})
    assert _fields(updated, names) == _fields(await notes.get(created.id), names)
    assert updated.amount == Decimal("2.0001") and updated.meta == [1, {"x": [2]}]
    [bulk] = await notes.bulk_create([{"title": "b", "amount": "0.00005", "meta": {"k": (1,)}}])
    assert _fields(bulk, names) == _fields(await notes.get(bulk.id), names)


@pytest.mark.parametrize("value", ["hello", '{"a": 1}', "123", b"[]"])
async def test_a_str_for_a_json_field_is_refused_alike_on_create_update_and_bulk(ctx, value):
    notes = ctx.manager(CachedNote)
    note = await notes.create({"title": "n", "meta": {"kept": True}})
    before = await _snapshot(ctx, CachedNote)
    with pytest.raises(ValidationError) as created:
        await notes.create({"title": "x", "meta": value})
    with pytest.raises(ValidationError) as updated:
        await notes.update(note.id, {"meta": value})
    with pytest.raises(ValidationError) as bulk:
        await notes.bulk_create([{"title": "x", "meta": value}])
    assert list(created.value.errors) == list(updated.value.errors) == ["meta"]
    assert list(bulk.value.errors) == ["rows[0].meta"]
    assert "json.loads" in created.value.errors["meta"]
    assert await _snapshot(ctx, CachedNote) == before


async def test_text_inside_json_is_kept_as_text(ctx):
    notes = ctx.manager(CachedNote)
    note = await notes.create({"title": "n", "meta": {"greeting": "hello", "raw": '{"a": 1}'}})
    updated = await notes.update(note.id, {"meta": ["123"]})
    assert updated.meta == (await notes.get(note.id)).meta == ["123"]


@pytest.mark.parametrize("value", [{"a": "x\x00y"}, {"x\x00": 1}, [float("nan")], {"n": float("inf")}, {"s": {1, 2}}])
async def test_json_neither_engine_stores_faithfully_is_refused(ctx, value):
    before = await _snapshot(ctx, CachedNote)
    with pytest.raises(ValidationError) as caught:
        await ctx.manager(CachedNote).create({"title": "n", "meta": value})
    assert list(caught.value.errors) == ["meta"]
    assert await _snapshot(ctx, CachedNote) == before


@pytest.mark.parametrize("views", [2**31, -(2**31) - 1, 2**63, 10**30])
async def test_an_integer_outside_the_column_is_a_validation_error_naming_it(ctx, views):
    articles = ctx.manager(Article)
    article = await articles.create({"title": "t", "views": 2**31 - 1})
    before = await _snapshot(ctx, Article)
    with pytest.raises(ValidationError) as created:
        await articles.create({"title": "t", "views": views})
    with pytest.raises(ValidationError) as updated:
        await articles.update(article.id, {"views": views})
    with pytest.raises(ValidationError) as bulk:
        await articles.bulk_create([{"title": "ok"}, {"title": "t", "views": views}])
    with pytest.raises(ValidationError) as filtered:
        await articles.find_many(filters={"views__lt": views})
    assert list(created.value.errors) == list(updated.value.errors) == ["views"]
    assert list(bulk.value.errors) == ["rows[1].views"] and list(filtered.value.errors) == ["views__lt"]
    assert await _snapshot(ctx, Article) == before


async def test_the_range_follows_the_column_width(ctx):
    assert await ctx.manager(AnalysisFile).count({"size_bytes__gt": 2**40}) == 0  # a BigIntField
    with pytest.raises(ValidationError, match="size_bytes__gt"):
        await ctx.manager(AnalysisFile).count({"size_bytes__gt": 2**63})


@pytest.mark.parametrize("value", [True, False])
async def test_true_and_false_are_not_numbers(ctx, value):
    with pytest.raises(ValidationError) as caught:
        await ctx.manager(Article).create({"title": "t", "views": value})
    assert list(caught.value.errors) == ["views"]
    with pytest.raises(ValidationError):
        await ctx.manager(Article).count({"views": value})


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
async def test_floats_and_decimals_must_be_finite(ctx, value):
    with pytest.raises(ValidationError, match="latency_ms"):
        await ctx.manager(ModelUsage).count({"latency_ms__gt": value})
    with pytest.raises(ValidationError) as caught:
        await ctx.manager(CachedNote).create({"title": "n", "amount": value})
    assert list(caught.value.errors) == ["amount"]


async def test_a_decimal_too_wide_for_its_column_is_refused_on_both_engines(ctx):
    notes = ctx.manager(CachedNote)
    await notes.create({"title": "fits", "amount": "99999999.9999"})
    with pytest.raises(ValidationError) as caught:
        await notes.create({"title": "n", "amount": "100000000"})  # precision 12, scale 4: 8 whole digits
    assert list(caught.value.errors) == ["amount"] and "8 digits" in caught.value.errors["amount"]
    assert await notes.count() == 1


@pytest.mark.parametrize("text", ["nul\x00inside", "lone \ud800 surrogate"])
async def test_text_no_engine_can_store_alike_is_refused_everywhere(ctx, text):
    articles = ctx.manager(Article)
    article = await articles.create({"title": "t"})
    before = await _snapshot(ctx, Article)
    for attempt in (
        articles.create({"title": text}),
        articles.update(article.id, {"body": text}),
        articles.bulk_create([{"title": text}]),
        articles.find_many(filters={"title": text}),
        articles.find_many(filters={"title__icontains": text}),
        articles.find_many(search=text),
    ):
        with pytest.raises(ValidationError) as caught:
            await attempt
        assert caught.value.fields and all(
            key in ("title", "body", "rows[0].title", "title__icontains", "search") for key in caught.value.fields
        )
    assert await _snapshot(ctx, Article) == before


async def test_a_declared_schema_gets_the_same_value_rules(ctx):
    """``User`` declares its own create/update schemas; the column rules still apply after them."""
    user = await ctx.users.create_user("ada@example.com", "correct horse battery", username="ada")
    with pytest.raises(ValidationError) as caught:
        await ctx.users.update(user.id, {"daily_quota": 2**31})
    assert list(caught.value.errors) == ["daily_quota"]
    updated = await ctx.users.update(user.id, {"last_login_at": dt.datetime(2024, 1, 1, 12)})
    assert updated.last_login_at == (await ctx.users.get(user.id)).last_login_at
    assert updated.last_login_at == dt.datetime(2024, 1, 1, 12, tzinfo=UTC)
    with pytest.raises(ValidationError) as caught:
        await ctx.manager(Author).create({"name": "a\x00", "email": "a@example.com"})
    assert list(caught.value.errors) == ["name"]


# ------------------------------------------------ hostile values: a ValidationError, never a Python error

PLUS_14 = dt.timezone(dt.timedelta(hours=14))
MINUS_14 = dt.timezone(dt.timedelta(hours=-14))


def _cursor(sort_by, value, last_id):
    from datalayer.managers.pagination import encode_cursor
    return encode_cursor(sort_by, False, value, last_id)


def _nested(levels):
    value = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize("amount", [Decimal("1e1000000"), Decimal("-1e1000000"), "1e1000000", Decimal("9" * 40),
                                    10**40, 1e308])
async def test_a_decimal_beyond_any_precision_is_refused_on_every_path(ctx, amount):
    notes = ctx.manager(CachedNote)
    note = await notes.create({"title": "n", "amount": "1.5"})
    before = await _snapshot(ctx, CachedNote)
    for attempt, key in (
        (lambda: notes.create({"title": "x", "amount": amount}), "amount"),
        (lambda: notes.update(note.id, {"amount": amount}), "amount"),
        (lambda: notes.bulk_create([{"title": "x", "amount": amount}]), "rows[0].amount"),
        (lambda: notes.count({"amount__gt": amount}), "amount__gt"),
        (lambda: notes.find_many(filters={"amount__in": [amount]}), "amount__in"),
        (lambda: notes.find_after(_cursor("amount", str(amount), note.id), sort_by="amount"), "cursor"),
    ):
        with pytest.raises(ValidationError) as caught:
            await attempt()
        assert list(caught.value.errors) == [key], caught.value.errors
    assert await _snapshot(ctx, CachedNote) == before


@pytest.mark.parametrize("amount", [Decimal("-1e-1000000"), "-1e-1000000", Decimal("1.23456")])
async def test_a_decimal_filter_with_more_places_than_the_scale_is_refused_not_rounded(ctx, amount):
    notes = ctx.manager(CachedNote)
    note = await notes.create({"title": "n", "amount": "0"})
    for attempt, key in ((lambda: notes.count({"amount__lte": amount}), "amount__lte"),
                         (lambda: notes.count({"amount": amount}), "amount"),
                         (lambda: notes.find_after(_cursor("amount", str(amount), note.id), sort_by="amount"),
                          "cursor")):
        with pytest.raises(ValidationError) as caught:
            await attempt()
        assert list(caught.value.errors) == [key] and "scale 4" in caught.value.errors[key]
    assert await notes.count({"amount__lte": Decimal("0.00000")}) == 1  # trailing zeros are the same value
    assert await notes.count({"amount__gte": "-99999999.9999"}) == 1
    written = await notes.create({"title": "w", "amount": amount})  # a write is rounded to the scale
    assert written.amount == (await notes.get(written.id)).amount


@pytest.mark.parametrize("when", [dt.datetime(1, 1, 1, tzinfo=PLUS_14),
                                  dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=MINUS_14),
                                  "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59.999999-14:00"])
async def test_a_datetime_outside_the_utc_calendar_is_refused_on_every_path(ctx, when):
    articles = ctx.manager(Article)
    article = await articles.create({"title": "t", "published_at": dt.datetime(2024, 1, 1)})
    await _each_refused(ctx, "years 1 to 9999", (
        (lambda: articles.create({"title": "x", "published_at": when}), "published_at"),
        (lambda: articles.update(article.id, {"published_at": when}), "published_at"),
        (lambda: articles.bulk_create([{"title": "x", "published_at": when}]), "rows[0].published_at"),
        (lambda: articles.count({"published_at__gte": when}), "published_at__gte"),
        (lambda: articles.count({"created_at__range": [when, dt.datetime(2030, 1, 1)]}), "created_at__range"),
        (lambda: articles.find_after(_cursor("created_at", str(when), article.id)), "cursor"),
    ))


async def _each_refused(ctx, says, attempts):
    """Every ``(call, key)`` of ``attempts`` raises a ValidationError under ``key`` alone whose message holds
    ``says``, and no Article row nor audit row changed."""
    before = await _snapshot(ctx, Article)
    for attempt, key in attempts:
        with pytest.raises(ValidationError) as caught:
            await attempt()
        assert list(caught.value.errors) == [key], caught.value.errors
        assert says in caught.value.errors[key]
    assert await _snapshot(ctx, Article) == before


@pytest.mark.parametrize("when, infinity", [
    (dt.datetime(1, 1, 1, tzinfo=UTC), "-infinity"), ("0001-01-01T00:00:00Z", "-infinity"),
    (dt.datetime(1, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))), "-infinity"),
    (dt.datetime(9999, 12, 31, 23, 59, 59, 999999), "infinity"),
    (dt.datetime(9999, 12, 31, 21, 59, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=-2))), "infinity"),
])
async def test_the_first_and_last_instants_are_refused_as_values_to_write(ctx, when, infinity):
    """asyncpg sends datetime.min and datetime.max (in UTC) to PostgreSQL as -infinity and infinity: stored,
    psql and every other client would read infinity. Refused on both engines, on every write path."""
    articles = ctx.manager(Article)
    article = await articles.create({"title": "t", "published_at": dt.datetime(2024, 1, 1)})
    await _each_refused(ctx, f"stores as {infinity}", (
        (lambda: articles.create({"title": "x", "published_at": when}), "published_at"),
        (lambda: articles.update(article.id, {"published_at": when}), "published_at"),
        (lambda: articles.bulk_create([{"title": "x", "published_at": when}]), "rows[0].published_at"),
        (lambda: articles.update_many({"title": "t"}, {"published_at": when}), "published_at"),
    ))
    assert await articles.count({"published_at__gte": when}) == (0 if infinity == "infinity" else 1)  # still compares


@pytest.mark.parametrize("when", [dt.datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
                                  dt.datetime(9999, 12, 31, 23, 59, 59, 999998, tzinfo=UTC)])
async def test_the_instants_next_to_them_are_stored_as_themselves(ctx, when):
    articles = ctx.manager(Article)
    article = await articles.create({"title": "edge", "published_at": when})
    assert (await articles.get(article.id)).published_at == when
    if ctx.target.engine == "postgres":  # what psql and every other client reads
        [row] = await ctx.raw("SELECT published_at::text AS stored FROM test_article WHERE id = $1", [article.id])
        assert row["stored"] == when.isoformat(sep=" ").replace("+00:00", "+00")


@pytest.mark.parametrize("day, infinity", [(dt.date(1, 1, 1), "-infinity"), ("9999-12-31", "infinity")])
def test_a_date_field_refuses_the_first_and_last_dates_too(day, infinity):
    from pydantic import TypeAdapter
    from pydantic import ValidationError as PydanticError
    from tortoise import fields

    from datalayer.managers.values import value_type

    with pytest.raises(PydanticError, match=f"stores as {infinity}"):
        TypeAdapter(value_type(fields.DateField(), "input")).validate_python(day)
    assert TypeAdapter(value_type(fields.DateField(), "filter")).validate_python(day) is not None  # compares


async def test_the_last_instant_of_the_calendar_still_compares(ctx, shanghai):
    articles = ctx.manager(Article)
    await articles.create({"title": "t", "published_at": dt.datetime(2024, 1, 1)})
    assert await articles.count({"published_at__lt": dt.datetime(9999, 12, 31, 23, 59, 59, 999999)}) == 1
    assert await articles.count({"published_at__gt": dt.datetime(1, 1, 1, 14, tzinfo=PLUS_14)}) == 1


def _self_containing():
    value = []
    value.append(value)
    return value


@pytest.mark.parametrize("meta", [_nested(5000), _nested(101), _self_containing(), {"s": "\ud800"},
                                  {"\udfff": 1}, ["ok", ["a\x00"]]],
                         ids=["nested-5000", "nested-101", "self-containing", "surrogate", "surrogate-key", "nul"])
async def test_json_no_engine_stores_alike_is_refused_on_every_write_path(ctx, meta):
    notes = ctx.manager(CachedNote)
    note = await notes.create({"title": "n", "meta": {"kept": True}})
    before = await _snapshot(ctx, CachedNote)
    for attempt, key in ((lambda: notes.create({"title": "x", "meta": meta}), "meta"),
                         (lambda: notes.update(note.id, {"meta": meta}), "meta"),
                         (lambda: notes.bulk_create([{"title": "x", "meta": meta}]), "rows[0].meta"),
                         (lambda: notes.update_many({"title": "n"}, {"meta": meta}), "meta")):
        with pytest.raises(ValidationError) as caught:
            await attempt()
        assert list(caught.value.errors) == [key], caught.value.errors
    assert await _snapshot(ctx, CachedNote) == before


async def test_json_nested_a_hundred_levels_is_kept(ctx):
    notes = ctx.manager(CachedNote)
    note = await notes.create({"title": "n", "meta": _nested(100)})
    assert (await notes.get(note.id)).meta == _nested(100)
    assert (await notes.update(note.id, {"meta": {"deep": _nested(99)}})).meta == {"deep": _nested(99)}


@pytest.mark.parametrize("version", ["1", 1.0, True, 0, -1, 2**31, 2**40, [1]])
async def test_expected_version_must_be_a_version_number(ctx, version):
    articles = ctx.manager(Article)
    article = await articles.create({"title": "t"})
    before = await _snapshot(ctx, Article)
    with pytest.raises(ValidationError) as caught:
        await articles.update(article.id, {"title": "changed"}, expected_version=version)
    assert list(caught.value.errors) == ["expected_version"]
    assert await _snapshot(ctx, Article) == before
    updated = await articles.update(article.id, {"title": "changed"}, expected_version=1)
    assert updated.version == 2


@pytest.mark.parametrize("rows", [None, 5, {"title": "a"}, "title", b"rows", Article])
async def test_bulk_create_takes_an_iterable_of_rows_only(ctx, rows):
    for manager in (ctx.manager(Article), ctx.users):
        with pytest.raises(ValidationError) as caught:
            await manager.bulk_create(rows)
        assert list(caught.value.errors) == ["rows"]
    assert await ctx.manager(Article).count() == 0
    assert await ctx.manager(Article).bulk_create(iter([{"title": "a"}])) != []


async def test_an_empty_sort_by_is_refused_not_defaulted(ctx):
    articles = ctx.manager(Article)
    for attempt in (lambda: articles.find_many(sort_by=""), lambda: articles.find_after(sort_by="")):
        with pytest.raises(ValidationError) as caught:
            await attempt()
        assert list(caught.value.errors) == ["sort_by"]
    assert (await articles.find_many(sort_by=None)).total == 0
