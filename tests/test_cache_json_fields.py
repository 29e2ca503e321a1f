"""Read-through rows keep JSON fields exactly as the database gives them back, on every cache.

A fetched row holds its JSON fields decoded; Tortoise decodes a ``str`` handed to ``to_python_value`` as JSON
text. Cached rows must therefore not be decoded a second time on a hit: the JSON string ``"hello"`` must not
fail, and ``'{"a": 1}'``, ``"123"`` or ``"[1, 2]"`` must stay strings. Each case reads ``get`` twice (the miss
that fills the cache, then a hit) with the in-process cache, Redis, and Redis with the near cache.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

import pytest

from datalayer.cache.read_through import row_from_dict, row_to_dict
from datalayer.cache.serialization import dumps, loads
from datalayer.characters.models import CharacterTemplate
from tests.cache_support import memory_cache, redis_cache, require_redis
from tests.models import CachedNote

GUARD = 0.05  # seconds after a write during which loads cannot refill the row
READ_THROUGH = frozenset({"User", "Configuration", "CharacterTemplate", "EndpointConfig"})

CONFIG_VALUES = ["hello", '{"a": 1}', "123", "[1, 2]", "", "null", "true", '"quoted"', {"a": 1}, [1, 2], 123,
                 1.5, True, False, None, {"text": "123", "nested": ['{"b": 2}', None]}, ["[]", "{}"]]


@pytest.fixture(params=["memory", "redis", "near"])
async def cache_kind(request, ctx):
    """``ctx`` on a fresh cache of each kind (private namespace), with the default read-through models."""
    kind = request.param
    options = {"invalidation_guard": GUARD, "read_through_models": READ_THROUGH}
    if kind == "memory":
        cache = memory_cache(**options)
    else:
        require_redis()
        cache = redis_cache(near=kind == "near", heartbeat_s=0.1, timeout_s=0.5, **options)
    previous = ctx.use_cache(cache)
    yield kind
    ctx.use_cache(previous)
    await cache.invalidate_prefix("")
    await cache.close()


async def miss_then_hit(ctx, kind, manager, pk):
    """``get`` once to fill the cache, then until the read is a hit (from the near cache, with ``near``)."""
    await asyncio.sleep(GUARD * 2)
    cache = ctx.cache
    reads = [await manager.get(pk)]
    deadline = time.monotonic() + 5
    while True:
        hits, near_hits = cache.stats()["hits"], cache.near.hits if cache.near is not None else 0
        reads.append(await manager.get(pk))
        near_hit = cache.near is not None and cache.near.hits > near_hits
        if cache.stats()["hits"] > hits and (kind != "near" or near_hit):
            return reads
        if time.monotonic() > deadline:
            pytest.fail(f"no {kind} cache hit for {pk}: {cache.stats()}")
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("value", CONFIG_VALUES, ids=repr)
async def test_configuration_values_read_back_from_the_cache_as_stored(ctx, cache_kind, value):
    key = f"setting-{uuid.uuid4().hex[:8]}"
    created = await ctx.configurations.set_value(key, value)
    assert created.value == value
    reads = await miss_then_hit(ctx, cache_kind, ctx.configurations, created.id)
    found = await ctx.configurations.find_by_key(key)
    assert found.value == value
    assert await ctx.configurations.get_value(key) == value
    (listed,) = (await ctx.configurations.find_many({"key": key})).items
    assert listed.value == value
    for read in reads:
        assert read.value == value and type(read.value) is type(value), (cache_kind, read.value)


async def test_a_configuration_updated_to_a_json_like_string_reads_back_as_that_string(ctx, cache_kind):
    created = await ctx.configurations.set_value("mode", {"a": 1})
    await miss_then_hit(ctx, cache_kind, ctx.configurations, created.id)
    await ctx.configurations.set_value("mode", '{"a": 1}')  # invalidates the cached dict
    for read in await miss_then_hit(ctx, cache_kind, ctx.configurations, created.id):
        assert read.value == '{"a": 1}'
    assert await ctx.configurations.get_value("mode") == '{"a": 1}'


async def test_cached_json_values_are_private_to_each_read(ctx, cache_kind):
    created = await ctx.configurations.set_value("shared", {"tags": ["a"]})
    reads = await miss_then_hit(ctx, cache_kind, ctx.configurations, created.id)
    first, second = reads[0], reads[-1]
    first.value["tags"].append("changed by a caller")
    second.value["tags"].append("changed by another")
    assert (await ctx.configurations.get(created.id)).value == {"tags": ["a"]}


# CachedNote.meta is a plain Tortoise JSONField (a str given to it is JSON text); the database can still hold
# a JSON string or number in it, written around the manager.
META_TEXTS = ['"hello"', '"{\\"a\\": 1}"', '"123"', "123", "1.5", "[1, 2]", '{"a": {"b": [1, "x"]}}', "true",
              '""', '"[1, 2]"']


@pytest.mark.parametrize("text", META_TEXTS)
async def test_a_plain_json_field_reads_back_from_the_cache_as_from_the_database(ctx, cache_kind, text):
    created = await ctx.cached_notes.create({"title": "n", "amount": Decimal("1.5"), "meta": {}})
    await CachedNote.filter(pk=created.id).update(meta=text)  # JSON text, stored as given
    stored = (await CachedNote.get(pk=created.id)).meta
    for read in await miss_then_hit(ctx, cache_kind, ctx.cached_notes, created.id):
        assert read.meta == stored and type(read.meta) is type(stored), (cache_kind, read.meta)
        assert read.amount == Decimal("1.5000")


async def test_default_cached_models_json_fields_round_trip(ctx, cache_kind):
    settings = {"steps": 30, "prompt": '{"not": "decoded"}', "weights": [0.5, "1"], "empty": {}, "none": None}
    template = await ctx.character_templates.create(
        {"name": f"t-{uuid.uuid4().hex[:8]}", "style_type": "ANIME", "base_prompt": "p", "settings": settings}
    )
    fresh = await CharacterTemplate.get(pk=template.id)
    for read in await miss_then_hit(ctx, cache_kind, ctx.character_templates, template.id):
        assert read.settings == settings == fresh.settings
        assert read.style_type is fresh.style_type  # an enum again, not its value
        assert read.is_active is True

    owner = await ctx.users.create_user(f"{uuid.uuid4().hex}@x.io", "a long passphrase 1",
                                        username=uuid.uuid4().hex[:12])
    model = await ctx.ml_models.create({"name": f"m-{uuid.uuid4().hex[:8]}", "owner_id": owner.id, "framework": "pytorch",
                                        "config": {"k": "v"}, "tags": ["a"]})
    endpoint = await ctx.endpoint_configs.create(
        {"ml_model_id": model.id, "path": f"/p/{uuid.uuid4().hex[:8]}", "settings": {"a": "[1]", "b": [True]}}
    )
    for read in await miss_then_hit(ctx, cache_kind, ctx.endpoint_configs, endpoint.id):
        assert read.settings == {"a": "[1]", "b": [True]}
    for read in await miss_then_hit(ctx, cache_kind, ctx.users, owner.id):
        assert read.role is owner.role and read.email == owner.email


async def test_every_json_field_of_every_model_survives_the_row_codec(ctx):
    """Whatever the pack (ml, agent, analysis, characters, the suite's): a JSON string value, written around
    the manager, comes back from a cached row as the string the database returns."""
    from tortoise import Tortoise
    from tortoise import fields as tf

    checked = 0
    for app in Tortoise.apps.values():
        for model in app.values():
            for name, field in model._meta.fields_map.items():
                if not isinstance(field, tf.JSONField) or name not in model._meta.fields_db_projection:
                    continue
                row = model._init_from_db(**{column: None for column in model._meta.fields_db_projection.values()})
                for value in ("hello", '{"a": 1}', "123", [1, "2"], {"a": None}, 1.5, None):
                    setattr(row, name, value)
                    back = row_from_dict(model, loads(dumps(row_to_dict(row))))
                    assert getattr(back, name) == value, (model.__name__, name, value)
                checked += 1
    assert checked >= 8
