"""The ML model upload API (seed 000): models, their stored files, endpoints and usage records."""

from __future__ import annotations

from enum import Enum
from typing import ClassVar

from tortoise import fields, timezone

from datalayer.models.base import AuditedModel, RecordModel
from datalayer.schema import LiveUnique


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
    owner = fields.ForeignKeyField("core.User", related_name="ml_models")
    name = fields.CharField(max_length=200)
    description = fields.TextField(null=True)
    framework = fields.CharEnumField(Framework, max_length=16)
    # the seed's "version"; ``version`` itself is the optimistic-lock counter every AuditedModel has
    model_version = fields.CharField(max_length=50, default="1.0.0")
    status = fields.CharEnumField(ModelStatus, max_length=16, default=ModelStatus.UPLOADING)
    config = fields.JSONField(default=dict)
    tags = fields.JSONField(default=list)

    searchable_fields: ClassVar = ("name", "description")
    live_unique_fields: ClassVar = (LiveUnique(("owner_id", "name", "model_version")),)
    filter_relations: ClassVar = ("owner__username", "owner__email", "endpoints__path")

    class Meta:
        table = "ml_models"
        indexes = (("owner_id", "status"), ("framework",))


class StoredModel(AuditedModel):
    """Where a model's file lives. Its encryption key is stored only wrapped (AES-GCM, see security.keywrap)."""

    ml_model = fields.ForeignKeyField("ml.MLModel", related_name="stored_models")
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
    ml_model = fields.ForeignKeyField("ml.MLModel", related_name="endpoints")
    path = fields.CharField(max_length=255)
    rate_limit = fields.IntField(default=100)  # requests per minute
    auth_required = fields.BooleanField(default=True)
    settings = fields.JSONField(default=dict)
    is_active = fields.BooleanField(default=True)

    live_unique_fields: ClassVar = (LiveUnique(("path",)),)
    filter_relations: ClassVar = ("ml_model__name", "ml_model__owner__username")

    class Meta:
        table = "endpoint_configs"
        indexes = (("ml_model_id",),)


class ModelUsage(RecordModel):
    """One served prediction request: append-only analytics."""

    ml_model = fields.ForeignKeyField("ml.MLModel", related_name="usage")
    api_key = fields.ForeignKeyField("core.ApiKey", related_name="usage", null=True)
    user = fields.ForeignKeyField("core.User", related_name="model_usage", null=True)
    endpoint = fields.CharField(max_length=255, null=True)
    latency_ms = fields.FloatField()
    status_code = fields.IntField()
    request_size = fields.BigIntField(default=0)
    response_size = fields.BigIntField(default=0)
    at = fields.DatetimeField(default=timezone.now)

    class Meta:
        table = "model_usage"
        indexes = (("ml_model_id", "at"), ("api_key_id", "at"), ("at",))
