"""Seed sets: idempotent by natural key, all or nothing, --force and --clear, real bcrypt passwords."""

from __future__ import annotations

import json
import re

import pytest

from datalayer import Character, CharacterTemplate, TaskStatus, User, introspect
from datalayer.errors import ConfigurationError, ValidationError
from datalayer.security.passwords import is_bcrypt_hash
from datalayer.seeding import SEED_ACTOR, SEEDS_DIR, SeedError, clear, load_seed_set, seed


async def snapshot(ctx) -> dict[str, list[dict]]:
    """Every row of every table, in a stable order (what a user would compare)."""
    tables = {}
    for model in ctx.models:
        rows = await introspect.every_row(model).order_by(model._meta.pk_attr).values()
        tables[model._meta.db_table] = rows
    return tables


async def test_development_seed_has_the_templates_users_and_tasks_in_every_status(ctx):
    report = await seed(ctx, load_seed_set("development"))

    assert report.counts() == {"created": load_seed_set("development").count()}
    assert await ctx.character_templates.count() == 10
    users = {u.email: u for u in await User.all()}
    assert len(users) == 5
    assert (users["admin@example.com"].subscription_tier.value, users["admin@example.com"].daily_quota) == ("pro", 50)
    assert (users["premium.tester@example.com"].daily_quota, users["free.user@example.com"].daily_quota) == (15, 3)
    assert {t.status for t in await ctx.tasks.query()} == set(TaskStatus)
    assert await ctx.ml_models.count() == 3 and await ctx.endpoint_configs.count() == 3
    assert await ctx.characters.count() == 8


async def test_seeding_twice_gives_identical_rows(ctx):
    seed_set = load_seed_set("development")
    await seed(ctx, seed_set)
    before = await snapshot(ctx)

    again = await seed(ctx, seed_set)

    assert again.counts() == {"unchanged": seed_set.count()}
    assert again.generated_passwords == {}
    assert await snapshot(ctx) == before


async def test_seeded_users_get_bcrypt_hashes_of_given_or_generated_passwords(ctx):
    report = await seed(ctx, load_seed_set("development"))

    assert list(report.generated_passwords) == ["admin@example.com"]
    for user in await User.all():
        assert is_bcrypt_hash(user.password_hash)
    assert await ctx.users.authenticate("premium.tester@example.com", "premium-tester-pw") is not None
    generated = report.generated_passwords["admin@example.com"]
    assert await ctx.users.authenticate("admin@example.com", generated) is not None


async def test_a_differing_row_is_left_alone_unless_forced(ctx):
    seed_set = load_seed_set("test")
    await seed(ctx, seed_set)
    template = await ctx.character_templates.find_one({"name": "Fantasy Mage"})
    await ctx.character_templates.update(template.id, {"description": "edited by hand"})
    alice = await ctx.users.find_by_email("alice@test.example")
    await ctx.users.change_password(alice.id, "a-new-password")

    plain = await seed(ctx, seed_set)
    assert plain.counts()["differs"] == 2
    assert (await ctx.character_templates.get(template.id)).description == "edited by hand"

    forced = await seed(ctx, seed_set, force=True)
    assert forced.counts()["updated"] == 2
    assert (await ctx.character_templates.get(template.id)).description != "edited by hand"
    assert await ctx.users.authenticate("alice@test.example", "alice-password") is not None


async def test_clear_removes_seeded_rows_and_leaves_what_users_created(ctx):
    seed_set = load_seed_set("test")
    await seed(ctx, seed_set)
    mine = await ctx.character_templates.create({"name": "My Own Template", "style_type": "ANIME", "base_prompt": "x"})
    mage = await ctx.character_templates.find_one({"name": "Fantasy Mage"})
    bob = await ctx.users.find_by_email("bob@test.example")
    drawing = await ctx.characters.create({"user_id": bob.id, "template_id": mage.id, "name": "Bob's own", "prompt": "p"})

    report = await clear(ctx, seed_set)

    assert await ctx.character_templates.get(mine.id)
    assert await ctx.characters.get(drawing.id)
    kept = {(o.model, o.key) for o in report.outcomes if o.action == "kept"}
    assert ("CharacterTemplate", "name=Fantasy Mage") in kept and ("User", "email=bob@test.example") in kept
    assert await CharacterTemplate.all_objects.filter(created_by=SEED_ACTOR).count() == 1  # only the mage
    assert await User.all_objects.filter(email="alice@test.example").count() == 0
    assert await Character.all_objects.filter(created_by=SEED_ACTOR).count() == 0


async def test_clear_leaves_a_row_a_user_created_with_a_seed_key(ctx):
    await ctx.character_templates.create({"name": "Fantasy Mage", "style_type": "FANTASY", "base_prompt": "mine"})
    seed_set = load_seed_set("test")
    await seed(ctx, seed_set)  # the template exists: not created, reported unchanged or differs

    await clear(ctx, seed_set)

    assert (await ctx.character_templates.find_one({"name": "Fantasy Mage"})).base_prompt == "mine"


async def test_a_seed_failing_half_way_leaves_nothing(ctx, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"include": [str(SEEDS_DIR / "characters" / "reference" / "character_templates.json")],
                                  "records": [
        {"model": "User", "key": ["email"], "rows": [{"email": "c@x.example", "username": "carol", "password": "carol-password"}]},
        {"model": "Character", "key": ["user", "name"],
         "rows": [{"user": {"email": "nobody@x.example"}, "name": "orphan", "prompt": "p"}]},
    ]}))
    before = await snapshot(ctx)

    with pytest.raises(SeedError, match="nobody@x.example"):
        await seed(ctx, load_seed_set(str(broken)))

    assert await snapshot(ctx) == before


@pytest.mark.parametrize("email, username", [
    ("n\u0000ul@x.example", "nul"), ("long@x.example", "x" * 100_000), ("\ud800@x.example", "surrogate"),
    ("fine@x.example", 42),
], ids=["nul-in-key", "over-long", "surrogate-in-key", "wrong-type"])
async def test_a_bad_seed_value_names_the_file_row_and_field_and_writes_nothing(ctx, tmp_path, email, username):
    source = tmp_path / "hostile.json"
    source.write_text(json.dumps({"records": [{"model": "User", "key": ["email"], "rows": [
        {"email": "good@x.example", "username": "good", "password": "good-password"},
        {"email": email, "username": username, "password": "bad-password"},
    ]}]}))
    before = await snapshot(ctx)

    with pytest.raises(ValidationError) as caught:
        await seed(ctx, load_seed_set(str(source)))

    [field] = caught.value.errors
    assert field.startswith("hostile.json: User.rows[1].") and field.rsplit(".", 1)[1] in ("email", "username")
    assert len(str(caught.value)) < 500, "the error does not echo a 100,000-character value"
    assert await snapshot(ctx) == before


@pytest.mark.parametrize("document, says", [
    ([1, 2], "expected an object"), ({"records": {"model": "User"}}, '"records" must be an array'),
    ({"records": [1]}, "records[0] must be an object"), ({"include": "x.json"}, '"include" must be an array'),
    ({"records": [{"model": "User", "key": "email", "rows": []}]}, '"key" must be a non-empty array'),
    ({"records": [{"model": "User", "key": ["email"], "rows": [["a"]]}]}, '"rows" must be an array of objects'),
])
def test_a_seed_file_of_the_wrong_shape_is_a_configuration_error_naming_it(tmp_path, document, says):
    source = tmp_path / "shape.json"
    source.write_text(json.dumps(document))
    with pytest.raises(ConfigurationError, match="shape.json: .*" + re.escape(says)):
        load_seed_set(str(source))


def test_two_rows_with_the_same_natural_key_in_one_file_are_refused(tmp_path):
    source = tmp_path / "twice.json"
    source.write_text(json.dumps({"records": [{"model": "CharacterTemplate", "key": ["name"], "rows": [
        {"name": "D1", "style_type": "FANTASY", "base_prompt": "one"}, {"name": "other", "style_type": "FANTASY",
        "base_prompt": "x"}, {"name": "D1", "style_type": "FANTASY", "base_prompt": "two"}]}]}))
    with pytest.raises(ConfigurationError, match=r"twice.json: records\[0\] rows 0 and 2 have the same"):
        load_seed_set(str(source))


async def test_a_relation_lookup_must_name_one_row_through_the_filter_allow_list(ctx, tmp_path):
    await ctx.users.create_user("one@x.example", "a long passphrase", username="same")
    await ctx.users.create_user("two@x.example", "a long passphrase", username="other")
    before = await snapshot(ctx)
    for lookup, says in (({"is_active": True}, "more than one row"), ({"password_hash": "x"}, "password_hash"),
                         ({}, "at least one field")):
        source = tmp_path / "lookup.json"
        source.write_text(json.dumps({"records": [{"model": "Character", "key": ["user", "name"], "rows": [
            {"user": lookup, "name": "c", "prompt": "p"}]}]}))
        with pytest.raises((SeedError, ValidationError), match=says):
            await seed(ctx, load_seed_set(str(source)))
        assert await snapshot(ctx) == before


def test_production_seed_is_reference_data_only():
    seed_set = load_seed_set("production")
    assert {block.model for block in seed_set.blocks} == {"CharacterTemplate", "Configuration"}
    assert sum(len(b.rows) for b in seed_set.blocks if b.model == "CharacterTemplate") == 10


def test_unknown_environment_names_the_choices():
    with pytest.raises(ConfigurationError, match="development, test, production"):
        load_seed_set("staging")
