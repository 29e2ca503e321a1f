"""Generic and per-model managers."""

from datalayer.managers.audit_logs import AuditLogManager
from datalayer.managers.base import ModelManager
from datalayer.managers.pagination import Chunk, Page

# domain managers: importing registers them, so the context serves ctx.users, ctx.tasks, ...
from datalayer.managers.accounts import ApiKeyManager, SessionManager, UserManager  # noqa: E402
from datalayer.managers.agent import (  # noqa: E402
    CodeFileManager,
    ConfigurationManager,
    ProjectAnalysisManager,
    TaskManager,
)
from datalayer.managers.analysis import SystemLogManager  # noqa: E402
from datalayer.managers.characters import CharacterManager, CharacterTemplateManager  # noqa: E402
from datalayer.managers.ml import MLModelManager, ModelUsageManager, StoredModelManager  # noqa: E402

__all__ = [
    "ApiKeyManager", "CharacterManager", "CharacterTemplateManager", "CodeFileManager", "ConfigurationManager",
    "MLModelManager", "ModelUsageManager", "ProjectAnalysisManager", "SessionManager", "StoredModelManager",
    "SystemLogManager", "TaskManager", "UserManager",
    "AuditLogManager", "Chunk", "ModelManager", "Page"]
