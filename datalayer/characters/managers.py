"""Characters users generate, limited per UTC day by the user's subscription tier (seed 003), and the gallery."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal, overload

from pydantic import BaseModel
from tortoise import timezone

from datalayer.characters.models import Character, CharacterTemplate
from datalayer.core import rules
from datalayer.core.accounts import User
from datalayer.errors import NotFoundError, ValidationError
from datalayer.managers.base import BulkRows, ModelManager
from datalayer.managers.bulk import Returning
from datalayer.managers.pagination import Page, check_page
from datalayer.transactions import transaction
from datalayer.translate import translated

#: what the public gallery selects (no prompt, metadata or full image)
LISTING_FIELDS = ("id", "name", "style_type", "thumbnail_url", "user_id", "created_at")


class QuotaExceededError(ValidationError):
    """The user already created as many characters today as their tier allows."""

    def __init__(self, quota: int) -> None:
        super().__init__({"daily_quota": f"the daily limit of {quota} characters is reached; "
                                         "try again tomorrow (UTC) or upgrade the subscription"},
                         model="Character")
        self.quota = quota


class CharacterTemplateManager(ModelManager[CharacterTemplate]):
    model = CharacterTemplate

    field_checks: ClassVar = {"settings": rules.json_object}

    async def find_by_name(self, name: str) -> CharacterTemplate | None:
        rules.text(name, field="name", model="CharacterTemplate")
        with translated("CharacterTemplate"):
            return await self.query().filter(name=name).first()


class CharacterManager(ModelManager[Character]):
    """``ctx.characters``: every create counts against the owner's daily quota, even under concurrent requests.

    Domain rules (seed 003): a user creates at most ``daily_quota`` characters per UTC day, through
    ``create_for_user``, ``create``, ``upsert`` or ``bulk_create`` alike; a character stays with its creator;
    image URLs are http(s).
    """

    model = Character
    guarded_fields: ClassVar = {"user_id": "create_for_user for the new owner (a character counts against its creator's quota)"}
    field_checks: ClassVar = {"thumbnail_url": rules.web_url, "image_url": rules.web_url, "metadata": rules.json_object}

    async def created_today(self, user_id: Any) -> int:
        """Characters the user created since 00:00 UTC, deleted ones included (a deletion frees no quota)."""
        start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
        with translated("Character"):
            return await Character.all_objects.filter(user_id=self._key(user_id), created_at__gte=start).count()

    async def _check_quota(self, user_id: Any, adding: int) -> None:
        """Lock the user's row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite has one writer at a time) and
        refuse when today's characters plus ``adding`` would exceed their quota. Call inside a transaction."""
        key = self._key(user_id)
        with translated("Character"):
            user = await User.filter(pk=key).select_for_update().first()
        if user is None:
            raise NotFoundError("User", key)
        if not user.is_active:
            raise ValidationError({"user_id": "the user is deactivated"}, model="Character")
        if await self.created_today(key) + adding > user.daily_quota:
            raise QuotaExceededError(user.daily_quota)

    async def create(self, data: Mapping[str, Any] | BaseModel) -> Character:
        """Insert one character unless its user is deactivated or out of today's quota (``QuotaExceededError``)."""
        values = rules.mapping_of(data, model="Character")
        async with transaction():
            if values.get("user_id") is not None:
                await self._check_quota(values["user_id"], adding=1)
            return await super().create(values)

    @overload
    async def bulk_create(self, rows: BulkRows, *, returning: Literal["instances"] = ...) -> list[Character]: ...
    @overload
    async def bulk_create(self, rows: BulkRows, *, returning: Literal["ids"]) -> list[Any]: ...
    @overload
    async def bulk_create(self, rows: BulkRows, *, returning: Literal["none"]) -> None: ...

    async def bulk_create(self, rows: BulkRows, *, returning: Returning = "instances") -> list[Any] | None:
        """Insert many characters, all or none: ``QuotaExceededError`` when any user would pass their quota."""
        async with transaction():
            if returning == "instances":
                created: list[Any] = await super().bulk_create(rows)
                users = {character.user_id for character in created}
            else:
                created = await super().bulk_create(rows, returning="ids")
                users = set(await Character.filter(id__in=created).values_list("user_id", flat=True))
            for user_id in sorted(users):  # one lock order for all
                await self._check_quota(user_id, adding=0)
        return None if returning == "none" else created

    async def create_for_user(self, user_id: Any, data: Mapping[str, Any] | BaseModel) -> Character:
        """Create a character owned by ``user_id`` unless today's quota is used up (``QuotaExceededError``).

        Raises ``NotFoundError`` for an unknown user and ``ValidationError`` for bad data or a deactivated user.
        """
        values = rules.mapping_of(data, model="Character")
        if "user_id" in values or "user" in values:
            raise ValidationError({"user_id": "is set from the user_id argument; leave it out of data"},
                                  model="Character")
        return await self.create({**values, "user_id": self._key(user_id)})

    async def find_public(self, page: int = 1, limit: int = 20) -> Page[dict[str, Any]]:
        """Public, completed-or-not characters, newest first, with the listing fields only."""
        page, limit = check_page(page, limit, self.max_page_size)
        queryset = self.query().filter(is_public=True)
        with translated("Character"):
            total = await queryset.count()
            rows = await queryset.order_by("-created_at", "-id").offset((page - 1) * limit).limit(limit) \
                .values(*LISTING_FIELDS)
        return Page(items=list(rows), total=total, page=page, limit=limit)

    async def find_by_user(self, user_id: Any, *, limit: int = 100) -> list[Character]:
        limit = rules.whole_number(limit, field="limit", model="Character", maximum=1000)
        with translated("Character"):
            return list(await self.query().filter(user_id=self._key(user_id))
                        .order_by("-created_at").limit(limit))


__all__ = ["LISTING_FIELDS", "CharacterManager", "CharacterTemplateManager", "QuotaExceededError"]
