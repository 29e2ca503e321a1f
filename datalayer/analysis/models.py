"""Microservices data analysis (seed 002): analyses and their files, generated tools, and system logs."""

from __future__ import annotations

import uuid
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

from tortoise import fields

from datalayer.models.base import AuditedModel, RecordModel

if TYPE_CHECKING:
    from datalayer.core.accounts import User


class JobStatus(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class LogLevel(str, Enum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class DataAnalysis(AuditedModel):
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField("core.User", related_name="data_analyses")
    user_id: uuid.UUID
    title = fields.CharField(max_length=200)
    description = fields.TextField(null=True)
    status = fields.CharEnumField(JobStatus, max_length=16, default=JobStatus.PENDING)
    parameters: fields.JSONField[Any] = fields.JSONField(default=dict)
    results: fields.JSONField[Any] = fields.JSONField(null=True)
    error_message = fields.TextField(null=True)
    started_at = fields.DatetimeField(null=True)
    completed_at = fields.DatetimeField(null=True)
    #: reverse relations, added by Tortoise (for the type checker)
    files: fields.ReverseRelation[AnalysisFile]

    searchable_fields: ClassVar = ("title", "description")
    filter_relations: ClassVar = ("user__username", "user__email", "files__filename", "files__file_type")

    class Meta:
        table = "data_analyses"
        indexes = (("user_id", "status", "created_at"),)


class AnalysisFile(AuditedModel):
    analysis: fields.ForeignKeyRelation[DataAnalysis] = fields.ForeignKeyField(
        "analysis.DataAnalysis", related_name="files"
    )
    analysis_id: uuid.UUID
    filename = fields.CharField(max_length=255)
    file_type = fields.CharField(max_length=50)
    size_bytes = fields.BigIntField(default=0)
    storage_path = fields.CharField(max_length=1000)

    searchable_fields: ClassVar = ("filename",)
    filter_relations: ClassVar = ("analysis__title", "analysis__user__username")

    class Meta:
        table = "analysis_files"
        indexes = (("analysis_id", "file_type"),)


class ToolGeneration(AuditedModel):
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "core.User", related_name="tool_generations"
    )
    user_id: uuid.UUID
    tool_type = fields.CharField(max_length=50)
    prompt = fields.TextField()
    status = fields.CharEnumField(JobStatus, max_length=16, default=JobStatus.PENDING)
    result: fields.JSONField[Any] = fields.JSONField(null=True)
    error_message = fields.TextField(null=True)

    filter_relations: ClassVar = ("user__username", "user__email")

    class Meta:
        table = "tool_generations"
        indexes = (("user_id", "status", "tool_type"),)


class SystemLog(RecordModel):
    """A system event (append-only; ``cleanup_old_data`` prunes old ones)."""

    service = fields.CharField(max_length=100)
    level = fields.CharEnumField(LogLevel, max_length=16, default=LogLevel.INFO)
    message = fields.TextField()
    details: fields.JSONField[Any] = fields.JSONField(default=dict)

    class Meta:
        table = "system_logs"
        indexes = (("service", "created_at"), ("level", "created_at"), ("created_at",))
