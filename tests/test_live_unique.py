import pytest

from datalayer import ConflictError
from tests.models import Author


async def test_a_live_duplicate_is_a_conflict_naming_the_field(ctx):
    authors = ctx.manager(Author)
    await authors.create({"name": "A", "email": "ada@example.com"})
    with pytest.raises(ConflictError) as caught:
        await authors.create({"name": "B", "email": "ADA@example.com"})  # compared case-insensitively
    assert caught.value.fields == ("email",)
    assert "email" in str(caught.value)
    assert await authors.count() == 1


async def test_a_deleted_rows_email_can_be_registered_again(ctx):
    authors = ctx.manager(Author)
    first = await authors.create({"name": "A", "email": "ada@example.com"})
    await authors.delete(first.id)
    second = await authors.create({"name": "B", "email": "ada@example.com"})
    assert second.id != first.id
    assert await Author.all_objects.filter(email="ada@example.com").count() == 2


async def test_restoring_a_row_whose_email_was_taken_meanwhile_is_a_conflict(ctx):
    authors = ctx.manager(Author)
    first = await authors.create({"name": "A", "email": "ada@example.com"})
    await authors.delete(first.id)
    await authors.create({"name": "B", "email": "ada@example.com"})
    with pytest.raises(ConflictError):
        await authors.restore(first.id)
    assert (await authors.get(first.id, include_deleted=True)).deleted_at is not None
