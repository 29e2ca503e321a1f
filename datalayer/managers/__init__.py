"""Generic and per-model managers."""

# domain managers: importing registers them, so the context serves ctx.users, ctx.tasks, ...
from datalayer.managers.accounts import ApiKeyManager, SessionManager, UserManager
from datalayer.managers.agent import (
    CodeFileManager,
    ConfigurationManager,
    ProjectAnalysisManager,
    TaskManager,
)
from datalayer.managers.analysis import SystemLogManager
from datalayer.managers.audit_logs import AuditLogManager
from datalayer.managers.base import ModelManager
from datalayer.managers.characters import CharacterManager, CharacterTemplateManager
from datalayer.managers.ml import MLModelManager, ModelUsageManager, StoredModelManager
from datalayer.managers.pagination import Chunk, Page

__all__ = [
    "ApiKeyManager", "CharacterManager", "CharacterTemplateManager", "CodeFileManager", "ConfigurationManager",
    "MLModelManager", "ModelUsageManager", "ProjectAnalysisManager", "SessionManager", "StoredModelManager",
    "SystemLogManager", "TaskManager", "UserManager",
    "AuditLogManager", "Chunk", "ModelManager", "Page"]
