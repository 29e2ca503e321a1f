import asyncio
import socket

import pytest

from datalayer import DatabaseUnavailableError, close_context, connection_events, get_context
from tests.conftest import TEST_MODELS, make_settings
from tests.models import Article


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_startup_against_a_closed_port_retries_then_names_where_it_tried():
    await close_context()
    port = closed_port()
    settings = make_settings(f"postgres://svc:hunter2-secret@127.0.0.1:{port}/appdb",
                             DB_RETRY_ATTEMPTS=3, DB_RETRY_DELAY=10)
    events = []
    unsubscribe = connection_events.subscribe(events.append)
    try:
        with pytest.raises(DatabaseUnavailableError) as caught:
            await get_context(settings=settings)
    finally:
        unsubscribe()
    message = str(caught.value)
    assert f"127.0.0.1:{port}/appdb" in message and "3 attempt" in message
    assert "hunter2-secret" not in message
    kinds = [e.kind for e in events]
    assert kinds == ["retrying", "retrying", "gave_up"]
    assert [e.attempt for e in events] == [1, 2, 3]
    assert all(e.delay > 0 for e in events[:2]) and events[1].delay > 0
    assert all("hunter2-secret" not in (e.error or "") + e.target for e in events)


async def test_close_then_get_context_opens_again(ctx, backend):
    article = await ctx.manager(Article).create({"title": "kept"})
    events = []
    unsubscribe = connection_events.subscribe(events.append)
    try:
        await close_context()
        assert ctx.closed
        reopened = await get_context(settings=backend.settings, models=TEST_MODELS)
    finally:
        unsubscribe()
    assert reopened is not ctx
    assert (await reopened.manager(Article).get(article.id)).title == "kept"
    assert [e.kind for e in events] == ["closed", "connected"]


async def test_concurrent_first_callers_share_one_init(backend):
    await close_context()
    events = []
    unsubscribe = connection_events.subscribe(events.append)
    try:
        contexts = await asyncio.gather(*(
            get_context(settings=backend.settings, models=TEST_MODELS) for _ in range(10)
        ))
    finally:
        unsubscribe()
    assert len({id(c) for c in contexts}) == 1
    assert [e.kind for e in events] == ["connected"]


async def test_tasks_started_before_init_see_the_database(backend):
    await close_context()
    ready = asyncio.Event()

    async def request_handler():  # created before init, like a server's request task
        await ready.wait()
        return await Article.all().count()

    handler = asyncio.ensure_future(request_handler())
    await asyncio.sleep(0)
    await get_context(settings=backend.settings, models=TEST_MODELS)
    ready.set()
    assert await handler == await Article.all().count()


async def test_no_part_of_the_password_reaches_a_debug_log(caplog, tmp_path):
    """Tortoise logs its connection config at DEBUG, masking two thirds of a string password."""
    import logging

    from datalayer import close_context, get_context
    from tests.conftest import PG_ADMIN_URL, make_settings

    secret = "Sup3rSecretPassw0rd"
    url = PG_ADMIN_URL.replace("postgres@", f"postgres:{secret}@")  # trust auth accepts any password
    await close_context()
    with caplog.at_level(logging.DEBUG):
        ctx = await get_context(settings=make_settings(url), models=())
        try:
            assert await ctx.raw("SELECT 1 AS one") == [{"one": 1}]
        finally:
            await close_context()
    logged = caplog.text
    assert "Tortoise-ORM startup" in logged, "Tortoise logged its connection config"
    assert secret[:6] not in logged and secret not in logged
