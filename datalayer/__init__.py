"""datalayer: a production async data layer for asyncio apps, built on Tortoise ORM.

    ctx = await get_context()
    user = await ctx.users.get(user_id)
"""

from datalayer.actor import acting_as, correlation, current_actor
from datalayer.connection import ConnectionEvent, connection_events
from datalayer.context import DataContext, TransactionScope, close_context, get_context
from datalayer.errors import (
    ConcurrencyError,
    ConfigurationError,
    ConflictError,
    DatabaseUnavailableError,
    DataLayerError,
    NotFoundError,
    PoolExhaustedError,
    ValidationError,
)
from datalayer.managers import AuditLogManager, Chunk, ModelManager, Page
from datalayer.mixins import AuditMixin, SoftDeleteManager, SoftDeleteMixin, TimestampMixin
from datalayer.models import AuditAction, AuditedModel, AuditLog, DataModel, RecordModel
from datalayer.schema import LiveUnique
from datalayer.settings import Settings
from datalayer.transactions import on_commit, transaction, transactional

__version__ = "0.1.0"

__all__ = [
    "AuditAction",
    "AuditLog",
    "AuditLogManager",
    "AuditMixin",
    "AuditedModel",
    "Chunk",
    "ConcurrencyError",
    "ConfigurationError",
    "ConflictError",
    "ConnectionEvent",
    "DataContext",
    "DataLayerError",
    "DataModel",
    "DatabaseUnavailableError",
    "LiveUnique",
    "ModelManager",
    "NotFoundError",
    "Page",
    "PoolExhaustedError",
    "RecordModel",
    "Settings",
    "SoftDeleteManager",
    "SoftDeleteMixin",
    "TimestampMixin",
    "TransactionScope",
    "ValidationError",
    "acting_as",
    "close_context",
    "connection_events",
    "correlation",
    "current_actor",
    "get_context",
    "on_commit",
    "transaction",
    "transactional",
]
