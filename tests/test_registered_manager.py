import tests.managers  # noqa: F401 - defining the subclass registers it
from tests.managers import LabelManager
from tests.models import Label


async def test_a_registered_subclass_serves_its_model_under_its_name(ctx):
    assert isinstance(ctx.tags, LabelManager)
    assert ctx.manager(Label) is ctx.tags
    await ctx.tags.bulk_create([{"name": "a"}, {"name": "b", "colour": "red"}])
    assert await ctx.tags.recolour("grey", "blue") == 1
    assert sorted((t.name, t.colour) for t in (await ctx.tags.find_many(sort_by="name")).items) == [
        ("a", "blue"), ("b", "red")
    ]


async def test_a_manager_registered_after_the_context_opened_is_picked_up(ctx):
    from datalayer import ModelManager
    from tests.models import Comment

    generic = ctx.manager(Comment)
    assert type(generic) is ModelManager and ctx.comments is generic

    class CommentManager(ModelManager[Comment]):
        model = Comment
        name = "remarks"

    try:
        assert isinstance(ctx.remarks, CommentManager)
        assert ctx.manager(Comment) is ctx.remarks
    finally:
        from datalayer.managers.registry import unregister
        unregister(Comment)
