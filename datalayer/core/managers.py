"""Managers of the core pack: users (passwords, authentication, profiles, statistics) and reading the audit
trail; login sessions and API keys are in ``credentials.py``.

Domain rules of users (seeds 000 and 003): a real email address (email-validator, no DNS) and an http(s)
``avatar_url``; the tier and its daily quota move together (``set_subscription``); locking and unlocking an
account (``deactivate_user``/``activate_user``) and every failed login are security events.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import Any, ClassVar, Literal, overload

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from tortoise import timezone
from tortoise.functions import Count
from tortoise.models import Model

from datalayer.core import rules
from datalayer.core.accounts import TIER_DAILY_QUOTA, SubscriptionTier, User, UserCreate, UserProfileUpdate
from datalayer.core.audit_log import AuditAction, AuditLog
from datalayer.core.credentials import ApiKeyManager, SessionManager
from datalayer.core.security_events import SECURITY_ACTIONS, record_event
from datalayer.errors import ValidationError
from datalayer.managers.base import BulkRows, Input, ModelManager
from datalayer.managers.bulk import Returning
from datalayer.managers.by_key import fetch_by
from datalayer.managers.pagination import Page
from datalayer.managers.settings_aware import SettingsAware
from datalayer.managers.validation import field_messages
from datalayer.security import passwords
from datalayer.transactions import transaction
from datalayer.translate import translated


def parse(schema: type[BaseModel], data: Mapping[str, Any] | BaseModel, model: str) -> dict[str, Any]:
    """Validate ``data`` with ``schema``; keys the caller set, or a ``ValidationError`` naming each field."""
    try:
        return schema.model_validate(rules.mapping_of(data, model=model)).model_dump(exclude_unset=True)
    except PydanticValidationError as exc:
        raise ValidationError(field_messages(exc, list(schema.model_fields)), model=model) from None


def start_of_day(now: dt.datetime | None = None) -> dt.datetime:
    now = now or timezone.now()
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def with_tier_quota(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with the tier's daily quota when none is given (an unknown tier is left to validation)."""
    if values.get("daily_quota") is None:
        try:
            values["daily_quota"] = TIER_DAILY_QUOTA[SubscriptionTier(values.get("subscription_tier", "free"))]
        except (ValueError, TypeError):
            pass
    return values


class UserManager(SettingsAware, ModelManager[User]):
    """``ctx.users``: accounts with bcrypt passwords (cost ``BCRYPT_ROUNDS``, hashed off the event loop)."""

    model = User
    guarded_fields: ClassVar = {
        "subscription_tier": "set_subscription (which also moves daily_quota to the tier's)",
        "daily_quota": "set_subscription (a tier and its quota move together; seed 003)",
        "is_active": "activate_user / deactivate_user (security events)",
    }

    @property
    def rounds(self) -> int:
        return self.active_settings.bcrypt_rounds

    async def hash_password(self, password: str) -> str:
        return await passwords.hash_password(password, self.rounds)

    async def verify_password(self, password: str, password_hash: str | None) -> bool:
        return await passwords.verify_password(password, password_hash, self.rounds)

    async def create(self, data: Input) -> User:
        """Create from profile data plus ``password`` (hashed here) or an existing bcrypt ``password_hash``.

        Without ``daily_quota`` the user gets their tier's (``TIER_DAILY_QUOTA``, seed 003).
        """
        values = rules.mapping_of(data, model="User")
        if "password" in values:
            values = parse(UserCreate, values, "User")
            values["password_hash"] = await self.hash_password(values.pop("password"))
        return await super().create(with_tier_quota(values))

    @overload
    async def bulk_create(self, rows: BulkRows, *, returning: Literal["instances"] = ...) -> list[User]: ...
    @overload
    async def bulk_create(self, rows: BulkRows, *, returning: Literal["ids"]) -> list[Any]: ...
    @overload
    async def bulk_create(self, rows: BulkRows, *, returning: Literal["none"]) -> None: ...

    async def bulk_create(self, rows: BulkRows, *, returning: Returning = "instances") -> list[Any] | None:
        """Insert many users (``password_hash`` only), each with their tier's quota unless given."""
        def completed(row: Any) -> Any:  # anything else is left for validation to name
            if isinstance(row, BaseModel):
                row = row.model_dump()
            return with_tier_quota(dict(row)) if isinstance(row, Mapping) else row

        if isinstance(rows, AsyncIterable):
            async def streamed(source: AsyncIterable[Input]) -> AsyncIterator[Any]:
                async for row in source:
                    yield completed(row)

            return await super().bulk_create(streamed(rows), returning=returning)
        return await super().bulk_create((completed(row) for row in rules.rows_of(rows, model="User")),
                                         returning=returning)

    async def create_user(self, email: str, password: str, **profile: Any) -> User:
        """A new user; ``ValidationError`` for bad input (password over 72 bytes), ``ConflictError`` if taken."""
        return await self.create({"email": email, "password": password, **profile})

    async def find_by_email(self, email: str) -> User | None:
        """The live user with this email, compared case-insensitively; None for an address that is not one.

        Raises ``ValidationError`` when ``email`` is not a string.
        """
        rules.text(email, field="email", model="User")
        try:
            normal = rules.email_address(email)
        except ValueError:
            return None
        with translated("User"):  # a login path: SQL built once (by_key), not through pypika per call
            return await fetch_by(self.model, "email", normal, live_only=self._soft)

    async def authenticate(self, email: str, password: str) -> User | None:
        """The user when the password matches and the account is active, else None.

        Exactly one bcrypt check runs whether or not the email is known, so timing does not reveal accounts.
        A hash made with a lower cost than ``BCRYPT_ROUNDS`` is replaced on a successful login. A refusal is
        a ``login_failed`` security event: its reason and the email (when it is one), never the password.
        """
        user = await self.find_by_email(email) if isinstance(email, str) and email else None
        matches = await self.verify_password(password, user.password_hash if user else None)
        if user is None or not matches or not user.is_active:
            reason = "unknown_email" if user is None else "wrong_password" if not matches else "account_locked"
            await record_event(User, AuditAction.LOGIN_FAILED, user.pk if user else None, reason=reason,
                               email=user.email if user else _email_or_none(email))
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
        if not isinstance(new_password, str) or len(new_password) < 8:
            raise ValidationError({"password": "must be a string of at least 8 characters"}, model="User")
        return await self.update(user.pk, {"password_hash": await self.hash_password(new_password)})

    async def verify_user(self, user_id: Any) -> User:
        return await self.update(user_id, {"is_verified": True})

    async def activate_user(self, user_id: Any) -> User:
        """Unlock an account (an ``account_unlocked`` security event when it was locked)."""
        return await self._set_active(user_id, True, AuditAction.ACCOUNT_UNLOCKED)

    async def deactivate_user(self, user_id: Any) -> User:
        """Lock an account: it can no longer log in (an ``account_locked`` security event when it was active)."""
        return await self._set_active(user_id, False, AuditAction.ACCOUNT_LOCKED)

    async def _set_active(self, user_id: Any, active: bool, event: AuditAction) -> User:
        async with transaction():
            with translated("User"):
                user = await self._locked_row(self._key(user_id), deleted=False)
            if user.is_active is active:
                return user
            with self.domain_write():
                user = await self.update(user.pk, {"is_active": active})
            await record_event(User, event, user.pk)
        return user

    async def set_subscription(self, user_id: Any, tier: SubscriptionTier | str) -> User:
        """Move a user to another tier and to that tier's daily quota (``ValidationError`` for an unknown tier)."""
        tier = rules.enum_member(SubscriptionTier, tier, field="subscription_tier", model="User")
        with self.domain_write():
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


def _email_or_none(value: Any) -> str | None:
    """The address as stored, or None when ``value`` is not one (so a password typed there is never kept)."""
    try:
        return rules.email_address(value)
    except ValueError:
        return None


class AuditLogManager(ModelManager[AuditLog]):
    model = AuditLog

    async def history(self, model_or_table: type[Model] | str, record_id: Any, *, limit: int = 100) -> list[AuditLog]:
        """A record's changes, oldest first: ``await ctx.audit_logs.history(Article, article.id)``."""
        if isinstance(model_or_table, str):
            table = rules.text(model_or_table, field="model_or_table", model="AuditLog")
        elif isinstance(getattr(getattr(model_or_table, "_meta", None), "db_table", None), str):
            table = model_or_table._meta.db_table
        else:
            raise ValidationError({"model_or_table": "expected a model class or a table name"}, model="AuditLog")
        limit = rules.whole_number(limit, field="limit", model="AuditLog", maximum=10_000)
        try:
            record = str(record_id)
        except (ValueError, RecursionError):  # a huge int, deeply nested lists: no row's id
            raise ValidationError({"record_id": "expected the id of a row"}, model="AuditLog") from None
        if record:
            record = rules.text(record, field="record_id", model="AuditLog")  # storable text (no NUL, surrogate)
        with translated("AuditLog"):
            return list(await AuditLog.filter(table_name=table, record_id=record)
                        .order_by("created_at", "id").limit(limit))

    async def by_actor(self, actor_id: Any, *, limit: int = 100) -> list[AuditLog]:
        limit = rules.whole_number(limit, field="limit", model="AuditLog", maximum=10_000)
        with translated("AuditLog"):
            return list(await AuditLog.filter(actor_id=self._key(actor_id)).order_by("-created_at").limit(limit))

    async def security_events(
        self, *, since: dt.datetime | None = None, action: AuditAction | str | None = None, limit: int = 100,
    ) -> list[AuditLog]:
        """Security events (failed logins, account locks, refused/revoked/rotated keys), newest first."""
        limit = rules.whole_number(limit, field="limit", model="AuditLog", maximum=10_000)
        actions = SECURITY_ACTIONS if action is None else \
            {rules.enum_member(AuditAction, action, field="action", model="AuditLog")}
        queryset = AuditLog.filter(action__in=list(actions))
        if since is not None:
            queryset = queryset.filter(created_at__gte=rules.moment(since, field="since", model="AuditLog"))
        with translated("AuditLog"):
            return list(await queryset.order_by("-created_at", "-id").limit(limit))


__all__ = ["ApiKeyManager", "AuditLogManager", "SessionManager", "UserManager"]
