"""Managers of the core pack: users (passwords, authentication, profiles, statistics), login sessions, API
keys, and reading the audit trail."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from tortoise import timezone
from tortoise.functions import Count

from datalayer.errors import ValidationError
from datalayer.managers.base import Input, ModelManager
from datalayer.managers.by_key import fetch_by
from datalayer.managers.pagination import Page
from datalayer.managers.settings_aware import SettingsAware
from datalayer.managers.validation import field_messages
from datalayer.core.audit_log import AuditLog
from datalayer.core.accounts import (
    TIER_DAILY_QUOTA,
    ApiKey,
    Session,
    SessionStatus,
    SubscriptionTier,
    User,
    UserCreate,
    UserProfileUpdate,
)
from datalayer.security import passwords, tokens
from datalayer.transactions import transaction
from datalayer.translate import translated


def parse(schema: type[BaseModel], data: Mapping[str, Any] | BaseModel, model: str) -> dict[str, Any]:
    """Validate ``data`` with ``schema``; keys the caller set, or a ``ValidationError`` naming each field."""
    if isinstance(data, BaseModel):
        data = data.model_dump(exclude_unset=True)
    try:
        return schema.model_validate(dict(data)).model_dump(exclude_unset=True)
    except PydanticValidationError as exc:
        raise ValidationError(field_messages(exc, list(schema.model_fields)), model=model) from None


def start_of_day(now: dt.datetime | None = None) -> dt.datetime:
    now = now or timezone.now()
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


class UserManager(SettingsAware, ModelManager[User]):
    """``ctx.users``: accounts with bcrypt passwords (cost ``BCRYPT_ROUNDS``, hashed off the event loop)."""

    model = User

    @property
    def rounds(self) -> int:
        return self.active_settings.bcrypt_rounds

    async def hash_password(self, password: str) -> str:
        return await passwords.hash_password(password, self.rounds)

    async def verify_password(self, password: str, password_hash: str | None) -> bool:
        return await passwords.verify_password(password, password_hash, self.rounds)

    async def create(self, data: Input) -> User:
        """Create from profile data plus ``password`` (hashed here) or an existing bcrypt ``password_hash``."""
        values = dict(data.model_dump(exclude_unset=True) if isinstance(data, BaseModel) else data)
        if "password" in values:
            values = parse(UserCreate, values, "User")
            values["password_hash"] = await self.hash_password(values.pop("password"))
        tier = SubscriptionTier(values.get("subscription_tier", SubscriptionTier.FREE))
        if values.get("daily_quota") is None:
            values["daily_quota"] = TIER_DAILY_QUOTA[tier]
        return await super().create(values)

    async def create_user(self, email: str, password: str, **profile: Any) -> User:
        """A new user; ``ValidationError`` for bad input (password over 72 bytes), ``ConflictError`` if taken."""
        return await self.create({"email": email, "password": password, **profile})

    async def find_by_email(self, email: str) -> User | None:
        """The live user with this email, compared case-insensitively."""
        with translated("User"):  # a login path: SQL built once (by_key), not through pypika per call
            return await fetch_by(self.model, "email", email.strip().lower(), live_only=self._soft)

    async def authenticate(self, email: str, password: str) -> User | None:
        """The user when the password matches and the account is active, else None.

        Exactly one bcrypt check runs whether or not the email is known, so timing does not reveal accounts.
        A hash made with a lower cost than ``BCRYPT_ROUNDS`` is replaced on a successful login.
        """
        user = await self.find_by_email(email) if isinstance(email, str) else None
        matches = await self.verify_password(password, user.password_hash if user else None)
        if user is None or not matches or not user.is_active:
            return None
        if passwords.needs_rehash(user.password_hash, self.rounds):
            await self.update(user.pk, {"password_hash": await self.hash_password(password)})
        return await self._stamp_login(user)

    async def update_profile(self, user_id: Any, data: Input) -> User:
        """Change the profile fields only (names, avatar, username, email); anything else is rejected."""
        return await self.update(user_id, parse(UserProfileUpdate, data, "User"))

    async def change_password(self, user_id: Any, new_password: str, *, current_password: str | None = None) -> User:
        """Set a new password; with ``current_password`` it must match first (``ValidationError`` if not)."""
        user = await self.get(user_id)
        if current_password is not None and not await self.verify_password(current_password, user.password_hash):
            raise ValidationError({"current_password": "does not match; give the user's current password"},
                                  model="User")
        if len(new_password or "") < 8:
            raise ValidationError({"password": "must be at least 8 characters"}, model="User")
        return await self.update(user.pk, {"password_hash": await self.hash_password(new_password)})

    async def verify_user(self, user_id: Any) -> User:
        return await self.update(user_id, {"is_verified": True})

    async def activate_user(self, user_id: Any) -> User:
        return await self.update(user_id, {"is_active": True})

    async def deactivate_user(self, user_id: Any) -> User:
        return await self.update(user_id, {"is_active": False})

    async def set_subscription(self, user_id: Any, tier: SubscriptionTier | str) -> User:
        """Move a user to another tier and to that tier's daily quota."""
        tier = SubscriptionTier(tier)
        return await self.update(user_id, {"subscription_tier": tier, "daily_quota": TIER_DAILY_QUOTA[tier]})

    async def update_last_login(self, user_id: Any) -> User:
        """Stamp ``last_login_at`` now. Login telemetry: one UPDATE, no version bump and no audit row."""
        return await self._stamp_login(await self.get(user_id))

    async def _stamp_login(self, user: User) -> User:
        now = timezone.now()
        with translated("User"):  # no row lock held across a transaction: concurrent logins don't queue
            await self.query().filter(pk=user.pk).update(last_login_at=now)
        user.last_login_at = now
        await self._written([user.pk])  # cached copies of the user go stale
        return user

    async def search_users(self, q: str, page: int = 1, limit: int = 20) -> Page[User]:
        """Users whose email, username or names contain ``q`` (case-insensitive), newest first."""
        return await self.find_many(search=q, page=page, limit=limit, sort_by="created_at", sort_order="desc")

    async def get_user_statistics(self) -> dict[str, Any]:
        """Totals by tier and status, and how many joined today (UTC) and in the last 7 days."""
        now = timezone.now()
        live = self.query()
        with translated("User"):
            total = await live.count()
            by_tier = await live.annotate(n=Count("id")).group_by("subscription_tier").values("subscription_tier", "n")
            active = await live.filter(is_active=True).count()
            verified = await live.filter(is_verified=True).count()
            today = await live.filter(created_at__gte=start_of_day(now)).count()
            week = await live.filter(created_at__gte=now - dt.timedelta(days=7)).count()
        tiers = {tier.value: 0 for tier in SubscriptionTier}
        for row in by_tier:
            tiers[SubscriptionTier(row["subscription_tier"]).value] = row["n"]
        return {
            "total": total,
            "by_tier": tiers,
            "by_status": {"active": active, "inactive": total - active, "verified": verified,
                          "unverified": total - verified},
            "created_today": today,
            "created_this_week": week,
        }


class SessionManager(ModelManager[Session]):
    """``ctx.sessions``: the plain token goes to the client once; the row keeps its SHA-256 only."""

    model = Session
    default_ttl = dt.timedelta(days=7)

    async def create_session(
        self, user_id: Any, ttl: dt.timedelta | None = None, *, ip_address: str | None = None,
        user_agent: str | None = None,
    ) -> tuple[Session, str]:
        """``(session, token)``; the token is not stored and cannot be shown again."""
        ttl = self.default_ttl if ttl is None else ttl
        if ttl.total_seconds() <= 0:
            raise ValidationError({"ttl": "must be positive, e.g. timedelta(hours=1)"}, model="Session")
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
        return await self.update(session_id, {"status": SessionStatus.EXPIRED})

    async def terminate_all_user_sessions(self, user_id: Any) -> int:
        """End every active session of a user (log out everywhere); returns how many."""
        return await self.update_many({"user_id": self._key(user_id), "status": SessionStatus.ACTIVE},
                                      {"status": SessionStatus.TERMINATED})

    async def cleanup_expired_sessions(self) -> int:
        """Mark active sessions past ``expires_at`` as expired; returns how many."""
        return await self.update_many({"status": SessionStatus.ACTIVE, "expires_at__lte": timezone.now()},
                                      {"status": SessionStatus.EXPIRED})


class ApiKeyManager(ModelManager[ApiKey]):
    """``ctx.api_keys``: keys shown once as ``dlk_<prefix>_<secret>``; stored as prefix + SHA-256."""

    model = ApiKey

    async def issue(
        self, user_id: Any, name: str, scopes: list[str] | None = None, *,
        expires_at: dt.datetime | None = None, rate_limit: int | None = None,
    ) -> tuple[ApiKey, str]:
        """``(key, plaintext)``: hand ``plaintext`` to the user now; only its hash is kept."""
        prefix, plaintext = tokens.new_api_key()
        data: dict[str, Any] = {
            "user_id": self._key(user_id), "name": name, "prefix": prefix,
            "key_hash": tokens.hash_token(plaintext), "scopes": list(scopes or []), "expires_at": expires_at,
        }
        if rate_limit is not None:
            data["rate_limit"] = rate_limit
        return await self.create(data), plaintext

    async def verify(self, plaintext: str) -> ApiKey | None:
        """The live, unrevoked, unexpired key matching ``plaintext`` (constant-time compare), else None.

        A successful check stamps ``last_used_at``.
        """
        prefix = tokens.api_key_prefix(plaintext)
        if prefix is None:
            return None
        with translated("ApiKey"):
            key = await self.query().filter(prefix=prefix).first()
        if key is None or not tokens.tokens_match(plaintext, key.key_hash):
            return None
        if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= timezone.now()):
            return None
        with translated("ApiKey"):  # usage telemetry: no version bump or audit row per request
            await ApiKey.filter(pk=key.pk).update(last_used_at=timezone.now())
        return key

    async def revoke(self, key_id: Any) -> ApiKey:
        key = await self.get(key_id)
        if key.revoked_at is not None:
            return key
        return await self.update(key.pk, {"revoked_at": timezone.now()})

    async def rotate(self, key_id: Any) -> tuple[ApiKey, str]:
        """Revoke a key and issue its replacement (same user, name, scopes, limits) atomically."""
        async with transaction():
            old = await self.revoke(key_id)
            return await self.issue(old.user_id, old.name, old.scopes, expires_at=old.expires_at,
                                    rate_limit=old.rate_limit)

    async def list_for_user(self, user_id: Any, *, include_revoked: bool = False) -> list[ApiKey]:
        queryset = self.query().filter(user_id=self._key(user_id))
        if not include_revoked:
            queryset = queryset.filter(revoked_at__isnull=True)
        with translated("ApiKey"):
            return list(await queryset.order_by("-created_at"))


class AuditLogManager(ModelManager[AuditLog]):
    model = AuditLog

    async def history(self, model_or_table: type | str, record_id: Any, *, limit: int = 100) -> list[AuditLog]:
        """A record's changes, oldest first: ``await ctx.audit_logs.history(Article, article.id)``."""
        table = model_or_table if isinstance(model_or_table, str) else model_or_table._meta.db_table
        return list(
            await AuditLog.filter(table_name=table, record_id=str(record_id))
            .order_by("created_at", "id")
            .limit(limit)
        )

    async def by_actor(self, actor_id: Any, *, limit: int = 100) -> list[AuditLog]:
        return list(await AuditLog.filter(actor_id=self._key(actor_id)).order_by("-created_at").limit(limit))
