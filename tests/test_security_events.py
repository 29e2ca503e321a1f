"""Security events in the audit trail (seed 000: "audit logging for security events").

Failed logins, account locks, refused API keys, revocations and rotations each leave one audit row with an
action of its own, and no row ever holds a password, token, key or hash (checked on the stored row itself).
"""

import datetime as dt
import json

import pytest
from tortoise import timezone
from tortoise.connection import get_connection

from datalayer import ValidationError
from datalayer.core.audit_log import AuditAction

PASSWORD = "correct horse battery"


@pytest.fixture
async def user(ctx):
    return await ctx.users.create_user("Eve@Example.com", PASSWORD, username="eve")


async def stored_events(*actions: AuditAction) -> list[dict]:
    """The audit rows of ``actions`` as stored (raw SQL), oldest first, ``changes`` decoded."""
    rows = await get_connection("default").execute_query_dict(
        'SELECT * FROM "audit_log" ORDER BY "created_at", "id"'
    )
    wanted = {action.value for action in actions}
    events = [dict(row) for row in rows if row["action"] in wanted]
    for row in events:
        if isinstance(row["changes"], str):
            row["changes"] = json.loads(row["changes"])
    return events


def serialised(rows: list[dict]) -> str:
    return json.dumps(rows, default=str)


async def test_failed_logins_are_recorded_with_the_reason_and_never_the_password(ctx, user):
    assert await ctx.users.authenticate("eve@example.com", "wrong password") is None
    assert await ctx.users.authenticate("nobody@example.com", PASSWORD) is None
    assert await ctx.users.authenticate(PASSWORD, PASSWORD) is None  # the password typed as the email
    events = await stored_events(AuditAction.LOGIN_FAILED)
    assert [(e["table_name"], e["record_id"], e["changes"]) for e in events] == [
        ("users", str(user.id), {"reason": "wrong_password", "email": "eve@example.com"}),
        ("users", "", {"reason": "unknown_email", "email": "nobody@example.com"}),
        ("users", "", {"reason": "unknown_email"}),
    ]
    text = serialised(await stored_events(*AuditAction))
    assert PASSWORD not in text and "wrong password" not in text and user.password_hash not in text


async def test_a_successful_login_is_not_a_security_event(ctx, user):
    assert await ctx.users.authenticate("eve@example.com", PASSWORD) is not None
    assert await ctx.audit_logs.security_events() == []


async def test_locking_an_account_and_logging_in_to_it_are_recorded(ctx, user):
    await ctx.users.deactivate_user(user.id)
    await ctx.users.deactivate_user(user.id)  # already locked: nothing happens, nothing recorded
    assert await ctx.users.authenticate("eve@example.com", PASSWORD) is None
    await ctx.users.activate_user(user.id)
    events = await stored_events(AuditAction.ACCOUNT_LOCKED, AuditAction.ACCOUNT_UNLOCKED, AuditAction.LOGIN_FAILED)
    assert [(e["action"], e["record_id"], e["changes"].get("reason")) for e in events] == [
        ("account_locked", str(user.id), None),
        ("login_failed", str(user.id), "account_locked"),
        ("account_unlocked", str(user.id), None),
    ]
    newest = await ctx.audit_logs.security_events()
    assert [e.action for e in newest] == [AuditAction.ACCOUNT_UNLOCKED, AuditAction.LOGIN_FAILED,
                                          AuditAction.ACCOUNT_LOCKED]
    assert PASSWORD not in serialised(events)


async def test_refused_api_keys_are_recorded_without_the_key(ctx, user):
    key, plaintext = await ctx.api_keys.issue(user.id, "ci", ["models:read"])
    _, expired = await ctx.api_keys.issue(user.id, "old", expires_at=timezone.now() - dt.timedelta(minutes=1))
    wrong = plaintext[:-4] + "zzzz"
    assert await ctx.api_keys.verify(wrong) is None
    assert await ctx.api_keys.verify("dlk_abcdefgh_guessed-secret") is None
    assert await ctx.api_keys.verify("Bearer something-secret") is None
    assert await ctx.api_keys.verify(expired) is None
    await ctx.api_keys.revoke(key.id)
    assert await ctx.api_keys.verify(plaintext) is None
    events = await stored_events(AuditAction.KEY_REJECTED)
    assert [(e["record_id"] == str(key.id), e["changes"]) for e in events] == [
        (True, {"reason": "wrong_secret", "prefix": key.prefix}),
        (False, {"reason": "unknown_key", "prefix": "abcdefgh"}),
        (False, {"reason": "malformed"}),
        (False, {"reason": "expired", "prefix": expired.split("_")[1]}),
        (True, {"reason": "revoked", "prefix": key.prefix}),
    ]
    text = serialised(await stored_events(*AuditAction))
    for secret in (plaintext, plaintext.split("_", 2)[2], wrong.split("_", 2)[2], expired.split("_", 2)[2],
                   "guessed-secret", "something-secret", key.key_hash):
        assert secret not in text


async def test_a_good_key_is_not_a_security_event(ctx, user):
    _, plaintext = await ctx.api_keys.issue(user.id, "ci")
    assert await ctx.api_keys.verify(plaintext) is not None
    assert await ctx.audit_logs.security_events() == []


async def test_revocation_and_rotation_are_recorded_and_name_the_replacement(ctx, user):
    first, first_plain = await ctx.api_keys.issue(user.id, "deploy", ["a"])
    second, second_plain = await ctx.api_keys.issue(user.id, "backup")
    new, new_plain = await ctx.api_keys.rotate(first.id)
    await ctx.api_keys.revoke(second.id)
    await ctx.api_keys.revoke(second.id)  # already revoked: no second event
    events = await stored_events(AuditAction.KEY_ROTATED, AuditAction.KEY_REVOKED)
    assert [(e["action"], e["record_id"], e["changes"]) for e in events] == [
        ("key_rotated", str(first.id), {"prefix": first.prefix, "replaced_by": str(new.id)}),
        ("key_revoked", str(second.id), {"prefix": second.prefix, "name": "backup"}),
    ]
    text = serialised(await stored_events(*AuditAction))
    for secret in (first_plain, second_plain, new_plain, first.key_hash, second.key_hash, new.key_hash):
        assert secret.split("_", 2)[-1] not in text  # the secret part of dlk_<prefix>_<secret> (it may hold "_")
    assert [e.action for e in await ctx.audit_logs.security_events(action="key_revoked")] == [AuditAction.KEY_REVOKED]


async def test_a_revoked_key_cannot_be_rotated_back_to_life(ctx, user):
    key, _ = await ctx.api_keys.issue(user.id, "ci")
    await ctx.api_keys.revoke(key.id)
    with pytest.raises(ValidationError):
        await ctx.api_keys.rotate(key.id)
    assert await ctx.api_keys.count() == 1
    assert len(await stored_events(AuditAction.KEY_ROTATED)) == 0


async def test_session_tokens_never_reach_the_audit_trail(ctx, user):
    session, token = await ctx.sessions.create_session(user.id)
    await ctx.sessions.terminate_all_user_sessions(user.id)
    text = serialised(await stored_events(*AuditAction))
    assert token not in text and session.token_hash not in text
