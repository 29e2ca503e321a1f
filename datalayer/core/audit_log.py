"""The audit trail: one row per write through a manager, in the same transaction as the write, and one row
per security event (seed 000: "audit logging for security events")."""

from __future__ import annotations

from enum import Enum
from typing import Any

from tortoise import fields

from datalayer.models.base import RecordModel
from datalayer.schema import EqualityIndex, NotNullIndex


class AuditAction(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    RESTORE = "restore"
    HARD_DELETE = "hard_delete"
    # security events (values fit the 16-character column): ``changes`` holds what happened, never a secret
    LOGIN_FAILED = "login_failed"
    ACCOUNT_LOCKED = "account_locked"
    ACCOUNT_UNLOCKED = "account_unlocked"
    KEY_REJECTED = "key_rejected"
    KEY_REVOKED = "key_revoked"
    KEY_ROTATED = "key_rotated"


class AuditLog(RecordModel):
    """``changes`` maps each field to ``[old, new]``; secret fields show as ``"***"``.

    A security event's ``changes`` describes it instead, e.g. ``{"reason": "wrong_password"}``; its
    ``record_id`` is the user's or key's id, or ``""`` when no row matched (an unknown email or key).
    """

    actor_id = fields.UUIDField(null=True)
    action = fields.CharEnumField(AuditAction, max_length=16)
    table_name = fields.CharField(max_length=64)
    record_id = fields.CharField(max_length=64)
    changes: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    correlation_id = fields.CharField(max_length=128, null=True)

    class Meta:
        table = "audit_log"
        # history(record) looks up record_id by equality; by_actor looks up actor_id (see datalayer.schema)
        indexes = (EqualityIndex(fields=("record_id",)), NotNullIndex(fields=("actor_id", "created_at")))
