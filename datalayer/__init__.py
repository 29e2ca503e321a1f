"""datalayer: a production async data layer for asyncio apps, built on Tortoise ORM.

    ctx = await get_context()
    user = await ctx.users.get(user_id)
"""

import logging

from datalayer.actor import acting_as, correlation, current_actor

# the packs' models and managers (ctx.users, ctx.tasks, ...): one folder each, see datalayer.packs
from datalayer.agent.managers import (
    CodeFileManager,
    ConfigurationManager,
    ProjectAnalysisManager,
    TaskManager,
)
from datalayer.agent.models import CodeFile, Configuration, ParsedRequest, ProjectAnalysis, Task, TaskStatus
from datalayer.analysis.managers import SystemLogManager
from datalayer.analysis.models import AnalysisFile, DataAnalysis, LogLevel, SystemLog, ToolGeneration
from datalayer.backends.replicas import primary_only
from datalayer.backup_file import BackupIntegrityError
from datalayer.characters.managers import CharacterManager, CharacterTemplateManager, QuotaExceededError
from datalayer.characters.models import Character, CharacterTemplate, GenerationStatus, StyleType
from datalayer.connection import ConnectionEvent, connection_events
from datalayer.context import DataContext, TransactionScope, close_context, get_context
from datalayer.core.managers import ApiKeyManager, AuditLogManager, SessionManager, UserManager
from datalayer.core.models import (
    ApiKey,
    AuditAction,
    AuditLog,
    Role,
    Session,
    SessionStatus,
    SubscriptionTier,
    User,
)
from datalayer.errors import (
    CacheUnavailableError,
    ConcurrencyError,
    ConfigurationError,
    ConflictError,
    DatabaseUnavailableError,
    DataLayerError,
    NotFoundError,
    PoolExhaustedError,
    TransactionAbortedError,
    TransactionClosedError,
    ValidationError,
)
from datalayer.health import CheckResult, HealthMonitor, HealthReport
from datalayer.health.context_api import DataLayerStats
from datalayer.maintenance import MaintenanceReport, maintain
from datalayer.managers import Chunk, ModelManager, Page
from datalayer.managers.pagination import TotalKind
from datalayer.mixins import AuditMixin, SoftDeleteManager, SoftDeleteMixin, TimestampMixin
from datalayer.ml.managers import MLModelManager, ModelUsageManager, StoredModelManager
from datalayer.ml.models import EndpointConfig, MLModel, ModelUsage, StoredModel
from datalayer.models import AuditedModel, DataModel, RecordModel
from datalayer.models.output import schema_out, to_schema
from datalayer.monitoring import PoolStats, QueryStats, SlowQuery
from datalayer.partitions import PartitionReport, describe_partitions, ensure_partitions
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
from datalayer.transactions import TransactionBlock, on_commit, transaction, transactional
from datalayer.tunnel import (
    SSHTunnel,
    TunnelConfig,
    TunnelStats,
    close_tunnel,
    open_tunnel,
    reset_tunnel,
    shared_tunnel,
)

__version__ = "0.1.0"

# A library logs; the application decides where it goes (no lastResort output to stderr).
logging.getLogger("datalayer").addHandler(logging.NullHandler())

__all__ = [
    "AuditAction",
    "AuditLog",
    "AuditLogManager",
    "AuditMixin",
    "AuditedModel",
    "BackupIntegrityError",
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
    "CacheUnavailableError",
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
    "SSHTunnel",
    "Settings",
    "SlowQuery",
    "SoftDeleteManager",
    "SoftDeleteMixin",
    "TimestampMixin",
    "TotalKind",
    "TransactionAbortedError",
    "TransactionBlock",
    "TransactionClosedError",
    "TransactionScope",
    "TunnelConfig",
    "TunnelStats",
    "ValidationError",
    "acting_as",
    "close_context",
    "close_tunnel",
    "connection_events",
    "correlation",
    "current_actor",
    "get_context",
    "on_commit",
    "open_tunnel",
    "primary_only",
    "reset_tunnel",
    "schema_out",
    "shared_tunnel",
    "to_schema",
    "transaction",
    "transactional",
    # partitioned logs (PostgreSQL)
    "MaintenanceReport",
    "PartitionReport",
    "describe_partitions",
    "ensure_partitions",
    "maintain",
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
