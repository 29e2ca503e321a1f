"""The ML model upload API (seed 000): models, their stored files, endpoints and usage records."""

from __future__ import annotations

import uuid
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

from tortoise import fields, timezone

from datalayer.models.base import AuditedModel, RecordModel
from datalayer.schema import CoveringIndex, LiveUnique

if TYPE_CHECKING:
    from datalayer.core.accounts import ApiKey, User


class Framework(str, Enum):
    PYTORCH = "pytorch"
    TENSORFLOW = "tensorflow"
    SKLEARN = "sklearn"
    ONNX = "onnx"
    XGBOOST = "xgboost"
    OTHER = "other"


class ModelStatus(str, Enum):
    UPLOADING = "uploading"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"
    ARCHIVED = "archived"


class MLModel(AuditedModel):
    owner: fields.ForeignKeyRelation[User] = fields.ForeignKeyField("core.User", related_name="ml_models")
    owner_id: uuid.UUID
    name = fields.CharField(max_length=200)
    description = fields.TextField(null=True)
    framework = fields.CharEnumField(Framework, max_length=16)
    # the seed's "version"; ``version`` itself is the optimistic-lock counter every AuditedModel has
    model_version = fields.CharField(max_length=50, default="1.0.0")
    status = fields.CharEnumField(ModelStatus, max_length=16, default=ModelStatus.UPLOADING)
    config: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    tags: fields.JSONField[list[str]] = fields.JSONField(default=list)
    #: reverse relations, added by Tortoise (for the type checker)
    stored_models: fields.ReverseRelation[StoredModel]
    endpoints: fields.ReverseRelation[EndpointConfig]
    usage: fields.ReverseRelation[ModelUsage]

    searchable_fields: ClassVar = ("name", "description")
    live_unique_fields: ClassVar = (LiveUnique(("owner_id", "name", "model_version")),)
    filter_relations: ClassVar = ("owner__username", "owner__email", "endpoints__path")

    class Meta:
        table = "ml_models"
        indexes = (("owner_id", "status"), ("framework",))


class StoredModel(AuditedModel):
    """Where a model's file lives. Its encryption key is stored only wrapped (AES-GCM, see security.keywrap)."""

    ml_model: fields.ForeignKeyRelation[MLModel] = fields.ForeignKeyField(
        "ml.MLModel", related_name="stored_models"
    )
    ml_model_id: uuid.UUID
    storage_path = fields.CharField(max_length=1000)
    size_bytes = fields.BigIntField(default=0)
    checksum = fields.CharField(max_length=64)
    encryption_key_wrapped = fields.CharField(max_length=255, null=True)

    secret_fields: ClassVar = ("encryption_key_wrapped",)
    filter_relations: ClassVar = ("ml_model__name", "ml_model__owner__username")

    class Meta:
        table = "stored_models"
        indexes = (("ml_model_id",),)


class EndpointConfig(AuditedModel):
    ml_model: fields.ForeignKeyRelation[MLModel] = fields.ForeignKeyField(
        "ml.MLModel", related_name="endpoints"
    )
    ml_model_id: uuid.UUID
    path = fields.CharField(max_length=255)
    rate_limit = fields.IntField(default=100)  # requests per minute
    auth_required = fields.BooleanField(default=True)
    settings: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    is_active = fields.BooleanField(default=True)

    live_unique_fields: ClassVar = (LiveUnique(("path",)),)
    filter_relations: ClassVar = ("ml_model__name", "ml_model__owner__username")

    class Meta:
        table = "endpoint_configs"
        indexes = (("ml_model_id",),)


class ModelUsage(RecordModel):
    """One served prediction request: append-only analytics."""

    ml_model: fields.ForeignKeyRelation[MLModel] = fields.ForeignKeyField("ml.MLModel", related_name="usage")
    ml_model_id: uuid.UUID
    api_key: fields.ForeignKeyNullableRelation[ApiKey] = fields.ForeignKeyField(
        "core.ApiKey", related_name="usage", null=True
    )
    api_key_id: uuid.UUID | None
    user: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "core.User", related_name="model_usage", null=True
    )
    user_id: uuid.UUID | None
    endpoint = fields.CharField(max_length=255, null=True)
    latency_ms = fields.FloatField()
    status_code = fields.IntField()
    request_size = fields.BigIntField(default=0)
    response_size = fields.BigIntField(default=0)
    at = fields.DatetimeField(default=timezone.now)

    class Meta:
        table = "model_usage"
        # usage_statistics() reads a model's rows by time and aggregates these four columns: from the index
        # alone (figures in the README, "Partitioned logs"; python -m benchmarks.partitions --usage)
        indexes = (CoveringIndex(fields=("ml_model_id", "at"), name="idx_model_usage_model_at_covering",
                                 include=("status_code", "latency_ms", "request_size", "response_size")),
                   ("api_key_id", "at"), ("at",))
