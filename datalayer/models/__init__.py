"""Every concrete model datalayer ships. Tortoise loads this module as part of the ``models`` app."""

from datalayer.models.audit_log import AuditAction, AuditLog
from datalayer.models.base import AuditedModel, DataModel, RecordModel
from datalayer.models.cache_entry import CacheEntry
from datalayer.models.accounts import ApiKey, Role, Session, SessionStatus, SubscriptionTier, User
from datalayer.models.agent import CodeFile, Configuration, ParsedRequest, ProjectAnalysis, Task, TaskStatus
from datalayer.models.analysis import AnalysisFile, DataAnalysis, LogLevel, SystemLog, ToolGeneration
from datalayer.models.characters import Character, CharacterTemplate, GenerationStatus, StyleType
from datalayer.models.ml import EndpointConfig, MLModel, ModelUsage, StoredModel

__models__ = [
    AuditLog, CacheEntry,
    User, Session, ApiKey,
    ParsedRequest, ProjectAnalysis, Task, CodeFile, Configuration,
    MLModel, StoredModel, EndpointConfig, ModelUsage,
    DataAnalysis, AnalysisFile, ToolGeneration, SystemLog,
    CharacterTemplate, Character,
]

__all__ = [
    "AnalysisFile", "ApiKey", "Character", "CharacterTemplate", "CodeFile", "Configuration", "DataAnalysis",
    "EndpointConfig", "GenerationStatus", "LogLevel", "MLModel", "ModelUsage", "ParsedRequest", "ProjectAnalysis",
    "Role", "Session", "SessionStatus", "StoredModel", "StyleType", "SubscriptionTier", "SystemLog", "Task",
    "TaskStatus", "ToolGeneration", "User",
    "AuditAction", "AuditLog", "AuditedModel", "CacheEntry", "DataModel", "RecordModel"]
