"""The app's own models: a Tortoise app (label ``models``) beside datalayer's packs."""

from __future__ import annotations

from typing import ClassVar

from tortoise import fields

from datalayer import AuditedModel, LiveUnique


class Notebook(AuditedModel):
    """A user's notebook; its title is unique among the user's live notebooks."""

    owner = fields.ForeignKeyField("core.User", related_name="notebooks")  # datalayer's core pack
    title = fields.CharField(max_length=120)

    searchable_fields: ClassVar = ("title",)
    live_unique_fields: ClassVar = (LiveUnique(("owner_id", "title")),)

    class Meta:
        table = "notes_notebook"


class Note(AuditedModel):
    notebook = fields.ForeignKeyField("models.Notebook", related_name="notes")
    body = fields.TextField()
    pinned = fields.BooleanField(default=False)

    #: who last edited it (added by migration 1: a foreign key into datalayer's core pack)
    editor = fields.ForeignKeyField("core.User", related_name="edited_notes", null=True)

    searchable_fields: ClassVar = ("body",)
    filter_relations: ClassVar = ("notebook__title",)

    class Meta:
        table = "notes_note"
