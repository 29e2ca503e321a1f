from tests.models import Article


async def test_create_then_get_returns_the_row(ctx):
    articles = ctx.manager(Article)
    created = await articles.create({"title": "Hello"})
    fetched = await articles.get(created.id)
    assert fetched.title == "Hello"
    assert fetched.version == 1
