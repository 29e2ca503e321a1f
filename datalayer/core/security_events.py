"""Security events in the audit trail (seed 000: "audit logging for security events").

Failed logins, account locks, refused API keys, key revocations and rotations each add one ``AuditLog`` row
with an ``AuditAction`` of their own. ``details`` say what happened (a reason, a public key prefix, an
email); callers never pass a password, token, key or hash.
"""

from __future__ import annotations

from typing import Any

from tortoise.models import Model

from datalayer.core.audit_log import AuditAction, AuditLog
from datalayer.managers import auditing
from datalayer.translate import translated

#: the actions that are security events rather than data changes
SECURITY_ACTIONS = frozenset({
    AuditAction.LOGIN_FAILED, AuditAction.ACCOUNT_LOCKED, AuditAction.ACCOUNT_UNLOCKED,
    AuditAction.KEY_REJECTED, AuditAction.KEY_REVOKED, AuditAction.KEY_ROTATED,
})


async def record_event(model: type[Model], action: AuditAction, record_id: Any, **details: Any) -> None:
    """One audit row for a security event on ``model``'s row ``record_id`` (None: no row matched)."""
    changes = {name: auditing.jsonable(value) for name, value in details.items() if value is not None}
    with translated(AuditLog.__name__):
        await auditing.write_audit(model, action, "" if record_id is None else record_id, changes)
