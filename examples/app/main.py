"""The app's main job: open datalayer with the app's models beside its packs, on a migrated database."""

from __future__ import annotations

import asyncio

from notes.models import Note, Notebook

from datalayer import close_context, get_context


async def main() -> None:
    ctx = await get_context(migrate=True)  # [tool.datalayer] in pyproject.toml names notes.models
    try:
        user = await ctx.users.find_by_email("reader@example.com") or await ctx.users.create_user(
            "reader@example.com", "a long passphrase", username="reader")
        notebook, _ = await ctx.manager(Notebook).get_or_create(owner_id=user.id, title="Reading list")
        await ctx.manager(Note).create({"notebook_id": notebook.id, "body": "The Tortoise ORM docs"})
        page = await ctx.manager(Note).find_many(filters={"notebook__title": "Reading list"})
        print(f"{page.total} note(s) in {notebook.title!r} for {user.email}")
    finally:
        await close_context()


if __name__ == "__main__":
    asyncio.run(main())
