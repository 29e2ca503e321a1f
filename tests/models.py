"""Models of an imaginary app built on datalayer, used by the core tests."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field
from tortoise import fields

from datalayer import AuditedModel, ModelManager
from datalayer.schema import LiveUnique


class Author(AuditedModel):
    name = fields.CharField(max_length=100)
    email = fields.CharField(max_length=255)
    password_hash = fields.CharField(max_length=128, default="")

    searchable_fields: ClassVar = ("name", "email")
    secret_fields: ClassVar = ("password_hash",)
    live_unique_fields: ClassVar = (LiveUnique(("email",), lower=True),)
    filter_relations: ClassVar = ("articles__title", "articles__status", "articles__comments__text")

    class Meta:
        table = "test_author"


class ArticleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    body: str = ""
    status: str = Field(default="draft", pattern="^(draft|published|archived)$")
    views: int = Field(default=0, ge=0)
    author_id: str | None = None


class Article(AuditedModel):
    title = fields.CharField(max_length=200)
    body = fields.TextField(default="")
    status = fields.CharField(max_length=20, default="draft")
    views = fields.IntField(default=0)
    published_at = fields.DatetimeField(null=True)
    author = fields.ForeignKeyField("models.Author", related_name="articles", null=True)

    searchable_fields: ClassVar = ("title", "body")
    filter_relations: ClassVar = ("author__name", "author__email")

    class Meta:
        table = "test_article"


class Comment(AuditedModel):
    article = fields.ForeignKeyField("models.Article", related_name="comments")
    text = fields.TextField()

    class Meta:
        table = "test_comment"


class CachedNote(AuditedModel):
    """A model whose manager opts in to read-through caching (tests/test_cache_read_through.py)."""

    title = fields.CharField(max_length=200)
    amount = fields.DecimalField(max_digits=12, decimal_places=4, default=0)
    meta = fields.JSONField(default=dict)
    due_at = fields.DatetimeField(null=True)
    author = fields.ForeignKeyField("models.Author", related_name="cached_notes", null=True)

    class Meta:
        table = "test_cached_note"


class CachedNoteManager(ModelManager[CachedNote]):
    model = CachedNote
    cached = True


class Label(AuditedModel):
    """An app model whose manager is a registered subclass with a domain method."""

    name = fields.CharField(max_length=50)
    colour = fields.CharField(max_length=20, default="grey")

    class Meta:
        table = "test_label"


class Visit(AuditedModel):
    """Date-time fields Tortoise stamps on save (``auto_now`` / ``auto_now_add``) besides the timestamps."""

    page = fields.CharField(max_length=100)
    checked_at = fields.DatetimeField(auto_now=True)
    opened_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "test_visit"
