"""Managers of login sessions and API keys: secrets shown once, stored as SHA-256, ended for good.

Domain rules (seed 000/001): a session's status only moves from active to expired or terminated; a revoked
key stays revoked; tokens and keys are stored only as hashes; scopes are a list of strings; rate limits
are positive. Failed key checks, revocations and rotations are security events in the audit trail.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, ClassVar

from tortoise import timezone

from datalayer.core import rules
from datalayer.core.accounts import ApiKey, Session, SessionStatus
from datalayer.core.audit_log import AuditAction
from datalayer.core.security_events import record_event
from datalayer.errors import ValidationError
from datalayer.managers.base import ModelManager
from datalayer.security import tokens
from datalayer.transactions import transaction
from datalayer.translate import translated

_PREFIX = re.compile(rf"[a-z0-9]{{{tokens.PREFIX_LENGTH}}}")


def _key_prefix(value: Any) -> Any:
    if not isinstance(value, str) or not _PREFIX.fullmatch(value):
        raise ValueError(f"must be {tokens.PREFIX_LENGTH} lowercase letters or digits (security.tokens.new_api_key)")
    return value


class SessionManager(ModelManager[Session]):
    """``ctx.sessions``: the plain token goes to the client once; the row keeps its SHA-256 only."""

    model = Session
    default_ttl = dt.timedelta(days=7)
    guarded_fields: ClassVar = {
        "status": "expire_session, terminate_all_user_sessions or cleanup_expired_sessions "
                  "(an ended session stays ended)",
        "token_hash": "create_session (a new session gets a new token)",
        "user_id": "create_session for that user",
    }
    field_checks: ClassVar = {"token_hash": rules.sha256_hex, "ip_address": rules.ip_address}

    async def create_session(
        self, user_id: Any, ttl: dt.timedelta | None = None, *, ip_address: str | None = None,
        user_agent: str | None = None,
    ) -> tuple[Session, str]:
        """``(session, token)``; the token is not stored and cannot be shown again.

        Raises ``ValidationError`` for a ``ttl`` that is not a positive ``timedelta`` of at most
        ``rules.MAX_DAYS`` days or an ``ip_address`` that is not one IPv4/IPv6 address.
        """
        ttl = rules.duration(self.default_ttl if ttl is None else ttl, field="ttl", model="Session")
        token = tokens.new_token()
        session = await self.create({
            "user_id": self._key(user_id), "token_hash": tokens.hash_token(token),
            "expires_at": timezone.now() + ttl, "ip_address": ip_address, "user_agent": user_agent,
        })
        return session, token

    async def find_by_token(self, token: str) -> Session | None:
        """The active, unexpired session for this token, or None."""
        if not isinstance(token, str) or not token:
            return None
        with translated("Session"):
            session = await self.query().filter(token_hash=tokens.hash_token(token)).first()
        if session is None or not tokens.tokens_match(token, session.token_hash):
            return None
        if session.status is not SessionStatus.ACTIVE or session.expires_at <= timezone.now():
            return None
        return session

    async def find_active_by_user_id(self, user_id: Any) -> list[Session]:
        with translated("Session"):
            return list(await self.query().filter(
                user_id=self._key(user_id), status=SessionStatus.ACTIVE, expires_at__gt=timezone.now()
            ).order_by("-created_at"))

    async def update_last_accessed(self, session_id: Any) -> Session:
        return await self.update(session_id, {"last_accessed_at": timezone.now()})

    async def expire_session(self, session_id: Any) -> Session:
        """Mark an active session expired; an ended (expired or terminated) one is returned unchanged."""
        session = await self.get(session_id)
        if session.status is not SessionStatus.ACTIVE:
            return session
        with self.domain_write():
            return await self.update(session.pk, {"status": SessionStatus.EXPIRED})

    async def terminate_all_user_sessions(self, user_id: Any) -> int:
        """End every active session of a user (log out everywhere); returns how many."""
        with self.domain_write():
            return await self.update_many({"user_id": self._key(user_id), "status": SessionStatus.ACTIVE},
                                          {"status": SessionStatus.TERMINATED})

    async def cleanup_expired_sessions(self) -> int:
        """Mark active sessions past ``expires_at`` as expired; returns how many."""
        with self.domain_write():
            return await self.update_many({"status": SessionStatus.ACTIVE, "expires_at__lte": timezone.now()},
                                          {"status": SessionStatus.EXPIRED})


class ApiKeyManager(ModelManager[ApiKey]):
    """``ctx.api_keys``: keys shown once as ``dlk_<prefix>_<secret>``; stored as prefix + SHA-256."""

    model = ApiKey
    guarded_fields: ClassVar = {
        "revoked_at": "revoke or rotate (a revoked key stays revoked)",
        "key_hash": "rotate (which issues a new key)",
        "prefix": "rotate (which issues a new key)",
        "user_id": "issue, for that user",
    }
    field_checks: ClassVar = {"key_hash": rules.sha256_hex, "prefix": _key_prefix, "scopes": rules.string_list,
               "rate_limit": rules.at_least(1, " request")}

    async def issue(
        self, user_id: Any, name: str, scopes: list[str] | None = None, *,
        expires_at: dt.datetime | None = None, rate_limit: int | None = None,
    ) -> tuple[ApiKey, str]:
        """``(key, plaintext)``: hand ``plaintext`` to the user now; only its hash is kept.

        ``scopes`` is a list of strings (``ValidationError`` otherwise, a bare string included).
        """
        prefix, plaintext = tokens.new_api_key()
        data: dict[str, Any] = {
            "user_id": self._key(user_id), "name": name, "prefix": prefix,
            "key_hash": tokens.hash_token(plaintext), "expires_at": expires_at,
            "scopes": [] if scopes is None else list(scopes) if isinstance(scopes, tuple) else scopes,
        }
        if rate_limit is not None:
            data["rate_limit"] = rate_limit
        return await self.create(data), plaintext

    async def verify(self, plaintext: str) -> ApiKey | None:
        """The live, unrevoked, unexpired key matching ``plaintext`` (constant-time compare), else None.

        A successful check stamps ``last_used_at``; a refused one is a ``key_rejected`` security event
        (its reason, and the public prefix when the key is shaped like one of ours).
        """
        prefix = tokens.api_key_prefix(plaintext)
        if prefix is None:
            await record_event(ApiKey, AuditAction.KEY_REJECTED, None, reason="malformed")
            return None
        with translated("ApiKey"):
            key = await self.query().filter(prefix=prefix).first()
        reason = None
        if key is None:
            reason = "unknown_key"
        elif not tokens.tokens_match(plaintext, key.key_hash):
            reason = "wrong_secret"
        elif key.revoked_at is not None:
            reason = "revoked"
        elif key.expires_at is not None and key.expires_at <= timezone.now():
            reason = "expired"
        if reason is not None or key is None:  # (key is None only with a reason)
            await record_event(ApiKey, AuditAction.KEY_REJECTED, key.pk if key else None, reason=reason,
                               prefix=prefix)
            return None
        with translated("ApiKey"):  # usage telemetry: no version bump or audit row per request
            await ApiKey.filter(pk=key.pk).update(last_used_at=timezone.now())
        return key

    async def revoke(self, key_id: Any) -> ApiKey:
        """Revoke a key for good (a ``key_revoked`` security event); an already revoked key is returned as is."""
        async with transaction():
            key = await self._locked(key_id)
            if key.revoked_at is not None:
                return key
            key = await self._revoked(key)
            await record_event(ApiKey, AuditAction.KEY_REVOKED, key.pk, prefix=key.prefix, name=key.name)
        return key

    async def rotate(self, key_id: Any) -> tuple[ApiKey, str]:
        """Revoke a live key and issue its replacement (same user, name, scopes, limits) atomically.

        A ``key_rotated`` security event names the replacement. A revoked key cannot be rotated
        (``ValidationError``): issue a new one.
        """
        async with transaction():
            old = await self._locked(key_id)
            if old.revoked_at is not None:
                raise ValidationError({"key_id": "the key is revoked; issue a new one instead of rotating"},
                                      model="ApiKey")
            old = await self._revoked(old)
            new, plaintext = await self.issue(old.user_id, old.name, old.scopes, expires_at=old.expires_at,
                                              rate_limit=old.rate_limit)
            await record_event(ApiKey, AuditAction.KEY_ROTATED, old.pk, prefix=old.prefix,
                               replaced_by=new.pk)
        return new, plaintext

    async def _locked(self, key_id: Any) -> ApiKey:
        with translated("ApiKey"):
            return await self._locked_row(self._key(key_id), deleted=False)

    async def _revoked(self, key: ApiKey) -> ApiKey:
        with self.domain_write():
            return await self.update(key.pk, {"revoked_at": timezone.now()})

    async def list_for_user(self, user_id: Any, *, include_revoked: bool = False) -> list[ApiKey]:
        include_revoked = rules.flag(include_revoked, field="include_revoked", model="ApiKey")
        queryset = self.query().filter(user_id=self._key(user_id))
        if not include_revoked:
            queryset = queryset.filter(revoked_at__isnull=True)
        with translated("ApiKey"):
            return list(await queryset.order_by("-created_at"))
