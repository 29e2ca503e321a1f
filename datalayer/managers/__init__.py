"""Generic and per-model managers."""

from datalayer.managers.audit_logs import AuditLogManager
from datalayer.managers.base import ModelManager
from datalayer.managers.pagination import Chunk, Page

__all__ = ["AuditLogManager", "Chunk", "ModelManager", "Page"]
