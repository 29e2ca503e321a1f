"""Character templates, the per-tier daily quota (also under concurrency) and the public gallery."""

import asyncio

import pytest

from datalayer import ConflictError, NotFoundError, ValidationError
from datalayer.characters.managers import LISTING_FIELDS, QuotaExceededError
from datalayer.characters.models import GenerationStatus


async def make_user(ctx, name="fay", tier="free"):
    return await ctx.users.create_user(f"{name}@example.com", "password123", username=name, subscription_tier=tier)


@pytest.fixture
async def template(ctx):
    return await ctx.character_templates.create({"name": "Fantasy Warrior", "style_type": "FANTASY",
                                                 "base_prompt": "a warrior in full armour"})


async def test_template_names_are_unique_and_findable(ctx, template):
    assert (await ctx.character_templates.find_by_name("Fantasy Warrior")).id == template.id
    with pytest.raises(ConflictError):
        await ctx.character_templates.create({"name": "Fantasy Warrior", "style_type": "ANIME",
                                              "base_prompt": "x"})


async def test_create_for_user_sets_the_owner_and_defaults(ctx, template):
    user = await make_user(ctx)
    character = await ctx.characters.create_for_user(user.id, {"name": "Hero", "prompt": "a hero",
                                                               "template_id": template.id, "style_type": "FANTASY"})
    assert character.user_id == user.id and character.generation_status is GenerationStatus.PENDING
    assert not character.is_public and character.metadata == {}
    with pytest.raises(ValidationError) as info:
        await ctx.characters.create_for_user(user.id, {"name": "x", "prompt": "y", "user_id": user.id})
    assert "user_id" in info.value.errors


async def test_free_user_gets_three_characters_a_day(ctx):
    user = await make_user(ctx)
    for i in range(3):
        await ctx.characters.create_for_user(user.id, {"name": f"c{i}", "prompt": "p"})
    with pytest.raises(QuotaExceededError) as info:
        await ctx.characters.create_for_user(user.id, {"name": "c4", "prompt": "p"})
    assert "daily_quota" in info.value.errors and info.value.quota == 3
    assert await ctx.characters.created_today(user.id) == 3


async def test_deleting_a_character_does_not_give_quota_back(ctx):
    user = await make_user(ctx)
    created = [await ctx.characters.create_for_user(user.id, {"name": f"c{i}", "prompt": "p"}) for i in range(3)]
    await ctx.characters.delete(created[0].id)
    with pytest.raises(QuotaExceededError):
        await ctx.characters.create_for_user(user.id, {"name": "again", "prompt": "p"})


async def test_premium_and_pro_quotas(ctx):
    premium, pro = await make_user(ctx, "prem", "premium"), await make_user(ctx, "pro", "pro")
    for i in range(15):
        await ctx.characters.create_for_user(premium.id, {"name": f"c{i}", "prompt": "p"})
    with pytest.raises(QuotaExceededError):
        await ctx.characters.create_for_user(premium.id, {"name": "x", "prompt": "p"})
    await ctx.characters.create_for_user(pro.id, {"name": "x", "prompt": "p"})
    assert pro.daily_quota == 50


async def test_thirty_concurrent_requests_by_a_free_user_create_exactly_three(ctx):
    user = await make_user(ctx)
    results = await asyncio.gather(
        *(ctx.characters.create_for_user(user.id, {"name": f"c{i}", "prompt": "p"}) for i in range(30)),
        return_exceptions=True,
    )
    created = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(created) == 3
    assert len(refused) == 27 and all(isinstance(r, QuotaExceededError) for r in refused)
    assert await ctx.characters.count({"user_id": user.id}) == 3


async def test_create_for_unknown_or_deactivated_user_is_refused(ctx):
    with pytest.raises(NotFoundError):
        await ctx.characters.create_for_user("00000000-0000-0000-0000-000000000001", {"name": "x", "prompt": "p"})
    user = await make_user(ctx)
    await ctx.users.deactivate_user(user.id)
    with pytest.raises(ValidationError):
        await ctx.characters.create_for_user(user.id, {"name": "x", "prompt": "p"})


async def test_find_public_pages_listing_fields_only_newest_first(ctx):
    user = await make_user(ctx, tier="pro")
    for i in range(5):
        await ctx.characters.create_for_user(user.id, {"name": f"pub{i}", "prompt": "secret prompt",
                                                       "is_public": True, "thumbnail_url": f"https://t/{i}.png"})
    await ctx.characters.create_for_user(user.id, {"name": "private", "prompt": "p"})
    first = await ctx.characters.find_public(page=1, limit=2)
    assert first.total == 5 and first.pages == 3
    assert [row["name"] for row in first.items] == ["pub4", "pub3"]
    assert set(first.items[0]) == set(LISTING_FIELDS) and "prompt" not in first.items[0]
    last = await ctx.characters.find_public(page=3, limit=2)
    assert [row["name"] for row in last.items] == ["pub0"]
    with pytest.raises(ValidationError):
        await ctx.characters.find_public(page=0)


async def test_soft_deleted_template_is_hidden_but_its_characters_stay_reachable(ctx, template):
    user = await make_user(ctx)
    character = await ctx.characters.create_for_user(user.id, {"name": "c", "prompt": "p",
                                                               "template_id": template.id})
    await ctx.character_templates.delete(template.id)
    assert await ctx.character_templates.find_by_name("Fantasy Warrior") is None
    assert (await ctx.characters.get(character.id)).template_id == template.id
    assert [c.id for c in await ctx.characters.find_by_user(user.id)] == [character.id]
