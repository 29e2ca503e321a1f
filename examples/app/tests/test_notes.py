"""The notes app's own tests, on datalayer's pytest plugin (no conftest): ``ctx`` is the app's ``DataContext``
on a database made for the session by the app's migrations, SQLite or PostgreSQL (``TEST_DATABASE_URL``,
``--datalayer-engines``), each test rolled back (``datalayer_isolation`` in pyproject.toml)."""

from __future__ import annotations

import pytest
from notes.models import Note, Notebook

from datalayer import AuditAction, ConflictError, NotFoundError


async def reader(ctx, name: str = "reader"):
    return await ctx.users.create_user(f"{name}@example.com", "a long passphrase", username=name)


async def test_a_user_keeps_notes_in_a_notebook(ctx):
    user = await reader(ctx)
    async with ctx.acting_as(user.id):
        notebook = await ctx.manager(Notebook).create({"owner_id": user.id, "title": "Reading list"})
        note = await ctx.manager(Note).create({"notebook_id": notebook.id, "body": "The Tortoise ORM docs"})

    page = await ctx.manager(Note).find_many(filters={"notebook__title": "Reading list"})
    assert [found.id for found in page.items] == [note.id]
    assert notebook.created_by == user.id
    assert [entry.action for entry in await ctx.audit_logs.history(Note, note.id)] == [AuditAction.CREATE]


async def test_a_title_is_taken_only_by_the_owners_live_notebooks(ctx):
    ann, bob = await reader(ctx, "ann"), await reader(ctx, "bob")
    notebooks = ctx.manager(Notebook)
    first = await notebooks.create({"owner_id": ann.id, "title": "Ideas"})
    await notebooks.create({"owner_id": bob.id, "title": "Ideas"})  # another owner's: fine

    with pytest.raises(ConflictError):
        await notebooks.create({"owner_id": ann.id, "title": "Ideas"})
    await notebooks.delete(first.id)  # soft: the title is free again
    assert (await notebooks.create({"owner_id": ann.id, "title": "Ideas"})).id != first.id


async def test_a_deleted_note_is_hidden_until_restored(ctx):
    user = await reader(ctx)
    notebook = await ctx.manager(Notebook).create({"owner_id": user.id, "title": "Drafts"})
    notes = ctx.manager(Note)
    note = await notes.create({"notebook_id": notebook.id, "body": "half a thought"})

    await notes.delete(note.id)
    with pytest.raises(NotFoundError):
        await notes.get(note.id)
    assert (await notes.find_many()).total == 0
    assert (await notes.get(note.id, include_deleted=True)).deleted_at is not None

    await notes.restore(note.id)
    assert (await notes.get(note.id)).body == "half a thought"


@pytest.mark.parametrize("turn", ["first", "second"])
async def test_each_test_starts_with_no_rows_rolled_back(ctx, turn):
    assert await ctx.users.count() == 0 and await ctx.manager(Notebook).count() == 0
    user = await reader(ctx, f"reader_{turn}")
    await ctx.manager(Notebook).create({"owner_id": user.id, "title": turn})


@pytest.mark.datalayer_isolation("truncate")
@pytest.mark.parametrize("turn", ["first", "second"])
async def test_each_test_starts_with_no_rows_truncated(ctx, turn):
    assert await ctx.users.count() == 0 and await ctx.manager(Notebook).count() == 0
    user = await reader(ctx, f"reader_{turn}")
    await ctx.manager(Notebook).create({"owner_id": user.id, "title": turn})
