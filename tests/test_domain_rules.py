"""Domain rules hold through every write path, and bad input to a domain method is a ``ValidationError``.

Every generic write (create, update, update_many, upsert, get_or_create, bulk_create, restore) either keeps a
pack's invariant or refuses the field, naming the domain method to use; nothing is written then. Domain
methods turn bad enum values, None and wrong types into ``ValidationError``; emails and URLs are checked.
"""

import datetime as dt

import pytest
from tortoise import timezone

from datalayer import ValidationError
from datalayer.agent.models import Task, TaskStatus
from datalayer.characters.managers import QuotaExceededError
from datalayer.core.accounts import SessionStatus, SubscriptionTier
from datalayer.core.audit_log import AuditLog
from datalayer.ml.models import EndpointConfig


@pytest.fixture
async def user(ctx):
    return await ctx.users.create_user("rules@example.com", "password123", username="rules")


@pytest.fixture
async def ml_model(ctx, user):
    return await ctx.ml_models.create({"owner_id": user.id, "name": "m", "framework": "onnx"})


async def done_task(ctx, title="done"):
    task = await ctx.tasks.create({"title": title})
    await ctx.tasks.start_task(task.id, "worker-1")
    return await ctx.tasks.complete_task(task.id, {"ok": True})


def refused(info, field, *words):
    """The error names ``field`` and says each of ``words`` (the fix)."""
    assert field in info.value.errors, info.value.errors
    for word in words:
        assert word in info.value.errors[field], info.value.errors[field]


# ------------------------------------------------------------- tasks (seed 001: TASK_TRANSITIONS)


async def test_generic_update_cannot_reopen_a_completed_task(ctx):
    done = await done_task(ctx)
    with pytest.raises(ValidationError) as info:
        await ctx.tasks.update(done.id, {"status": "pending"})
    refused(info, "status", "start_task", "complete_task")
    again = await ctx.tasks.get(done.id)
    assert (again.status, again.version) == (TaskStatus.COMPLETED, done.version)


async def test_update_many_cannot_complete_tasks_and_changes_no_row(ctx):
    for title in ("a", "b"):
        await ctx.tasks.create({"title": title})
    with pytest.raises(ValidationError) as info:
        await ctx.tasks.update_many({"status": "pending"}, {"status": "completed"})
    refused(info, "status", "TASK_TRANSITIONS")
    assert await ctx.tasks.count({"status": "pending"}) == 2
    assert not await AuditLog.filter(table_name="tasks", action="update").exists()


async def test_upsert_of_an_existing_task_cannot_set_status_or_attempts(ctx):
    await ctx.tasks.create({"title": "queued"})
    with pytest.raises(ValidationError) as info:
        await ctx.tasks.upsert({"status": "completed", "attempts": 0}, title="queued")
    refused(info, "status")
    refused(info, "attempts", "start_task")
    assert (await ctx.tasks.find_one({"title": "queued"})).status is TaskStatus.PENDING


async def test_a_task_cannot_be_created_with_negative_attempts_on_any_create_path(ctx):
    with pytest.raises(ValidationError) as info:
        await ctx.tasks.create({"title": "t", "status": "running", "attempts": -3})
    refused(info, "attempts", "at least 0")
    with pytest.raises(ValidationError) as info:
        await ctx.tasks.get_or_create({"max_retries": -1}, title="t")
    refused(info, "max_retries")
    with pytest.raises(ValidationError) as info:
        await ctx.tasks.bulk_create([{"title": "ok"}, {"title": "bad", "attempts": -1}])
    refused(info, "rows[1].attempts")
    assert await ctx.tasks.count() == 0


async def test_a_created_task_may_start_in_any_status_with_sane_counters(ctx):
    """Imports and seeds create running or finished tasks; only the counters are constrained then."""
    running = await ctx.tasks.create({"title": "imported", "status": "running", "attempts": 1})
    assert running.status is TaskStatus.RUNNING
    assert (await ctx.tasks.complete_task(running.id)).status is TaskStatus.COMPLETED


async def test_lifecycle_methods_refuse_bad_arguments(ctx):
    task = await ctx.tasks.create({"title": "t"})
    with pytest.raises(ValidationError) as info:
        await ctx.tasks.start_task(task.id, None)
    refused(info, "assigned_to")
    await ctx.tasks.start_task(task.id, "w")
    with pytest.raises(ValidationError) as info:
        await ctx.tasks.complete_task(task.id, {1, 2})  # a set is not JSON
    refused(info, "results", "JSON")
    assert (await ctx.tasks.get(task.id)).status is TaskStatus.RUNNING
    with pytest.raises(ValidationError) as info:
        await ctx.tasks.claim_next(42)
    refused(info, "worker")


async def test_restore_refuses_a_row_that_breaks_a_rule(ctx, ml_model):
    endpoint = await ctx.endpoint_configs.create({"ml_model_id": ml_model.id, "path": "/v1/m"})
    await EndpointConfig.filter(id=endpoint.id).update(rate_limit=-5)  # written behind the manager's back
    await ctx.endpoint_configs.delete(endpoint.id)
    with pytest.raises(ValidationError) as info:
        await ctx.endpoint_configs.restore(endpoint.id)
    refused(info, "rate_limit")
    assert await ctx.endpoint_configs.find(endpoint.id) is None


# ------------------------------------------------------------- ML (seed 000)


async def test_endpoint_rate_limit_stays_positive_through_every_write_path(ctx, ml_model):
    with pytest.raises(ValidationError) as info:
        await ctx.endpoint_configs.create({"ml_model_id": ml_model.id, "path": "/v1/a", "rate_limit": -5})
    refused(info, "rate_limit", "at least 1")
    endpoint = await ctx.endpoint_configs.create({"ml_model_id": ml_model.id, "path": "/v1/a"})
    for write in (
        lambda: ctx.endpoint_configs.update(endpoint.id, {"rate_limit": -5}),
        lambda: ctx.endpoint_configs.update_many({"path": "/v1/a"}, {"rate_limit": 0}),
        lambda: ctx.endpoint_configs.upsert({"rate_limit": -1}, path="/v1/a"),
        lambda: ctx.endpoint_configs.bulk_create([{"ml_model_id": ml_model.id, "path": "/v1/b", "rate_limit": -5}]),
    ):
        with pytest.raises(ValidationError):
            await write()
    assert (await ctx.endpoint_configs.get(endpoint.id)).rate_limit == 100
    assert await ctx.endpoint_configs.count() == 1
    with pytest.raises(ValidationError) as info:
        await ctx.endpoint_configs.create({"ml_model_id": ml_model.id, "path": "v1/c"})
    refused(info, "path", "'/'")


async def test_usage_records_refuse_negative_latency_sizes_and_unreal_status_codes(ctx, ml_model):
    with pytest.raises(ValidationError) as info:
        await ctx.model_usage.record(ml_model.id, status_code=42, latency_ms=-1, response_size=-2)
    assert set(info.value.errors) == {"status_code", "latency_ms", "response_size"}
    with pytest.raises(ValidationError) as info:
        await ctx.model_usage.record(ml_model.id, status_code=200, latency_ms="fast")
    refused(info, "latency_ms")
    with pytest.raises(ValidationError):
        await ctx.model_usage.bulk_create([{"ml_model_id": ml_model.id, "status_code": 200, "latency_ms": -3.0}])
    assert await ctx.model_usage.count() == 0


async def test_a_stored_file_key_is_only_ever_stored_wrapped(ctx, ml_model):
    raw_key = "0123456789abcdef0123456789abcdef"
    with pytest.raises(ValidationError) as info:
        await ctx.stored_models.create({"ml_model_id": ml_model.id, "storage_path": "p", "checksum": "c",
                                        "encryption_key_wrapped": raw_key})
    refused(info, "encryption_key_wrapped", "wrap")
    stored = await ctx.stored_models.create({"ml_model_id": ml_model.id, "storage_path": "p", "checksum": "c"})
    with pytest.raises(ValidationError) as info:
        await ctx.stored_models.update(stored.id, {"encryption_key_wrapped": "v1:AAAA"})
    refused(info, "encryption_key_wrapped", "store")
    with pytest.raises(ValidationError) as info:
        await ctx.stored_models.update(stored.id, {"size_bytes": -1})
    refused(info, "size_bytes")
    assert (await ctx.stored_models.get(stored.id)).encryption_key_wrapped is None


async def test_ml_model_tags_are_a_list_of_strings(ctx, user):
    with pytest.raises(ValidationError) as info:
        await ctx.ml_models.create({"owner_id": user.id, "name": "m", "framework": "onnx", "tags": "vision"})
    refused(info, "tags", "list")


# ------------------------------------------------------------- accounts (seeds 000, 003)


async def test_tier_changes_only_through_set_subscription_which_moves_the_quota(ctx, user):
    with pytest.raises(ValidationError) as info:
        await ctx.users.update(user.id, {"subscription_tier": "pro"})
    refused(info, "subscription_tier", "set_subscription")
    with pytest.raises(ValidationError):
        await ctx.users.update(user.id, {"daily_quota": -1})
    assert (await ctx.users.get(user.id)).subscription_tier is SubscriptionTier.FREE
    moved = await ctx.users.set_subscription(user.id, "PRO")  # either case
    assert (moved.subscription_tier, moved.daily_quota) == (SubscriptionTier.PRO, 50)


async def test_bulk_created_users_get_their_tiers_quota(ctx):
    password_hash = await ctx.users.hash_password("password123")
    rows = [{"email": f"u{i}@example.com", "username": f"user{i}", "password_hash": password_hash,
             "subscription_tier": tier} for i, tier in enumerate(("free", "premium", "pro"))]
    created = await ctx.users.bulk_create(rows)
    assert [u.daily_quota for u in created] == [3, 15, 50]
    assert sorted(u.daily_quota for u in (await ctx.users.find_many()).items) == [3, 15, 50]


async def test_is_active_changes_only_through_activate_and_deactivate(ctx, user):
    with pytest.raises(ValidationError) as info:
        await ctx.users.update_many({"email": user.email}, {"is_active": False})
    refused(info, "is_active", "deactivate_user")
    assert (await ctx.users.get(user.id)).is_active
    assert not (await ctx.users.deactivate_user(user.id)).is_active


async def test_an_ended_session_stays_ended(ctx, user):
    session, token = await ctx.sessions.create_session(user.id)
    await ctx.sessions.terminate_all_user_sessions(user.id)
    with pytest.raises(ValidationError) as info:
        await ctx.sessions.update(session.id, {"status": "active"})
    refused(info, "status", "expire_session")
    assert (await ctx.sessions.expire_session(session.id)).status is SessionStatus.TERMINATED
    assert await ctx.sessions.find_by_token(token) is None
    with pytest.raises(ValidationError) as info:
        await ctx.sessions.update(session.id, {"token_hash": "0" * 64})
    refused(info, "token_hash", "create_session")


async def test_session_input_is_checked(ctx, user):
    with pytest.raises(ValidationError) as info:
        await ctx.sessions.create_session(user.id, "1h")
    refused(info, "ttl", "timedelta")
    with pytest.raises(ValidationError) as info:
        await ctx.sessions.create_session(user.id, ip_address="10.0.0.1, 10.0.0.2")
    refused(info, "ip_address")
    with pytest.raises(ValidationError) as info:
        await ctx.sessions.create({"user_id": user.id, "token_hash": "plain-token",
                                   "expires_at": timezone.now() + dt.timedelta(hours=1)})
    refused(info, "token_hash", "SHA-256")
    assert await ctx.sessions.count() == 0


async def test_api_key_scopes_rate_limit_and_revocation_hold(ctx, user):
    for scopes in ("models:read", [1, 2], ["a", "a"], [""]):
        with pytest.raises(ValidationError) as info:
            await ctx.api_keys.issue(user.id, "ci", scopes)
        refused(info, "scopes")
    with pytest.raises(ValidationError) as info:
        await ctx.api_keys.issue(user.id, "ci", ["a"], rate_limit=-1)
    refused(info, "rate_limit")
    key, plaintext = await ctx.api_keys.issue(user.id, "ci", ("models:read",))
    await ctx.api_keys.revoke(key.id)
    for change in ({"revoked_at": None}, {"key_hash": "0" * 64}, {"prefix": "abcdefgh"}):
        with pytest.raises(ValidationError) as info:
            await ctx.api_keys.update(key.id, change)
        refused(info, next(iter(change)), "rotate")
    assert await ctx.api_keys.verify(plaintext) is None
    assert await ctx.api_keys.count() == 1


# ------------------------------------------------------------- characters (seed 003: daily quota)


async def test_the_daily_quota_holds_through_generic_create_upsert_and_bulk_create(ctx, user):
    for i in range(2):
        await ctx.characters.create({"user_id": user.id, "name": f"c{i}", "prompt": "p"})
    with pytest.raises(QuotaExceededError):
        await ctx.characters.bulk_create([{"user_id": user.id, "name": f"b{i}", "prompt": "p"} for i in range(2)])
    assert await ctx.characters.count() == 2
    await ctx.characters.upsert({"user_id": user.id, "prompt": "p"}, name="third")
    with pytest.raises(QuotaExceededError):
        await ctx.characters.create({"user_id": user.id, "name": "fourth", "prompt": "p"})
    assert await ctx.characters.created_today(user.id) == 3


async def test_a_character_stays_with_its_creator_and_its_urls_are_http(ctx, user):
    other = await ctx.users.create_user("other@example.com", "password123", username="other")
    character = await ctx.characters.create_for_user(user.id, {"name": "c", "prompt": "p"})
    with pytest.raises(ValidationError) as info:
        await ctx.characters.update(character.id, {"user_id": other.id})
    refused(info, "user_id", "create_for_user")
    for url in ("javascript:alert(1)", "ftp://cdn.example.com/a.png", "cdn.example.com/a.png", "https://"):
        with pytest.raises(ValidationError) as info:
            await ctx.characters.update(character.id, {"thumbnail_url": url})
        refused(info, "thumbnail_url", "http")
    updated = await ctx.characters.update(character.id, {"image_url": "https://cdn.example.com/c.png"})
    assert updated.image_url == "https://cdn.example.com/c.png" and updated.user_id == user.id


# ------------------------------------------------------------- library errors, never raw Python ones


async def test_unknown_enum_values_are_validation_errors(ctx, user):
    with pytest.raises(ValidationError) as info:
        await ctx.users.set_subscription(user.id, "gold")
    refused(info, "subscription_tier", "free", "premium", "pro")
    with pytest.raises(ValidationError) as info:
        await ctx.ml_models.find_all(status="bogus")
    refused(info, "status", "ready")
    with pytest.raises(ValidationError) as info:
        await ctx.users.create_user("g@example.com", "password123", username="gold", subscription_tier="gold")
    refused(info, "subscription_tier")
    with pytest.raises(ValidationError):
        await ctx.tasks.find_by_status("bogus")
    with pytest.raises(ValidationError):
        await ctx.system_logs.find_recent(level="loud")
    assert await ctx.ml_models.find_all(status="READY") == []
    assert await ctx.system_logs.find_recent(level="error") == []


@pytest.mark.parametrize("call", [
    lambda ctx, user: ctx.users.find_by_email(None),
    lambda ctx, user: ctx.users.find_by_email(42),
    lambda ctx, user: ctx.users.change_password(user.id, 12345678),
    lambda ctx, user: ctx.users.update_profile(user.id, "first_name=Ann"),
    lambda ctx, user: ctx.users.create(["email"]),
    lambda ctx, user: ctx.ml_models.find_all(limit="10"),
    lambda ctx, user: ctx.system_logs.find_recent(limit=None),
    lambda ctx, user: ctx.system_logs.cleanup_old_data(days=True),
    lambda ctx, user: ctx.model_usage.usage_statistics(since="yesterday"),
    lambda ctx, user: ctx.configurations.set_value("k", object()),
    lambda ctx, user: ctx.configurations.get_value(None),
    lambda ctx, user: ctx.characters.create_for_user(user.id, None),
    lambda ctx, user: ctx.characters.find_by_user(user.id, limit=-1),
    lambda ctx, user: ctx.audit_logs.history(42, user.id),
    lambda ctx, user: ctx.tasks.find_overdue(limit=0),
], ids=["find_by_email-None", "find_by_email-int", "change_password-int", "update_profile-str", "create-list",
        "find_all-limit-str", "find_recent-limit-None", "cleanup-days-bool", "usage_statistics-since-str",
        "set_value-object", "get_value-None", "create_for_user-None", "find_by_user-limit", "history-int",
        "find_overdue-limit"])
async def test_none_and_wrong_types_are_validation_errors(ctx, user, call):
    with pytest.raises(ValidationError):
        await call(ctx, user)


async def test_sort_order_is_accepted_in_either_case(ctx):
    first = await ctx.tasks.create({"title": "first", "priority": 1})
    second = await ctx.tasks.create({"title": "second", "priority": 2})
    page = await ctx.tasks.find_many(sort_by="priority", sort_order="DESC")
    assert [t.id for t in page.items] == [second.id, first.id]
    chunk = await ctx.tasks.find_after(sort_by="priority", sort_order="Asc")
    assert [t.id for t in chunk.items] == [first.id, second.id]
    with pytest.raises(ValidationError) as info:
        await ctx.tasks.find_many(sort_order="sideways")
    refused(info, "sort_order")


@pytest.mark.parametrize("email", ["a@@b.com", "a@b..com", ".a@b.com", "a@.com", "a@b.c,d@e.f", "a b@c.com",
                                   "a@b", "a@localhost", "<a@b.com>", ""])
async def test_malformed_emails_are_refused(ctx, user, email):
    with pytest.raises(ValidationError) as info:
        await ctx.users.create_user(email, "password123", username="someone")
    refused(info, "email")
    with pytest.raises(ValidationError) as info:
        await ctx.users.update_profile(user.id, {"email": email})
    refused(info, "email")
    if email:
        assert await ctx.users.find_by_email(email) is None  # a lookup, not an error: no such user
    assert await ctx.users.count() == 1


async def test_real_world_emails_are_accepted_and_stored_lowercased(ctx):
    for i, email in enumerate(("First.Last+tag@Example.co.uk", "o'brien@example.com", "ü@bücher.example")):
        user = await ctx.users.create_user(email, "password123", username=f"user{i}")
        assert user.email == email.lower()
        assert (await ctx.users.find_by_email(email.upper())).id == user.id


@pytest.mark.parametrize("url", ["ftp://example.com/a.png", "javascript:alert(1)", "not a url", "https://",
                                 "//example.com/a.png", "https://exa mple.com/a.png", "http://-bad-.com/"])
async def test_avatar_urls_must_be_http_or_https(ctx, user, url):
    with pytest.raises(ValidationError) as info:
        await ctx.users.update_profile(user.id, {"avatar_url": url})
    refused(info, "avatar_url", "http")
    with pytest.raises(ValidationError):
        await ctx.users.create_user("new@example.com", "password123", username="newbie", avatar_url=url)
    assert (await ctx.users.get(user.id)).avatar_url is None


async def test_ordinary_avatar_urls_are_kept_as_given(ctx, user):
    url = "https://cdn.example.com/avatars/a%20b.png?size=64#top"
    assert (await ctx.users.update_profile(user.id, {"avatar_url": url})).avatar_url == url


async def test_task_rules_apply_to_unrelated_writes_only_when_they_set_the_field(ctx):
    """A generic update of a plain field of a finished task still works."""
    done = await done_task(ctx)
    renamed = await ctx.tasks.update(done.id, {"title": "renamed", "priority": 4})
    assert (renamed.title, renamed.status) == ("renamed", TaskStatus.COMPLETED)
    assert await Task.filter(id=done.id, title="renamed").exists()
