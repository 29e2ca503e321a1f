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


async def test_a_users_daily_quota_moves_only_with_the_tier(ctx):
    """Seed 003: the quota is the tier's; generic writes may not raise it (update, update_many, upsert)."""
    user = await ctx.users.create_user("quota@example.com", "a long passphrase", username="quota")
    for attempt in (lambda: ctx.users.update(user.id, {"daily_quota": 10**6}),
                    lambda: ctx.users.update_many({"id": user.id}, {"daily_quota": 10**6}),
                    lambda: ctx.users.upsert({"daily_quota": 10**6}, email="quota@example.com")):
        with pytest.raises(ValidationError, match="set_subscription"):
            await attempt()
    assert (await ctx.users.get(user.id)).daily_quota == 3
    moved = await ctx.users.set_subscription(user.id, "pro")
    assert (moved.subscription_tier.value, moved.daily_quota) == ("pro", 50)


# ------------------------------------------------------------- hostile arguments of domain methods


@pytest.fixture
def shanghai_time(monkeypatch):
    """The process's local time zone is UTC+8 for the test (naive date-times must still mean UTC)."""
    import time
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(("call", "field"), [
    (lambda ctx, user: ctx.sessions.create_session(user.id, ttl=dt.timedelta(days=999999999)), "ttl"),
    (lambda ctx, user: ctx.sessions.create_session(user.id, ttl=dt.timedelta(days=36_501)), "ttl"),
    (lambda ctx, user: ctx.system_logs.cleanup_old_data(10**9), "days"),
    (lambda ctx, user: ctx.system_logs.cleanup_old_data(36_501), "days"),
    (lambda ctx, user: ctx.tasks.claim_next("w", task_type=5), "task_type"),
    (lambda ctx, user: ctx.tasks.claim_next("w", task_type="a\x00b"), "task_type"),
    (lambda ctx, user: ctx.api_keys.list_for_user(user.id, include_revoked="no"), "include_revoked"),
    (lambda ctx, user: ctx.api_keys.list_for_user(user.id, include_revoked=0), "include_revoked"),
    (lambda ctx, user: ctx.system_logs.log_system_event("svc", "info", "m", details=[1]), "details"),
    (lambda ctx, user: ctx.system_logs.log_system_event("svc", "info", "m", details=""), "details"),
    (lambda ctx, user: ctx.configurations.get_value("missing", 1, as_type=object()), "as_type"),
    (lambda ctx, user: ctx.tasks.find_many(sort_by=""), "sort_by"),
    (lambda ctx, user: ctx.model_usage.usage_statistics(
        since=dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=14)))), "since"),
    (lambda ctx, user: ctx.model_usage.usage_statistics(until="2024-01-01"), "until"),
    (lambda ctx, user: ctx.audit_logs.security_events(
        since=dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-14)))), "since"),
    (lambda ctx, user: ctx.tasks.update(user.id, {"title": "t"}, expected_version="1"), "expected_version"),
    (lambda ctx, user: ctx.configurations.get_value("k", 1, as_type="a\x00b"), "as_type"),
    (lambda ctx, user: ctx.configurations.get_value("k\ud800", 1), "key"),
    (lambda ctx, user: ctx.system_logs.find_recent(service="svc\x00"), "service"),
    (lambda ctx, user: ctx.audit_logs.history("users\ud800", user.id), "model_or_table"),
    (lambda ctx, user: ctx.audit_logs.history("users", 10**5000), "record_id"),
    (lambda ctx, user: ctx.tasks.get(10**5000), "id"),
    (lambda ctx, user: ctx.ml_models.find_all(limit=10**5000), "limit"),
], ids=["ttl-huge", "ttl-over-max", "cleanup-huge", "cleanup-over-max", "claim-type-int", "claim-type-nul",
        "revoked-str", "revoked-int", "details-list", "details-str", "as_type-missing-key", "sort_by-empty",
        "usage-since-overflow", "usage-until-str", "security-since-overflow", "expected_version-str",
        "as_type-bad-reference", "get_value-surrogate-key", "find_recent-nul", "history-surrogate-table",
        "history-huge-id", "get-huge-id", "limit-huge"])
async def test_bad_arguments_are_validation_errors_naming_them(ctx, user, call, field):
    before = (await ctx.sessions.count(), await ctx.system_logs.count(), await AuditLog.all().count())
    with pytest.raises(ValidationError) as info:
        await call(ctx, user)
    refused(info, field)
    assert (await ctx.sessions.count(), await ctx.system_logs.count(), await AuditLog.all().count()) == before


async def test_maintenance_cleanup_bounds_its_day_count(ctx):
    from datalayer.maintenance import cleanup
    for days in (10**9, -1, "30"):
        with pytest.raises(ValidationError) as info:
            await cleanup([], days=days)
        refused(info, "days")
    with pytest.raises(ValidationError) as info:
        await cleanup([], now=dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=14))))
    refused(info, "now")


async def test_the_longest_session_and_retention_are_accepted(ctx, user):
    session, _ = await ctx.sessions.create_session(user.id, ttl=dt.timedelta(days=36_500))
    assert session.expires_at > timezone.now() + dt.timedelta(days=36_499)
    assert await ctx.system_logs.cleanup_old_data(36_500) == {"system_logs": 0, "sessions": 0}


@pytest.mark.parametrize("value", ["a\x00b", "\ud800", {"s": "\ud800"}, {"\ud800": 1}, ["x\x00"],
                                   [float("nan")], "nested"],
                         ids=["nul", "surrogate", "surrogate-inside", "surrogate-key", "nul-inside", "nan", "nested"])
async def test_set_value_applies_the_json_rule_on_create_and_replace(ctx, value):
    if value == "nested":
        value = [[]]
        for _ in range(5000):
            value = [value]
    with pytest.raises(ValidationError) as info:
        await ctx.configurations.set_value("fresh", value)
    refused(info, "fresh", "value")
    await ctx.configurations.set_value("kept", {"ok": True})
    with pytest.raises(ValidationError) as info:
        await ctx.configurations.set_value("kept", value)
    refused(info, "kept", "value")
    with pytest.raises(ValidationError) as info:
        await ctx.configurations.set_value("typed", value, as_type=list[str])
    refused(info, "typed")
    assert await ctx.configurations.get_value("kept") == {"ok": True}
    assert await ctx.configurations.count() == 1


async def test_well_typed_arguments_still_work(ctx, user):
    await ctx.tasks.create({"title": "a", "task_type": "email"})
    assert await ctx.tasks.claim_next("w", task_type="report") is None
    assert (await ctx.tasks.claim_next("w", task_type="email")).title == "a"
    key, _ = await ctx.api_keys.issue(user.id, "ci", ["a"])
    await ctx.api_keys.revoke(key.id)
    assert await ctx.api_keys.list_for_user(user.id) == []
    assert [k.id for k in await ctx.api_keys.list_for_user(user.id, include_revoked=True)] == [key.id]
    entry = await ctx.system_logs.log_system_event("svc", "info", "m")
    assert entry.details == {}


async def test_usage_statistics_read_since_and_until_as_instants(ctx, ml_model, shanghai_time):
    utc = dt.timezone.utc
    for at in (dt.datetime(2024, 6, 1, 23, 30, tzinfo=utc), dt.datetime(2024, 6, 2, 0, 30, tzinfo=utc)):
        await ctx.model_usage.record(ml_model.id, status_code=200, latency_ms=1.0, at=at)

    async def requests(**bounds):
        return sum(row["requests"] for row in await ctx.model_usage.usage_statistics(ml_model.id, **bounds))

    plus_8 = dt.timezone(dt.timedelta(hours=8))
    assert await requests(since=dt.datetime(2024, 6, 2, 7, 0, tzinfo=plus_8)) == 2  # 2024-06-01 23:00 UTC
    assert await requests(since=dt.datetime(2024, 6, 2, 8, 0, tzinfo=plus_8)) == 1  # 2024-06-02 00:00 UTC
    assert await requests(since=dt.datetime(2024, 6, 2, 0, 0)) == 1  # naive: UTC, not Shanghai time
    assert await requests(until=dt.datetime(2024, 6, 2, 0, 0)) == 1
    assert await requests(until=dt.datetime(2024, 6, 2, 8, 0, tzinfo=plus_8)) == 1
    assert await requests(since=dt.datetime(2024, 6, 1, 23, 0), until=dt.datetime(2024, 6, 2, 1, 0)) == 2


async def test_security_events_read_since_as_an_instant(ctx, shanghai_time):
    assert await ctx.api_keys.verify("not-a-key") is None  # one key_rejected event, now
    now = timezone.now()
    naive_utc = now.replace(tzinfo=None)
    assert len(await ctx.audit_logs.security_events(since=naive_utc - dt.timedelta(minutes=5))) == 1
    assert await ctx.audit_logs.security_events(since=naive_utc + dt.timedelta(minutes=30)) == []
    plus_8 = dt.timezone(dt.timedelta(hours=8))
    assert len(await ctx.audit_logs.security_events(since=(now - dt.timedelta(minutes=5)).astimezone(plus_8))) == 1
    assert await ctx.audit_logs.security_events(since=(now + dt.timedelta(minutes=5)).astimezone(plus_8)) == []


async def test_credentials_with_a_lone_surrogate_match_nothing(ctx, user):
    assert await ctx.sessions.find_by_token("\ud800") is None
    assert await ctx.api_keys.verify("dlk_abcdefgh_\ud800") is None
    assert await ctx.users.authenticate(user.email, "pass\ud800word") is None
    with pytest.raises(ValidationError) as info:
        await ctx.users.change_password(user.id, "pass\ud800word")
    refused(info, "password", "surrogate")
