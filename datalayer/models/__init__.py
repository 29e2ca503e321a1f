"""Every concrete model datalayer ships. Tortoise loads this module as part of the ``models`` app."""

from datalayer.models.audit_log import AuditAction, AuditLog
from datalayer.models.base import AuditedModel, DataModel, RecordModel

__models__ = [AuditLog]

__all__ = ["AuditAction", "AuditLog", "AuditedModel", "DataModel", "RecordModel"]
