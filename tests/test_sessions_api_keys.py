"""Login sessions and API keys: secrets shown once, stored only as hashes, refused once revoked or expired."""

import datetime as dt

import pytest
from tortoise import timezone
from tortoise.connection import get_connection

from datalayer import ValidationError
from datalayer.core.accounts import SessionStatus


@pytest.fixture
async def user(ctx):
    return await ctx.users.create_user("sam@example.com", "password123", username="sam")


async def raw_rows(table):
    return await get_connection("default").execute_query_dict(f'SELECT * FROM "{table}"')


async def test_session_token_is_returned_once_and_stored_only_as_a_hash(ctx, user):
    session, token = await ctx.sessions.create_session(user.id, dt.timedelta(hours=1), ip_address="10.0.0.1")
    rows = await raw_rows("sessions")
    assert len(rows) == 1
    assert all(token not in str(value) for value in rows[0].values())
    assert rows[0]["token_hash"] == session.token_hash and len(session.token_hash) == 64
    audit = await ctx.audit_logs.history("sessions", session.id)
    assert audit[0].changes["token_hash"] == [None, "***"]


async def test_find_by_token_finds_active_sessions_only(ctx, user):
    session, token = await ctx.sessions.create_session(user.id, dt.timedelta(hours=1))
    assert (await ctx.sessions.find_by_token(token)).id == session.id
    assert await ctx.sessions.find_by_token(token + "x") is None
    assert await ctx.sessions.find_by_token("") is None
    await ctx.sessions.expire_session(session.id)
    assert await ctx.sessions.find_by_token(token) is None


async def test_expired_session_is_not_found_and_cleanup_marks_it(ctx, user):
    session, token = await ctx.sessions.create_session(user.id, dt.timedelta(seconds=30))
    await ctx.sessions.update(session.id, {"expires_at": timezone.now() - dt.timedelta(seconds=1)})
    assert await ctx.sessions.find_by_token(token) is None
    live, _ = await ctx.sessions.create_session(user.id)
    assert await ctx.sessions.cleanup_expired_sessions() == 1
    assert (await ctx.sessions.get(session.id)).status is SessionStatus.EXPIRED
    assert (await ctx.sessions.get(live.id)).status is SessionStatus.ACTIVE


async def test_active_sessions_by_user_and_terminate_all(ctx, user):
    other = await ctx.users.create_user("o@example.com", "password123", username="other")
    for _ in range(3):
        await ctx.sessions.create_session(user.id)
    await ctx.sessions.create_session(other.id)
    assert len(await ctx.sessions.find_active_by_user_id(user.id)) == 3
    assert await ctx.sessions.terminate_all_user_sessions(user.id) == 3
    assert await ctx.sessions.find_active_by_user_id(user.id) == []
    assert len(await ctx.sessions.find_active_by_user_id(other.id)) == 1


async def test_update_last_accessed_stamps_the_session(ctx, user):
    session, _ = await ctx.sessions.create_session(user.id)
    assert session.last_accessed_at is None
    assert (await ctx.sessions.update_last_accessed(session.id)).last_accessed_at is not None


async def test_session_ttl_must_be_positive(ctx, user):
    with pytest.raises(ValidationError) as info:
        await ctx.sessions.create_session(user.id, dt.timedelta(seconds=0))
    assert "ttl" in info.value.errors


async def test_api_key_plaintext_is_never_stored(ctx, user):
    key, plaintext = await ctx.api_keys.issue(user.id, "ci", ["models:read"])
    rows = await raw_rows("api_keys")
    assert all(plaintext not in str(value) for value in rows[0].values())
    secret_part = plaintext.rsplit("_", 1)[1]
    assert all(secret_part not in str(value) for value in rows[0].values())
    assert rows[0]["prefix"] == key.prefix and plaintext.startswith(f"dlk_{key.prefix}_")


async def test_verify_accepts_the_key_and_stamps_last_used(ctx, user):
    key, plaintext = await ctx.api_keys.issue(user.id, "ci", ["models:read"])
    verified = await ctx.api_keys.verify(plaintext)
    assert verified is not None and verified.id == key.id and verified.scopes == ["models:read"]
    assert (await ctx.api_keys.get(key.id)).last_used_at is not None


async def test_verify_refuses_wrong_secret_and_malformed_keys(ctx, user):
    _, plaintext = await ctx.api_keys.issue(user.id, "ci")
    assert await ctx.api_keys.verify(plaintext[:-2] + "zz") is None
    assert await ctx.api_keys.verify("dlk_abcdefgh_nope") is None
    assert await ctx.api_keys.verify("not a key") is None


async def test_revoked_and_expired_keys_are_refused(ctx, user):
    key, plaintext = await ctx.api_keys.issue(user.id, "ci")
    await ctx.api_keys.revoke(key.id)
    assert await ctx.api_keys.verify(plaintext) is None
    _, expired = await ctx.api_keys.issue(user.id, "old", expires_at=timezone.now() - dt.timedelta(minutes=1))
    assert await ctx.api_keys.verify(expired) is None
    deleted, deleted_plain = await ctx.api_keys.issue(user.id, "gone")
    await ctx.api_keys.delete(deleted.id)
    assert await ctx.api_keys.verify(deleted_plain) is None


async def test_rotate_revokes_the_old_key_and_issues_a_working_new_one(ctx, user):
    old, old_plain = await ctx.api_keys.issue(user.id, "deploy", ["a", "b"], rate_limit=50)
    new, new_plain = await ctx.api_keys.rotate(old.id)
    assert new.id != old.id and (new.name, new.scopes, new.rate_limit) == ("deploy", ["a", "b"], 50)
    assert await ctx.api_keys.verify(old_plain) is None
    assert (await ctx.api_keys.verify(new_plain)).id == new.id


async def test_list_for_user_hides_revoked_keys_unless_asked(ctx, user):
    first, _ = await ctx.api_keys.issue(user.id, "one")
    await ctx.api_keys.issue(user.id, "two")
    await ctx.api_keys.revoke(first.id)
    assert [k.name for k in await ctx.api_keys.list_for_user(user.id)] == ["two"]
    assert len(await ctx.api_keys.list_for_user(user.id, include_revoked=True)) == 2


async def test_key_hash_is_not_filterable(ctx, user):
    key, _ = await ctx.api_keys.issue(user.id, "one")
    with pytest.raises(ValidationError) as info:
        await ctx.api_keys.find_many({"key_hash": key.key_hash})
    assert "key_hash" in info.value.errors


async def test_soft_deleted_user_is_hidden_but_sessions_stay_reachable(ctx, user):
    session, _ = await ctx.sessions.create_session(user.id)
    await ctx.users.delete(user.id)
    assert await ctx.users.find(user.id) is None
    assert (await ctx.sessions.get(session.id)).user_id == user.id
    assert len(await ctx.sessions.find_active_by_user_id(user.id)) == 1
