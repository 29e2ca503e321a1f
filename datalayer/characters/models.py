"""The character creation platform (seed 003): templates and the characters users generate from them."""

from __future__ import annotations

import uuid
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

from tortoise import fields

from datalayer.models.base import AuditedModel
from datalayer.schema import LiveUnique

if TYPE_CHECKING:
    from datalayer.core.accounts import User


class StyleType(str, Enum):
    FANTASY = "FANTASY"
    CYBERPUNK = "CYBERPUNK"
    ANIME = "ANIME"
    STEAMPUNK = "STEAMPUNK"
    REALISTIC = "REALISTIC"
    CARTOON = "CARTOON"
    MINIMALIST = "MINIMALIST"
    SCIFI = "SCIFI"
    HISTORICAL = "HISTORICAL"


class GenerationStatus(str, Enum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class CharacterTemplate(AuditedModel):
    name = fields.CharField(max_length=100)
    style_type = fields.CharEnumField(StyleType, max_length=16)
    description = fields.TextField(default="")
    base_prompt = fields.TextField()
    settings: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    is_active = fields.BooleanField(default=True)
    #: reverse relations, added by Tortoise (for the type checker)
    characters: fields.ReverseRelation[Character]

    searchable_fields: ClassVar = ("name", "description")
    live_unique_fields: ClassVar = (LiveUnique(("name",)),)

    class Meta:
        table = "character_templates"
        indexes = (("style_type",),)


class Character(AuditedModel):
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField("core.User", related_name="characters")
    user_id: uuid.UUID
    template: fields.ForeignKeyNullableRelation[CharacterTemplate] = fields.ForeignKeyField(
        "characters.CharacterTemplate", related_name="characters", null=True
    )
    template_id: uuid.UUID | None
    name = fields.CharField(max_length=100)
    prompt = fields.TextField()
    style_type = fields.CharEnumField(StyleType, max_length=16, null=True)
    generation_status = fields.CharEnumField(GenerationStatus, max_length=16, default=GenerationStatus.PENDING)
    thumbnail_url = fields.CharField(max_length=500, null=True)
    image_url = fields.CharField(max_length=500, null=True)
    is_public = fields.BooleanField(default=False)
    metadata: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)

    searchable_fields: ClassVar = ("name", "prompt")
    filter_relations: ClassVar = ("user__username", "user__email", "template__name")

    class Meta:
        table = "characters"
        indexes = (("user_id", "created_at"), ("is_public", "created_at"), ("generation_status",))
