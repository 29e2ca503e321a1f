"""The main job on the embedded default (a SQLite file, no server): migrate, write, paginate, soft-delete,
restore, and print the audit trail.

datalayer's own tables come from the committed migrations (``migrate=True``); this example's ``Article``
table, which no migration knows, is created by ``generate_schemas``.

    python examples/quickstart.py
"""

from __future__ import annotations

import asyncio
import uuid

from tortoise import fields

from datalayer import AuditedModel, NotFoundError, close_context, get_context


class Article(AuditedModel):
    title = fields.CharField(max_length=200)
    body = fields.TextField(default="")
    status = fields.CharField(max_length=20, default="draft")

    searchable_fields = ("title", "body")

    class Meta:
        table = "quickstart_article"


async def main() -> None:
    ctx = await get_context(models=["__main__"], migrate=True, generate_schemas=True)
    print(f"connected: {ctx.target.describe()}")
    articles = ctx.manager(Article)
    editor = uuid.uuid4()
    try:
        with ctx.acting_as(editor):
            async with ctx.transaction() as tx:
                batch = await tx.manager(Article).bulk_create(
                    [{"title": f"Note {n}", "status": "published" if n % 2 else "draft"} for n in range(1, 26)]
                )
            first = batch[0]
            first = await articles.update(first.id, {"title": "Hello, datalayer"}, expected_version=first.version)

            page = await articles.find_many(filters={"status": "published"}, page=1, limit=5,
                                            sort_by="title", sort_order="asc")
            print(f"published: {page.total} rows, page {page.page}/{page.pages}: "
                  + ", ".join(a.title for a in page.items))

            await articles.delete(first.id)
            try:
                await articles.get(first.id)
            except NotFoundError as exc:
                print(f"after soft delete: {exc}")
            restored = await articles.restore(first.id)
            print(f"restored: {restored.title!r} (version {restored.version})")

        print("audit trail:")
        for entry in await ctx.audit_logs.history(Article, first.id):
            print(f"  {entry.created_at:%H:%M:%S} {entry.action.value:<8} by {entry.actor_id}  {entry.changes}")
    finally:
        async with ctx.transaction():
            await Article.all_objects.all().delete()
        await close_context()


if __name__ == "__main__":
    asyncio.run(main())
