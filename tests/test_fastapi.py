"""The example FastAPI app driven over ASGI with httpx against the real database: /health is 200 while the
database answers and 503 once it is gone; datalayer errors become HTTP answers."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager

import httpx

from datalayer import close_context
from examples.fastapi_app import create_app
from tests.conftest import make_settings
from tests.private_postgres import PrivatePostgres


@asynccontextmanager
async def running(app):
    """Run the app's lifespan (ASGITransport does not) and hand back a client."""
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
            yield client


async def test_health_is_200_with_the_report_on_the_live_database(backend):
    await close_context()
    async with running(create_app(backend.settings)) as client:
        health = await client.get("/health")
        live = await client.get("/health/live")
        stats = await client.get("/stats")
        missing = await client.get(f"/users/{uuid.uuid4()}")
    assert health.status_code == 200
    assert health.json()["status"] == "healthy"
    assert set(health.json()["checks"]) == {"connectivity", "latency", "tables", "migrations", "cache", "pool"}
    assert (live.status_code, live.json()) == (200, {"status": "alive"})
    assert stats.status_code == 200 and stats.json()["pool"]["engine"] == backend.name
    assert missing.status_code == 404 and missing.json()["error"] == "NotFoundError"


async def test_health_is_503_once_the_database_is_gone():
    server = PrivatePostgres()
    server.start()
    await close_context()
    try:
        app = create_app(make_settings(server.url("app-password"), DB_CONNECTION_TIMEOUT_MS=2000))
        async with running(app) as client:
            assert (await client.get("/health")).status_code == 200
            server.stop()
            health = await client.get("/health")
            live = await client.get("/health/live")
    finally:
        server.destroy()
    assert health.status_code == 503
    assert health.json()["status"] == "unhealthy"
    assert health.json()["checks"]["connectivity"]["error"]
    assert "app-password" not in health.text
    assert live.status_code == 503
