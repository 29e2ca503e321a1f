"""``created_at`` / ``updated_at``; managers keep ``updated_at`` right on bulk and queryset updates too."""

from tortoise import fields


class TimestampMixin:
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
