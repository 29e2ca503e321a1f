"""The AI code agent (seed 001): a parsed request is analysed, split into tasks, and files are read.

Relations: ParsedRequest -> ProjectAnalysis -> CodeFile, and Task belongs to a request and/or an analysis.
"""

from __future__ import annotations

import uuid
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

from tortoise import fields

from datalayer.models.base import AuditedModel
from datalayer.schema import LiveUnique

if TYPE_CHECKING:
    from datalayer.core.accounts import User


class RequestStatus(str, Enum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class AnalysisStatus(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class TaskStatus(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: which status a task may move to from each status; anything else is a ValidationError
TASK_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.PENDING: frozenset({TaskStatus.RUNNING, TaskStatus.FAILED, TaskStatus.CANCELLED}),
    TaskStatus.RUNNING: frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.PENDING,
                                   TaskStatus.CANCELLED}),
    TaskStatus.FAILED: frozenset({TaskStatus.PENDING}),
    TaskStatus.COMPLETED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
}


class JSONValueField(fields.JSONField):
    """A JSON column where a Python ``str`` is a JSON string value, never pre-encoded JSON text.

    Tortoise's ``JSONField`` takes a str as already-encoded JSON, so the config value ``"agent"`` would be
    rejected as invalid JSON and ``"123"`` stored as the number 123.
    """

    def to_db_value(self, value: Any, instance: Any) -> str | None:
        self.validate(value)
        return None if value is None else self.encoder(value)


class ParsedRequest(AuditedModel):
    """A user's natural-language request and what the parser made of it."""

    user: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "core.User", related_name="parsed_requests", null=True
    )
    user_id: uuid.UUID | None
    raw_input = fields.TextField()
    intent = fields.CharField(max_length=100, null=True)
    parsed_data: fields.JSONField[Any] = fields.JSONField(default=dict)
    status = fields.CharEnumField(RequestStatus, max_length=16, default=RequestStatus.PENDING)
    error_message = fields.TextField(null=True)
    #: reverse relations, added by Tortoise (for the type checker)
    analyses: fields.ReverseRelation[ProjectAnalysis]
    tasks: fields.ReverseRelation[Task]

    searchable_fields: ClassVar = ("raw_input", "intent")
    filter_relations: ClassVar = ("user__username", "user__email")

    class Meta:
        table = "parsed_requests"
        indexes = (("user_id", "status"), ("status", "created_at"))


class ProjectAnalysis(AuditedModel):
    parsed_request: fields.ForeignKeyRelation[ParsedRequest] = fields.ForeignKeyField(
        "agent.ParsedRequest", related_name="analyses"
    )
    parsed_request_id: uuid.UUID
    project_name = fields.CharField(max_length=200)
    project_path = fields.CharField(max_length=1000, null=True)
    status = fields.CharEnumField(AnalysisStatus, max_length=16, default=AnalysisStatus.PENDING)
    summary: fields.JSONField[Any] = fields.JSONField(default=dict)
    error_message = fields.TextField(null=True)
    started_at = fields.DatetimeField(null=True)
    completed_at = fields.DatetimeField(null=True)
    #: reverse relations, added by Tortoise (for the type checker)
    tasks: fields.ReverseRelation[Task]
    files: fields.ReverseRelation[CodeFile]

    searchable_fields: ClassVar = ("project_name",)
    filter_relations: ClassVar = (
        "parsed_request__user__username", "files__path", "files__language", "tasks__status",
    )

    class Meta:
        table = "project_analyses"
        indexes = (("parsed_request_id", "created_at"), ("status",))


class Task(AuditedModel):
    """A unit of agent work; ``claim_next`` hands each pending task to exactly one worker."""

    parsed_request: fields.ForeignKeyNullableRelation[ParsedRequest] = fields.ForeignKeyField(
        "agent.ParsedRequest", related_name="tasks", null=True
    )
    parsed_request_id: uuid.UUID | None
    project_analysis: fields.ForeignKeyNullableRelation[ProjectAnalysis] = fields.ForeignKeyField(
        "agent.ProjectAnalysis", related_name="tasks", null=True
    )
    project_analysis_id: uuid.UUID | None
    title = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    task_type = fields.CharField(max_length=50, default="generic")
    status = fields.CharEnumField(TaskStatus, max_length=16, default=TaskStatus.PENDING)
    priority = fields.IntField(default=0)
    assigned_to = fields.CharField(max_length=100, null=True)
    due_at = fields.DatetimeField(null=True)
    started_at = fields.DatetimeField(null=True)
    completed_at = fields.DatetimeField(null=True)
    attempts = fields.IntField(default=0)
    max_retries = fields.IntField(default=3)
    results: fields.JSONField[Any] = fields.JSONField(null=True)
    error_message = fields.TextField(null=True)

    searchable_fields: ClassVar = ("title", "description")
    filter_relations: ClassVar = ("project_analysis__project_name", "parsed_request__user__username")

    class Meta:
        table = "tasks"
        indexes = (
            ("status", "priority", "created_at"),  # claim_next: highest priority, oldest first
            ("status", "due_at"),                   # find_overdue
            ("parsed_request_id",),
            ("project_analysis_id",),
        )


class CodeFile(AuditedModel):
    """A file seen by an analysis: content inline for small files, or a storage reference."""

    project_analysis: fields.ForeignKeyRelation[ProjectAnalysis] = fields.ForeignKeyField(
        "agent.ProjectAnalysis", related_name="files"
    )
    project_analysis_id: uuid.UUID
    path = fields.CharField(max_length=1000)
    language = fields.CharField(max_length=50, null=True)
    size_bytes = fields.BigIntField(default=0)
    checksum = fields.CharField(max_length=64, null=True)
    content = fields.TextField(null=True)
    storage_ref = fields.CharField(max_length=1000, null=True)

    searchable_fields: ClassVar = ("path",)
    filter_relations: ClassVar = ("project_analysis__project_name",)
    live_unique_fields: ClassVar = (LiveUnique(("project_analysis_id", "path")),)

    class Meta:
        table = "code_files"
        indexes = (("language",),)


class Configuration(AuditedModel):
    """A named setting with a JSON value; read and written typed through ``ctx.configurations``."""

    key = fields.CharField(max_length=200)
    value = JSONValueField(null=True)
    scope = fields.CharField(max_length=50, default="global")
    description = fields.TextField(null=True)

    searchable_fields: ClassVar = ("key", "description")
    live_unique_fields: ClassVar = (LiveUnique(("key",)),)

    class Meta:
        table = "configurations"
        indexes = (("scope",),)
