"""Accounts, shared by every seed system: users, login sessions and API keys.

Secrets never sit in a column in plain text: ``password_hash`` is bcrypt, ``token_hash`` and ``key_hash``
are SHA-256 of random tokens (see ``datalayer.security``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import Enum
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from tortoise import fields

from datalayer.core.rules import email_address, web_url
from datalayer.models.base import AuditedModel
from datalayer.schema import LiveUnique
from datalayer.security.passwords import is_bcrypt_hash


class Role(str, Enum):
    USER = "user"
    ADMIN = "admin"


class SubscriptionTier(str, Enum):
    FREE = "free"
    PREMIUM = "premium"
    PRO = "pro"


#: characters a user may create per UTC day, by tier (seed 003)
TIER_DAILY_QUOTA: dict[SubscriptionTier, int] = {
    SubscriptionTier.FREE: 3,
    SubscriptionTier.PREMIUM: 15,
    SubscriptionTier.PRO: 50,
}


class SessionStatus(str, Enum):
    ACTIVE = "active"
    EXPIRED = "expired"
    TERMINATED = "terminated"


def _bcrypt_only(value: str) -> str:
    if not is_bcrypt_hash(value):
        raise ValueError("must be a bcrypt hash; pass `password` to create_user/change_password instead")
    return value


Email = Annotated[str, Field(max_length=255), AfterValidator(email_address)]
Username = Annotated[str, Field(min_length=3, max_length=50, pattern=r"^[A-Za-z0-9_.-]+$")]
PasswordHash = Annotated[str, AfterValidator(_bcrypt_only)]
Name = Annotated[str, Field(max_length=100)]
Url = Annotated[str, Field(max_length=500), AfterValidator(web_url)]


class UserProfileUpdate(BaseModel):
    """What a user may change about themselves (``update_profile``)."""

    model_config = ConfigDict(extra="forbid")
    username: Username | None = None
    email: Email | None = None
    first_name: Name | None = None
    last_name: Name | None = None
    avatar_url: Url | None = None


class UserCreate(UserProfileUpdate):
    """Input of ``create_user``: a plain ``password`` that is hashed before anything is stored."""

    email: Email
    username: Username
    password: str = Field(min_length=8)
    role: Role = Role.USER
    subscription_tier: SubscriptionTier = SubscriptionTier.FREE
    daily_quota: int | None = Field(default=None, ge=0)
    is_active: bool = True
    is_verified: bool = False


class UserRecord(BaseModel):
    """Column-level create input (``ctx.users.create`` without ``password``, bulk loads): hashes only."""

    model_config = ConfigDict(extra="forbid")
    id: uuid.UUID | None = None
    email: Email
    username: Username
    password_hash: PasswordHash
    first_name: Name | None = None
    last_name: Name | None = None
    avatar_url: Url | None = None
    role: Role = Role.USER
    subscription_tier: SubscriptionTier = SubscriptionTier.FREE
    daily_quota: int = Field(default=3, ge=0)
    is_active: bool = True
    is_verified: bool = False
    last_login_at: dt.datetime | None = None


class UserUpdate(UserProfileUpdate):
    """Column-level update input; ``password_hash`` must already be a bcrypt hash."""

    password_hash: PasswordHash | None = None
    role: Role | None = None
    subscription_tier: SubscriptionTier | None = None
    daily_quota: int | None = Field(default=None, ge=0)
    is_active: bool | None = None
    is_verified: bool | None = None
    last_login_at: dt.datetime | None = None


class User(AuditedModel):
    email = fields.CharField(max_length=255)
    username = fields.CharField(max_length=50)
    password_hash = fields.CharField(max_length=128)
    first_name = fields.CharField(max_length=100, null=True)
    last_name = fields.CharField(max_length=100, null=True)
    avatar_url = fields.CharField(max_length=500, null=True)
    role = fields.CharEnumField(Role, max_length=16, default=Role.USER)
    subscription_tier = fields.CharEnumField(SubscriptionTier, max_length=16, default=SubscriptionTier.FREE)
    daily_quota = fields.IntField(default=TIER_DAILY_QUOTA[SubscriptionTier.FREE])
    is_active = fields.BooleanField(default=True)
    is_verified = fields.BooleanField(default=False)
    last_login_at = fields.DatetimeField(null=True)
    #: reverse relations, added by Tortoise (for the type checker)
    sessions: fields.ReverseRelation[Session]
    api_keys: fields.ReverseRelation[ApiKey]

    searchable_fields: ClassVar = ("email", "username", "first_name", "last_name")
    secret_fields: ClassVar = ("password_hash",)
    live_unique_fields: ClassVar = (LiveUnique(("email",), lower=True), LiveUnique(("username",)))
    create_schema: ClassVar = UserRecord
    update_schema: ClassVar = UserUpdate

    class Meta:
        table = "users"
        indexes = (("email",), ("subscription_tier", "is_active"))  # find_by_email: emails stored lowercased

    def __repr__(self) -> str:
        return f"<User {self.id} {self.username!r}>"


class Session(AuditedModel):
    """A login session; the client holds the token, the row only its SHA-256."""

    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField("core.User", related_name="sessions")
    user_id: uuid.UUID
    token_hash = fields.CharField(max_length=64, unique=True)
    expires_at = fields.DatetimeField()
    last_accessed_at = fields.DatetimeField(null=True)
    ip_address = fields.CharField(max_length=45, null=True)
    user_agent = fields.CharField(max_length=500, null=True)
    status = fields.CharEnumField(SessionStatus, max_length=16, default=SessionStatus.ACTIVE)

    secret_fields: ClassVar = ("token_hash",)
    filter_relations: ClassVar = ("user__email", "user__username")

    class Meta:
        table = "sessions"
        indexes = (("user_id", "status"), ("status", "expires_at"))

    def __repr__(self) -> str:
        return f"<Session {self.id} user={self.user_id} {self.status.value}>"


class ApiKey(AuditedModel):
    """An API key: found by its public ``prefix``, checked against ``key_hash`` in constant time."""

    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField("core.User", related_name="api_keys")
    user_id: uuid.UUID
    name = fields.CharField(max_length=100)
    prefix = fields.CharField(max_length=16, unique=True)
    key_hash = fields.CharField(max_length=64)
    scopes: fields.JSONField[list[str]] = fields.JSONField(default=list)
    rate_limit = fields.IntField(default=1000)
    expires_at = fields.DatetimeField(null=True)
    last_used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    secret_fields: ClassVar = ("key_hash",)
    filter_relations: ClassVar = ("user__email", "user__username")

    class Meta:
        table = "api_keys"
        indexes = (("user_id", "revoked_at"),)

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def __repr__(self) -> str:
        return f"<ApiKey {self.id} {self.prefix}… user={self.user_id}>"
