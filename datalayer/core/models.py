"""Every model of the ``core`` pack: the module Tortoise loads as app ``core``."""

from datalayer.core.accounts import ApiKey, Role, Session, SessionStatus, SubscriptionTier, User
from datalayer.core.audit_log import AuditAction, AuditLog
from datalayer.core.cache_entry import CacheEntry

__models__ = [AuditLog, CacheEntry, User, Session, ApiKey]

__all__ = ["ApiKey", "AuditAction", "AuditLog", "CacheEntry", "Role", "Session", "SessionStatus",
           "SubscriptionTier", "User"]
