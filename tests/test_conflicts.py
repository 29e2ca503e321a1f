"""Unique rules broken on a migrated database name their fields, and concurrent get-or-create/upsert calls on
one natural key all get the one row (schema built by the migrations, on SQLite and PostgreSQL)."""

import asyncio

import pytest
from tortoise.connection import get_connection

from datalayer import ConflictError
from datalayer.core.cache_entry import CacheEntry
from datalayer.translate import translate
from tests.models import Article, Author


async def make_user(ctx, email="ada@example.com", username="ada"):
    return await ctx.users.create_user(email, "password123", username=username)


def assert_names(error: ConflictError, model: str, *fields: str) -> None:
    assert error.fields == fields
    assert str(error).startswith(f"{model}: {', '.join(fields)} already taken")


# ----------------------------------------------------------------- conflicts name their fields


async def test_a_second_user_with_the_email_in_another_case_is_a_conflict_naming_email(ctx):
    first = await make_user(ctx)
    with pytest.raises(ConflictError) as caught:
        await make_user(ctx, email="ADA@Example.com", username="other")
    assert_names(caught.value, "User", "email")
    rows = await ctx.users.find_many(include_deleted=True)
    assert [(row.id, row.email, row.username, row.version) for row in rows.items] == [
        (first.id, "ada@example.com", "ada", first.version)
    ]


async def test_a_second_user_with_the_username_is_a_conflict_naming_username(ctx):
    await make_user(ctx)
    with pytest.raises(ConflictError) as caught:
        await make_user(ctx, email="other@example.com")
    assert_names(caught.value, "User", "username")
    assert await ctx.users.count(include_deleted=True) == 1


async def test_update_profile_to_a_taken_email_names_email_and_changes_nothing(ctx):
    await make_user(ctx)
    bob = await make_user(ctx, email="bob@example.com", username="bob")
    with pytest.raises(ConflictError) as caught:
        await ctx.users.update_profile(bob.id, {"email": "Ada@example.com"})
    assert_names(caught.value, "User", "email")
    with pytest.raises(ConflictError) as caught:
        await ctx.users.update(bob.id, {"username": "ada"})
    assert_names(caught.value, "User", "username")
    after = await ctx.users.get(bob.id)
    assert (after.email, after.username, after.version) == ("bob@example.com", "bob", bob.version)


async def test_restoring_a_user_whose_email_was_taken_meanwhile_names_email_and_keeps_it_deleted(ctx):
    first = await make_user(ctx)
    await ctx.users.delete(first.id)
    second = await make_user(ctx, email="ADA@example.com", username="ada2")
    with pytest.raises(ConflictError) as caught:
        await ctx.users.restore(first.id)
    assert_names(caught.value, "User", "email")
    assert (await ctx.users.get(first.id, include_deleted=True)).deleted_at is not None
    assert [user.id for user in (await ctx.users.find_many()).items] == [second.id]


async def test_a_taken_template_name_is_a_conflict_naming_name_on_create_update_and_restore(ctx):
    templates = ctx.character_templates
    data = {"style_type": "FANTASY", "base_prompt": "a warrior"}
    warrior = await templates.create({"name": "Warrior", **data})
    mage = await templates.create({"name": "Mage", **data})
    with pytest.raises(ConflictError) as caught:
        await templates.create({"name": "Warrior", **data})
    assert_names(caught.value, "CharacterTemplate", "name")
    with pytest.raises(ConflictError) as caught:
        await templates.update(mage.id, {"name": "Warrior"})
    assert_names(caught.value, "CharacterTemplate", "name")
    await templates.delete(warrior.id)
    await templates.update(mage.id, {"name": "Warrior"})
    with pytest.raises(ConflictError) as caught:
        await templates.restore(warrior.id)
    assert_names(caught.value, "CharacterTemplate", "name")
    assert (await templates.get(warrior.id, include_deleted=True)).deleted_at is not None
    assert await templates.count() == 1


async def test_a_code_file_path_taken_in_the_analysis_names_both_fields(ctx):
    request = await ctx.parsed_requests.create({"raw_input": "add a login page"})
    analysis = await ctx.project_analyses.create({"parsed_request_id": request.id, "project_name": "web"})
    other = await ctx.project_analyses.create({"parsed_request_id": request.id, "project_name": "api"})
    await ctx.code_files.create({"project_analysis_id": analysis.id, "path": "src/a.py"})
    elsewhere = await ctx.code_files.create({"project_analysis_id": other.id, "path": "src/a.py"})
    with pytest.raises(ConflictError) as caught:
        await ctx.code_files.create({"project_analysis_id": analysis.id, "path": "src/a.py"})
    assert_names(caught.value, "CodeFile", "project_analysis_id", "path")
    with pytest.raises(ConflictError) as caught:
        await ctx.code_files.update(elsewhere.id, {"project_analysis_id": analysis.id})
    assert_names(caught.value, "CodeFile", "project_analysis_id", "path")
    assert (await ctx.code_files.get(elsewhere.id)).project_analysis_id == other.id
    assert await ctx.code_files.count() == 2


async def test_an_ml_model_version_taken_by_the_owner_names_owner_name_and_version(ctx):
    owner = await make_user(ctx)
    data = {"owner_id": owner.id, "name": "resnet", "framework": "pytorch", "model_version": "1.0.0"}
    await ctx.ml_models.create(data)
    newer = await ctx.ml_models.create({**data, "model_version": "2.0.0"})
    with pytest.raises(ConflictError) as caught:
        await ctx.ml_models.create(data)
    assert_names(caught.value, "MLModel", "owner_id", "name", "model_version")
    with pytest.raises(ConflictError) as caught:
        await ctx.ml_models.update(newer.id, {"model_version": "1.0.0"})
    assert_names(caught.value, "MLModel", "owner_id", "name", "model_version")
    assert (await ctx.ml_models.get(newer.id)).model_version == "2.0.0"


async def test_a_taken_unique_column_names_its_field(ctx):
    entries = ctx.manager(CacheEntry)
    await entries.create({"key": "ns:one", "value": {"v": 1}})
    two = await entries.create({"key": "ns:two", "value": {"v": 2}})
    with pytest.raises(ConflictError) as caught:
        await entries.create({"key": "ns:one", "value": {"v": 3}})
    assert_names(caught.value, "CacheEntry", "key")
    with pytest.raises(ConflictError) as caught:
        await entries.update(two.id, {"key": "ns:one"})
    assert_names(caught.value, "CacheEntry", "key")
    assert sorted((entry.key, entry.value) for entry in await CacheEntry.all()) == [
        ("ns:one", {"v": 1}), ("ns:two", {"v": 2})
    ]


async def test_a_unique_rule_no_model_declares_is_named_by_its_columns(ctx):
    """A rule made by hand (or by another tool): the fields come from the columns the database reports."""
    connection = get_connection("default")
    await connection.execute_script(
        'CREATE TABLE "scratch_pair" ("a" INT NOT NULL, "b" VARCHAR(20) NOT NULL, "c" VARCHAR(20) NOT NULL, '
        'CONSTRAINT "scratch_pair_rule" UNIQUE ("a", "b"));'
        'CREATE UNIQUE INDEX "scratch_pair_lower_c" ON "scratch_pair" (lower("c"));'
    )
    try:
        await connection.execute_script("INSERT INTO \"scratch_pair\" VALUES (1, 'x', 'Q')")
        with pytest.raises(Exception) as caught:
            await connection.execute_script("INSERT INTO \"scratch_pair\" VALUES (1, 'x', 'R')")
        assert translate(caught.value, "Pair").fields == ("a", "b")
        if ctx.target.is_postgres:  # SQLite names only the index of an expression, no column
            with pytest.raises(Exception) as caught:
                await connection.execute_script("INSERT INTO \"scratch_pair\" VALUES (2, 'y', 'q')")
            assert translate(caught.value, "Pair").fields == ("c",)
    finally:
        await connection.execute_script('DROP TABLE "scratch_pair"')


# ------------------------------------------------------ concurrent get-or-create and upsert


async def _in_own_transaction(ctx, call):
    """``call()`` inside a caller's transaction that goes on writing afterwards (so it must not be aborted)."""
    async with ctx.transaction():
        result = await call()
        await ctx.manager(Article).create({"title": "written after", "author_id": str(result[0].id)})
        return result


def assert_one_row_one_creator(results, count: int) -> None:
    assert len({row.id for row, _ in results}) == 1
    assert [created for _, created in results].count(True) == 1
    assert count == 1


@pytest.mark.parametrize("in_transaction", [False, True], ids=["plain", "in_transaction"])
async def test_concurrent_get_or_create_on_one_key_returns_the_one_row(ctx, in_transaction):
    authors = ctx.manager(Author)

    def call(i):
        return lambda: authors.get_or_create({"name": f"caller {i}"}, email="ada@example.com")

    results = await asyncio.gather(
        *(_in_own_transaction(ctx, call(i)) if in_transaction else call(i)() for i in range(4))
    )
    assert_one_row_one_creator(results, await Author.all_objects.filter(email="ada@example.com").count())
    if in_transaction:
        assert await ctx.manager(Article).count() == 4


@pytest.mark.parametrize("in_transaction", [False, True], ids=["plain", "in_transaction"])
async def test_concurrent_upsert_on_one_key_returns_the_one_row_with_an_update_applied(ctx, in_transaction):
    authors = ctx.manager(Author)
    names = [f"caller {i}" for i in range(4)]

    def call(i):
        return lambda: authors.upsert({"name": names[i]}, email="ada@example.com")

    results = await asyncio.gather(
        *(_in_own_transaction(ctx, call(i)) if in_transaction else call(i)() for i in range(4))
    )
    assert_one_row_one_creator(results, await Author.all_objects.filter(email="ada@example.com").count())
    stored = await authors.get(results[0][0].id)
    assert stored.name in names
    assert stored.version == 4  # created once, then each of the other three callers' names applied
    if in_transaction:
        assert await ctx.manager(Article).count() == 4


async def test_get_or_create_still_raises_a_conflict_on_another_unique_field(ctx):
    await make_user(ctx)
    with pytest.raises(ConflictError) as caught:
        await ctx.users.get_or_create({"username": "ada", "password_hash": await ctx.users.hash_password("pw-123456")},
                                      email="bob@example.com")
    assert_names(caught.value, "User", "username")
    assert await ctx.users.count() == 1


async def test_concurrent_set_value_on_a_new_configuration_key_keeps_one_row(ctx):
    """``configurations.set_value`` reads then writes: four callers racing on a new key all succeed."""
    results = await asyncio.gather(*(ctx.configurations.set_value("race.key", {"n": n}) for n in range(4)))
    rows = await ctx.configurations.find_many({"key": "race.key"})
    assert rows.total == 1 and {r.pk for r in results} == {rows.items[0].pk}
    assert rows.items[0].value in [{"n": n} for n in range(4)]


async def test_get_or_create_and_upsert_find_a_case_insensitive_key_in_any_case(ctx):
    """The users' email is unique among live rows in any case: looking it up in another case finds the row."""
    user = await ctx.users.create_user("Case@Example.com", "a long passphrase", username="cased")

    found, created = await ctx.users.get_or_create({"username": "other"}, email="CASE@EXAMPLE.COM")
    assert (found.id, created) == (user.id, False)
    updated, created = await ctx.users.upsert({"first_name": "Ada"}, email="case@EXAMPLE.com")
    assert (updated.id, created, updated.first_name) == (user.id, False, "Ada")
    assert (await ctx.users.find_many()).total == 1
