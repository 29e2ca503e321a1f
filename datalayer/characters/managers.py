"""Characters users generate, limited per UTC day by the user's subscription tier, and the public gallery."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from tortoise import timezone

from datalayer.errors import NotFoundError, ValidationError
from datalayer.managers.base import ModelManager
from datalayer.managers.pagination import Page, check_page
from datalayer.core.accounts import User
from datalayer.characters.models import Character, CharacterTemplate
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

    async def find_by_name(self, name: str) -> CharacterTemplate | None:
        with translated("CharacterTemplate"):
            return await self.query().filter(name=name).first()


class CharacterManager(ModelManager[Character]):
    """``ctx.characters``: ``create_for_user`` enforces the daily quota even under concurrent requests."""

    model = Character

    async def created_today(self, user_id: Any) -> int:
        """Characters the user created since 00:00 UTC, deleted ones included (a deletion frees no quota)."""
        start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
        with translated("Character"):
            return await Character.all_objects.filter(user_id=self._key(user_id), created_at__gte=start).count()

    async def create_for_user(self, user_id: Any, data: Mapping[str, Any] | BaseModel) -> Character:
        """Create a character owned by ``user_id`` unless today's quota is used up (``QuotaExceededError``).

        The user's row is locked (``SELECT ... FOR UPDATE``) for the count-then-insert on PostgreSQL, so
        concurrent requests queue behind each other; SQLite runs one write transaction at a time.
        """
        values = dict(data.model_dump(exclude_unset=True) if isinstance(data, BaseModel) else data)
        if "user_id" in values or "user" in values:
            raise ValidationError({"user_id": "is set from the user_id argument; leave it out of data"},
                                  model="Character")
        key = self._key(user_id)
        async with transaction():
            with translated("Character"):
                user = await User.filter(pk=key).select_for_update().first()
                if user is None:
                    raise NotFoundError("User", key)
                if not user.is_active:
                    raise ValidationError({"user_id": "the user is deactivated"}, model="Character")
                if await self.created_today(key) >= user.daily_quota:
                    raise QuotaExceededError(user.daily_quota)
            return await self.create({**values, "user_id": key})

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
        with translated("Character"):
            return list(await self.query().filter(user_id=self._key(user_id))
                        .order_by("-created_at").limit(limit))


__all__ = ["CharacterManager", "CharacterTemplateManager", "LISTING_FIELDS", "QuotaExceededError"]
