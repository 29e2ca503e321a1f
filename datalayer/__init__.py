"""datalayer: a production async data layer for asyncio apps, built on Tortoise ORM.

    ctx = await get_context()
    user = await ctx.users.get(user_id)
"""

import logging

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
from datalayer.health import CheckResult, HealthMonitor, HealthReport
from datalayer.health.context_api import DataLayerStats

# the domain schema: every seed system's models and their managers (ctx.users, ctx.tasks, ...)
from datalayer.managers import (
    ApiKeyManager,
    AuditLogManager,
    CharacterManager,
    CharacterTemplateManager,
    Chunk,
    CodeFileManager,
    ConfigurationManager,
    MLModelManager,
    ModelManager,
    ModelUsageManager,
    Page,
    ProjectAnalysisManager,
    SessionManager,
    StoredModelManager,
    SystemLogManager,
    TaskManager,
    UserManager,
)
from datalayer.managers.characters import QuotaExceededError
from datalayer.mixins import AuditMixin, SoftDeleteManager, SoftDeleteMixin, TimestampMixin
from datalayer.models import (
    AnalysisFile,
    ApiKey,
    AuditAction,
    AuditedModel,
    AuditLog,
    Character,
    CharacterTemplate,
    CodeFile,
    Configuration,
    DataAnalysis,
    DataModel,
    EndpointConfig,
    GenerationStatus,
    LogLevel,
    MLModel,
    ModelUsage,
    ParsedRequest,
    ProjectAnalysis,
    RecordModel,
    Role,
    Session,
    SessionStatus,
    StoredModel,
    StyleType,
    SubscriptionTier,
    SystemLog,
    Task,
    TaskStatus,
    ToolGeneration,
    User,
)
from datalayer.monitoring import PoolStats, QueryStats, SlowQuery
from datalayer.schema import LiveUnique
from datalayer.security import (
    hash_password,
    hash_token,
    needs_rehash,
    new_api_key,
    new_token,
    tokens_match,
    verify_password,
)
from datalayer.settings import Settings
from datalayer.transactions import on_commit, transaction, transactional

__version__ = "0.1.0"

# A library logs; the application decides where it goes (no lastResort output to stderr).
logging.getLogger("datalayer").addHandler(logging.NullHandler())

__all__ = [
    "AuditAction",
    "AuditLog",
    "AuditLogManager",
    "AuditMixin",
    "AuditedModel",
    "CheckResult",
    "Chunk",
    "ConcurrencyError",
    "ConfigurationError",
    "ConflictError",
    "ConnectionEvent",
    "DataContext",
    "DataLayerError",
    "DataLayerStats",
    "DataModel",
    "DatabaseUnavailableError",
    "HealthMonitor",
    "HealthReport",
    "LiveUnique",
    "ModelManager",
    "NotFoundError",
    "Page",
    "PoolExhaustedError",
    "PoolStats",
    "QueryStats",
    "RecordModel",
    "Settings",
    "SlowQuery",
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
    # domain schema
    "ApiKeyManager",
    "CharacterManager",
    "CharacterTemplateManager",
    "CodeFileManager",
    "ConfigurationManager",
    "MLModelManager",
    "ModelUsageManager",
    "ProjectAnalysisManager",
    "SessionManager",
    "StoredModelManager",
    "SystemLogManager",
    "TaskManager",
    "UserManager",
    "QuotaExceededError",
    "AnalysisFile",
    "ApiKey",
    "Character",
    "CharacterTemplate",
    "CodeFile",
    "Configuration",
    "DataAnalysis",
    "EndpointConfig",
    "GenerationStatus",
    "LogLevel",
    "MLModel",
    "ModelUsage",
    "ParsedRequest",
    "ProjectAnalysis",
    "Role",
    "Session",
    "SessionStatus",
    "StoredModel",
    "StyleType",
    "SubscriptionTier",
    "SystemLog",
    "Task",
    "TaskStatus",
    "ToolGeneration",
    "User",
    "hash_password",
    "hash_token",
    "needs_rehash",
    "new_api_key",
    "new_token",
    "tokens_match",
    "verify_password",
]
