"""The app's HTTP API: FastAPI on datalayer's integration.

    pip install 'datalayer[fastapi]' uvicorn
    uvicorn notes.api:app          # from this folder: [tool.datalayer] names the models, DATABASE_URL the database

Rows are returned as they are: datalayer serialises them through their output schema, so a user never shows
its password_hash. Errors answer 404/409/422/503 with datalayer's body, all listed at /docs.
"""

from __future__ import annotations

from uuid import UUID

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from datalayer import Page, Settings, User, to_schema
from datalayer.integrations.fastapi import Context, datalayer_lifespan, health_router, install_error_handlers
from notes.models import Note, Notebook

#: a notebook as GET /notebooks/{id} shows it: its notes and its owner nested (the owner without password_hash)
NotebookWithNotes = Notebook.schema_out(relations=("notes", "owner"))


class NotebookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    owner_id: UUID
    title: str = Field(min_length=1, max_length=120)


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: str = Field(min_length=1)
    pinned: bool = False


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> FastAPI:
    app = FastAPI(title="notes", lifespan=datalayer_lifespan(settings, migrate=migrate))
    app.include_router(health_router())
    install_error_handlers(app)

    @app.get("/users/{user_id}")
    async def read_user(user_id: UUID, ctx: Context) -> User:
        return await ctx.users.get(user_id)

    @app.post("/notebooks", status_code=201)
    async def create_notebook(data: NotebookIn, ctx: Context) -> Notebook:
        return await ctx.manager(Notebook).create(data)

    @app.get("/notebooks")
    async def list_notebooks(ctx: Context, q: str | None = None, page: int = 1, limit: int = 20) -> Page[Notebook]:
        return await ctx.manager(Notebook).find_many(search=q, page=page, limit=limit, sort_by="title")

    @app.get("/notebooks/{notebook_id}", response_model=NotebookWithNotes)
    async def read_notebook(notebook_id: UUID, ctx: Context) -> BaseModel:
        """The notebook with its live notes and its owner (fetched in one query each)."""
        return await to_schema(await ctx.manager(Notebook).get(notebook_id), relations=("notes", "owner"))

    @app.post("/notebooks/{notebook_id}/notes", status_code=201)
    async def add_note(notebook_id: UUID, data: NoteIn, ctx: Context) -> Note:
        notebook = await ctx.manager(Notebook).get(notebook_id)
        return await ctx.manager(Note).create({"notebook_id": notebook.id, **data.model_dump()})

    return app


app = create_app()
