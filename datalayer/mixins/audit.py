"""Who created and last changed a row, and a ``version`` counter for optimistic locking."""

from tortoise import fields


class AuditMixin:
    created_by = fields.UUIDField(null=True)
    updated_by = fields.UUIDField(null=True)
    version = fields.IntField(default=1)
