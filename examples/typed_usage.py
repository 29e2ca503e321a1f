"""What a type checker sees of datalayer: every pack manager typed (``ctx.users`` is a ``UserManager``),
every row its model, an app's own model included (``ctx.manager(Bookmark)`` is a ``ModelManager[Bookmark]``).

    python examples/typed_usage.py      # runs on the embedded default (a SQLite file)
    mypy examples/typed_usage.py        # no errors (tests/test_typing.py checks it, and that mistakes fail)

``assert_type`` does nothing at run time; a type checker fails it when a value's type is not exactly the one
named, so a manager that lost its types (``Any``) fails the check instead of passing everything.
"""

from __future__ import annotations

import asyncio
import uuid

from tortoise import fields
from typing_extensions import assert_type

from datalayer import (
    AuditedModel,
    Chunk,
    DataContext,
    ModelManager,
    Page,
    Task,
    TaskManager,
    TaskStatus,
    TransactionScope,
    User,
    UserManager,
    close_context,
    get_context,
)

PASSPHRASE = "a long enough passphrase"
RUN = uuid.uuid4().hex[:8]  # run again on the same database file: other rows, no clash


class Bookmark(AuditedModel):
    """An app's own model; its foreign key into the ``core`` pack is typed like the packs' own."""

    owner: fields.ForeignKeyRelation[User] = fields.ForeignKeyField("core.User", related_name="bookmarks")
    url = fields.CharField(max_length=500)
    title = fields.CharField(max_length=200)

    class Meta:
        table = "typed_usage_bookmark"


async def sign_up_and_log_in(ctx: DataContext) -> User:
    users = ctx.users
    assert_type(users, UserManager)
    email = f"ada-{RUN}@example.com"
    user = await users.create_user(email, PASSPHRASE, username=f"ada_{RUN}")
    assert_type(user, User)
    assert_type(await users.get(user.id), User)
    logged_in = await users.authenticate(email, PASSPHRASE)
    assert_type(logged_in, User | None)
    assert logged_in is not None and logged_in.id == user.id
    assert await users.authenticate(email, "not the passphrase") is None
    return user


async def work_the_queue(ctx: DataContext) -> Task:
    tasks = ctx.tasks
    assert_type(tasks, TaskManager)
    await tasks.create({"title": "index the repository", "task_type": f"index-{RUN}"})
    claimed = await tasks.claim_next("worker-1", task_type=f"index-{RUN}")
    assert_type(claimed, Task | None)
    assert claimed is not None and claimed.status is TaskStatus.RUNNING
    done = await tasks.complete_task(claimed.id, {"files": 12})
    assert_type(done, Task)
    assert_type(await tasks.find_by_status(TaskStatus.PENDING), list[Task])
    return done


async def keep_bookmarks(ctx: DataContext, owner: User) -> Page[Bookmark]:
    bookmarks = ctx.manager(Bookmark)
    assert_type(bookmarks, ModelManager[Bookmark])
    async with ctx.transaction() as tx:
        assert_type(tx, TransactionScope)
        assert_type(tx.users, UserManager)
        created = await tx.manager(Bookmark).bulk_create(
            {"owner_id": owner.id, "url": f"https://example.com/{n}", "title": f"Python {n}"}
            for n in range(3)
        )
        assert_type(created, list[Bookmark])
    mine = {"owner_id": owner.id, "title__icontains": "python"}
    page = await bookmarks.find_many(mine, sort_by="title", limit=2)
    assert_type(page, Page[Bookmark])
    titles: list[str] = [bookmark.title for bookmark in page.items]
    assert titles == ["Python 0", "Python 1"] and page.total == 3
    chunk = await bookmarks.find_after(limit=2)
    assert_type(chunk, Chunk[Bookmark])
    owner_of_first = await page.items[0].owner
    assert_type(owner_of_first, User)
    return page


async def main() -> None:
    ctx = await get_context(models=["__main__"], migrate=True, generate_schemas=True)
    try:
        user = await sign_up_and_log_in(ctx)
        task = await work_the_queue(ctx)
        page = await keep_bookmarks(ctx, user)
        print(f"{user.username} logged in; task {task.title!r} is {task.status.value}; "
              f"bookmarks: {', '.join(bookmark.title for bookmark in page.items)} of {page.total}")
    finally:
        await close_context()


if __name__ == "__main__":
    asyncio.run(main())
