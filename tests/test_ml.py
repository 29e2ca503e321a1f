"""ML models by owner, stored files whose keys are kept only wrapped, endpoints, and usage statistics."""

import base64
import datetime as dt
import re

import pytest
from pydantic import SecretStr
from tortoise import timezone
from tortoise.connection import get_connection

from datalayer import ConfigurationError, ConflictError, ValidationError
from datalayer.ml.managers import StoredModelManager


@pytest.fixture
async def owner(ctx):
    return await ctx.users.create_user("ml@example.com", "password123", username="mlops")


async def make_model(ctx, owner, name="resnet", **extra):
    return await ctx.ml_models.create({"owner_id": owner.id, "name": name, "framework": "pytorch", **extra})


@pytest.fixture
def stored_models(ctx):
    manager = StoredModelManager()
    manager.settings = ctx.settings.model_copy(
        update={"key_wrapping_secret": SecretStr("wrap-secret-1")}
    )
    return manager


async def test_find_all_filters_by_owner_and_status_newest_first(ctx, owner):
    other = await ctx.users.create_user("o@example.com", "password123", username="other")
    first = await make_model(ctx, owner, "a")
    second = await make_model(ctx, owner, "b", status="ready")
    await make_model(ctx, other, "c")
    assert [m.id for m in await ctx.ml_models.find_all(user_id=owner.id)] == [second.id, first.id]
    assert [m.id for m in await ctx.ml_models.find_all(user_id=owner.id, status="ready")] == [second.id]
    assert len(await ctx.ml_models.find_all()) == 3
    with pytest.raises(ValidationError):
        await ctx.ml_models.find_all(limit=0)


async def test_model_name_and_version_are_unique_per_owner(ctx, owner):
    await make_model(ctx, owner, "a", model_version="1")
    await make_model(ctx, owner, "a", model_version="2")
    with pytest.raises(ConflictError):
        await make_model(ctx, owner, "a", model_version="1")


async def test_bad_framework_names_the_field(ctx, owner):
    with pytest.raises(ValidationError) as info:
        await ctx.ml_models.create({"owner_id": owner.id, "name": "x", "framework": "matlab"})
    assert "framework" in info.value.errors


async def test_stored_model_key_is_stored_only_wrapped(ctx, owner, stored_models):
    model = await make_model(ctx, owner)
    stored, data_key = await stored_models.store(model.id, storage_path="s3://b/m.pt", size_bytes=10,
                                                 checksum="ab" * 32)
    rows = await get_connection("default").execute_query_dict("SELECT * FROM stored_models")
    raw = " ".join(str(value) for value in rows[0].values())
    assert data_key.hex() not in raw and rows[0]["encryption_key_wrapped"].startswith("v1:")
    assert base64.b64encode(data_key).decode() not in raw
    assert await stored_models.encryption_key(stored.id) == data_key
    history = await ctx.audit_logs.history("stored_models", stored.id)
    assert all(entry.changes.get("encryption_key_wrapped", [None, "***"])[1] in ("***", None) for entry in history)


async def test_stored_model_needs_the_wrapping_secret(ctx, owner):
    model = await make_model(ctx, owner)
    with pytest.raises(ConfigurationError, match="DATALAYER_KEY_WRAPPING_SECRET"):
        await ctx.stored_models.store(model.id, storage_path="p", size_bytes=1, checksum="c")
    assert await ctx.stored_models.count() == 0  # the row went with the rolled-back transaction


async def test_a_different_wrapping_secret_cannot_read_the_key(ctx, owner, stored_models):
    model = await make_model(ctx, owner)
    stored, _ = await stored_models.store(model.id, storage_path="p", size_bytes=1, checksum="c")
    intruder = StoredModelManager()
    intruder.settings = stored_models.settings.model_copy(
        update={"key_wrapping_secret": SecretStr("other")}
    )
    with pytest.raises(ValidationError):
        await intruder.encryption_key(stored.id)


async def test_endpoint_path_is_unique_among_live_endpoints(ctx, owner):
    model = await make_model(ctx, owner)
    endpoint = await ctx.endpoint_configs.create({"ml_model_id": model.id, "path": "/predict/resnet"})
    assert endpoint.auth_required and endpoint.rate_limit == 100
    with pytest.raises(ConflictError):
        await ctx.endpoint_configs.create({"ml_model_id": model.id, "path": "/predict/resnet"})


async def test_record_usage_and_statistics_per_model_per_day(ctx, owner):
    model = await make_model(ctx, owner)
    other = await make_model(ctx, owner, "other")
    key, _ = await ctx.api_keys.issue(owner.id, "svc")
    today = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    yesterday = today - dt.timedelta(days=1)
    await ctx.model_usage.record(model.id, status_code=200, latency_ms=10, api_key_id=key.id, user_id=owner.id,
                                 request_size=100, response_size=50, at=yesterday)
    await ctx.model_usage.record(model.id, status_code=200, latency_ms=20, request_size=100, at=today)
    await ctx.model_usage.record(model.id, status_code=500, latency_ms=60, at=today)
    await ctx.model_usage.record(other.id, status_code=200, latency_ms=5, at=today)
    stats = await ctx.model_usage.usage_statistics(model.id)
    assert [(s["day"], s["requests"], s["errors"]) for s in stats] == [
        (yesterday.date(), 1, 0), (today.date(), 2, 1)
    ]
    assert stats[1]["avg_latency_ms"] == pytest.approx(40.0) and stats[1]["max_latency_ms"] == 60
    assert stats[0]["request_bytes"] == 100 and stats[0]["response_bytes"] == 50
    everything = await ctx.model_usage.usage_statistics(since=today.replace(hour=0))
    assert sorted(s["requests"] for s in everything) == [1, 2]


async def test_usage_statistics_read_a_model_s_rows_from_the_covering_index_alone(ctx, backend, owner):
    """The statement ``usage_statistics(model, since=)`` runs is answered from ``model_usage``'s covering index
    (PostgreSQL: an index-only scan; SQLite: "USING COVERING INDEX"), as the migration built it."""
    model = await make_model(ctx, owner)
    since = timezone.now() - dt.timedelta(days=7)
    for latency in (5, 7):
        await ctx.model_usage.record(model.id, status_code=200, latency_ms=latency)
    assert [s["requests"] for s in await ctx.model_usage.usage_statistics(model.id, since=since)] == [2]
    sql, params = ctx.model_usage._statistics_query(backend.is_postgres, model.id, since, None)
    if backend.is_postgres:
        async with ctx.transaction():  # planner costs on two rows would read the table: ask for the index path
            await ctx.raw("SET LOCAL enable_seqscan = off")
            await ctx.raw("SET LOCAL enable_bitmapscan = off")
            plan = "\n".join(row["QUERY PLAN"] for row in await ctx.raw(f"EXPLAIN {sql}", params))
        assert "Index Only Scan using idx_model_usage_model_at_covering" in plan, plan
    else:
        numbered = iter(range(1, 3))
        sql = re.sub(r"\?", lambda _: f"${next(numbered)}", sql)  # ctx.raw takes $n on every engine
        plan = "\n".join(row["detail"] for row in await ctx.raw(f"EXPLAIN QUERY PLAN {sql}", params))
        assert "USING COVERING INDEX idx_model_usage_model_at_covering" in plan, plan


async def test_usage_rejects_negative_values(ctx, owner):
    model = await make_model(ctx, owner)
    with pytest.raises(ValidationError):
        await ctx.model_usage.record(model.id, status_code=200, latency_ms=-1)


async def test_soft_deleted_model_is_hidden_but_its_usage_and_files_stay_reachable(ctx, owner, stored_models):
    model = await make_model(ctx, owner)
    stored, _ = await stored_models.store(model.id, storage_path="p", size_bytes=1, checksum="c")
    await ctx.model_usage.record(model.id, status_code=200, latency_ms=1)
    await ctx.ml_models.delete(model.id)
    assert await ctx.ml_models.find_all(user_id=owner.id) == []
    assert (await ctx.stored_models.get(stored.id)).ml_model_id == model.id
    assert (await ctx.model_usage.usage_statistics(model.id))[0]["requests"] == 1
