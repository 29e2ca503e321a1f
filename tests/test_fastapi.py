"""FastAPI apps driven over ASGI with httpx against the real database: rows are served without their secret
fields (with or without a response model, in pages, with relations), datalayer errors become the HTTP answers
the OpenAPI document lists, /health is 200 while the database answers, and a database lost during requests
answers 503 without the driver's text."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import uuid
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from datalayer import ApiKey, Page, User, close_context, schema_out, to_schema
from datalayer.integrations.fastapi import (
    Context,
    ErrorBody,
    ValidationErrorBody,
    datalayer_lifespan,
    health_router,
    install_error_handlers,
)
from examples.fastapi_app import create_app
from tests.conftest import create_pg_database, drop_pg_database, make_settings
from tests.private_postgres import PrivatePostgres


@asynccontextmanager
async def running(app):
    """Run the app's lifespan (ASGITransport does not) and hand back a client."""
    async with (app.router.lifespan_context(app),
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client):
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
            user = await client.get(f"/users/{uuid.uuid4()}")
    finally:
        server.destroy()
    assert health.status_code == 503
    assert health.json()["status"] == "unhealthy"
    assert health.json()["checks"]["connectivity"]["error"]
    assert "app-password" not in health.text
    assert live.status_code == 503
    assert user.status_code == 503 and user.json()["error"] == "DatabaseUnavailableError"
    assert "app-password" not in user.text and "Error:" not in user.text


class NewUser(BaseModel):
    email: str
    username: str
    password: str


def users_app(lifespan=None) -> FastAPI:
    """Routes as an app writes them: rows returned as they come from the managers."""
    app = FastAPI(lifespan=lifespan)
    app.include_router(health_router())
    install_error_handlers(app)

    @app.get("/users/{user_id}")
    async def read_user(user_id: uuid.UUID, ctx: Context):  # no response model, no return annotation
        return await ctx.users.get(user_id)

    @app.get("/users", response_model=Page[User])
    async def list_users(ctx: Context, page: int = 1, limit: int = 20):
        return await ctx.users.find_many(page=page, limit=limit, sort_by="username")

    @app.get("/all-users")
    async def all_users(ctx: Context):  # a bare Page, no response model
        return await ctx.users.find_many(sort_by="username")

    @app.post("/users", status_code=201)
    async def create_user(data: NewUser, ctx: Context) -> User:
        return await ctx.users.create_user(data.email, data.password, username=data.username)

    @app.get("/users/{user_id}/keys", response_model=schema_out(User, relations=("api_keys",)))
    async def user_with_keys(user_id: uuid.UUID, ctx: Context):
        return await to_schema(await ctx.users.get(user_id), relations=("api_keys",))

    @app.get("/keys/{key_id}", response_model=ApiKey.schema_out(relations=("user",)))
    async def key_with_user(key_id: uuid.UUID, ctx: Context):
        return await (await ctx.api_keys.get(key_id)).to_schema(relations=("user",))

    @app.get("/user-count")
    async def user_count(ctx: Context) -> int:  # Tortoise used directly, past the managers
        return await User.all().count()

    @app.get("/double")
    async def double(n: int) -> int:  # no database at all
        return 2 * n

    return app


async def test_a_user_returned_without_response_model_is_served_without_password_hash(ctx):
    user = await ctx.users.create_user("ann@example.com", "a long passphrase", username="ann")
    async with running(users_app()) as client:
        answer = await client.get(f"/users/{user.id}")
        bare_page = await client.get("/all-users")
    assert answer.status_code == 200
    assert answer.json()["email"] == "ann@example.com" and answer.json()["id"] == str(user.id)
    for text in (answer.text, bare_page.text):
        assert "password_hash" not in text and user.password_hash not in text and "$2b$" not in text
    assert [u["username"] for u in bare_page.json()["items"]] == ["ann"]


async def test_page_of_users_as_response_model_serves_its_items_without_password_hash(ctx):
    for name in ("cat", "ann", "bob"):
        await ctx.users.create_user(f"{name}@example.com", "a long passphrase", username=name)
    async with running(users_app()) as client:
        answer = await client.get("/users", params={"limit": 2, "page": 2})
        created = await client.post("/users", json={"email": "dan@example.com", "username": "dan",
                                                    "password": "a long passphrase"})
    body = answer.json()
    assert answer.status_code == 200
    assert [u["username"] for u in body["items"]] == ["cat"]
    assert (body["total"], body["page"], body["limit"], body["pages"], body["has_next"], body["has_prev"]) == (
        3, 2, 2, 2, False, True)
    assert "password_hash" not in answer.text and "$2b$" not in answer.text
    assert created.status_code == 201 and created.json()["username"] == "dan"
    assert "password_hash" not in created.text and "$2b$" not in created.text


async def test_relations_are_served_on_request_without_their_secrets(ctx):
    user = await ctx.users.create_user("kim@example.com", "a long passphrase", username="kim")
    key, plaintext = await ctx.api_keys.issue(user.id, "ci", ["models:read"])
    revoked, _ = await ctx.api_keys.issue(user.id, "old", [])
    await ctx.api_keys.delete(revoked.id)
    async with running(users_app()) as client:
        with_keys = await client.get(f"/users/{user.id}/keys")
        with_user = await client.get(f"/keys/{key.id}")
    assert with_keys.status_code == 200 and with_user.status_code == 200
    assert [k["name"] for k in with_keys.json()["api_keys"]] == ["ci"]  # soft-deleted keys stay hidden
    assert with_user.json()["user"]["username"] == "kim" and with_user.json()["user_id"] == str(user.id)
    for text in (with_keys.text, with_user.text):
        for secret in ("password_hash", "key_hash", "$2b$", key.key_hash, plaintext):
            assert secret not in text


async def test_datalayer_errors_answer_with_the_documented_bodies(ctx):
    await ctx.users.create_user("ann@example.com", "a long passphrase", username="ann")
    async with running(users_app()) as client:
        missing = await client.get(f"/users/{uuid.uuid4()}")
        taken = await client.post("/users", json={"email": "ann@example.com", "username": "ann2",
                                                  "password": "a long passphrase"})
        too_many = await client.get("/users", params={"limit": 1000})
        not_a_number = await client.get("/users", params={"page": "two"})
        no_body = await client.post("/users")
    assert missing.status_code == 404 and missing.json()["error"] == "NotFoundError"
    assert taken.status_code == 409 and taken.json()["error"] == "ConflictError" and "email" in taken.json()["detail"]
    for answer in (missing, taken):
        assert set(answer.json()) == {"error", "detail"}
        ErrorBody.model_validate(answer.json())
    assert too_many.status_code == 422 and "limit" in too_many.json()["fields"]
    assert not_a_number.status_code == 422 and "query.page" in not_a_number.json()["fields"]
    assert no_body.status_code == 422 and no_body.json()["fields"]
    for answer in (too_many, not_a_number, no_body):  # datalayer's and FastAPI's own: one 422 shape
        assert answer.json()["error"] == "ValidationError"
        assert set(answer.json()) == {"error", "detail", "fields"}
        ValidationErrorBody.model_validate(answer.json())


def test_openapi_lists_404_409_422_503_with_datalayers_error_body():
    document = users_app().openapi()
    schemas = document["components"]["schemas"]
    error = {"$ref": "#/components/schemas/ErrorBody"}
    invalid = {"$ref": "#/components/schemas/ValidationErrorBody"}
    for path, method in (("/users/{user_id}", "get"), ("/users", "get"), ("/users", "post"), ("/keys/{key_id}", "get")):
        answers = document["paths"][path][method]["responses"]
        assert list(answers)[1:] == ["404", "409", "422", "503"] and next(iter(answers)) in {"200", "201"}, path
        for code, body in (("404", error), ("409", error), ("422", invalid), ("503", error)):
            assert answers[code]["content"]["application/json"]["schema"] == body, (path, code)
            assert answers[code]["description"]
    assert set(schemas["ErrorBody"]["properties"]) == {"error", "detail"}
    assert set(schemas["ValidationErrorBody"]["properties"]) == {"error", "detail", "fields"}
    assert schemas["ValidationErrorBody"]["properties"]["fields"]["additionalProperties"] == {"type": "string"}
    double = document["paths"]["/double"]["get"]["responses"]  # no database: only its request's 422
    assert set(double) == {"200", "422"} and double["422"]["content"]["application/json"]["schema"] == invalid
    assert "HTTPValidationError" not in json.dumps(document)
    assert "503" in document["paths"]["/health"]["get"]["responses"]
    page = document["paths"]["/users"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    items = schemas[page.rsplit("/", 1)[1]]["properties"]["items"]["items"]["$ref"]
    assert set(schemas[items.rsplit("/", 1)[1]]["properties"]) >= {"id", "email", "username"}
    assert "password_hash" not in json.dumps(document) and "key_hash" not in json.dumps(document)


@pytest.mark.postgres_only
async def test_a_database_dropped_during_requests_answers_503_without_driver_text(backend):
    url = await create_pg_database("datalayer_lost")
    await close_context()
    app = users_app(lifespan=datalayer_lifespan(make_settings(url), migrate=True))
    try:
        async with running(app) as client:
            user = await app.state.datalayer.users.create_user("ann@example.com", "a long passphrase", username="ann")
            before = await client.get(f"/users/{user.id}")
            await drop_pg_database(url)  # WITH (FORCE): the app's connections are cut, new ones refused
            answers = [await client.get(f"/users/{user.id}"), await client.get("/users"),
                       await client.post("/users", json={"email": "b@example.com", "username": "bob",
                                                         "password": "a long passphrase"}),
                       await client.get("/user-count")]
    finally:
        await drop_pg_database(url)
    assert before.status_code == 200
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.json() == {"error": "DatabaseUnavailableError",
                                 "detail": "the database is unavailable; retry shortly"}
        for driver_text in ("InvalidCatalogName", "AdminShutdown", "ConnectionDoesNotExist", "asyncpg", "does not exist",
                            "terminat", url.rsplit("/", 1)[1]):
            assert driver_text not in answer.text


EXAMPLE_DRIVER = textwrap.dedent("""
    import asyncio, json, httpx
    from notes.api import create_app

    async def main():
        app = create_app()
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
                user = await app.state.datalayer.users.create_user("api@example.com", "a long passphrase",
                                                                   username="api")
                answers = {"user": await client.get(f"/users/{user.id}")}
                answers["notebook"] = await client.post("/notebooks", json={"owner_id": str(user.id), "title": "Ideas"})
                notebook = answers["notebook"].json()["id"]
                answers["note"] = await client.post(f"/notebooks/{notebook}/notes", json={"body": "one"})
                answers["page"] = await client.get("/notebooks", params={"q": "idea"})
                answers["nested"] = await client.get(f"/notebooks/{notebook}")
                answers["again"] = await client.post("/notebooks", json={"owner_id": str(user.id), "title": "Ideas"})
                answers["missing"] = await client.get(f"/notebooks/{user.id}")
                answers["openapi"] = await client.get("/openapi.json")
        print(json.dumps({name: [answer.status_code, answer.json()] for name, answer in answers.items()}))

    asyncio.run(main())
""")


async def python_in(folder, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python *args`` run in ``folder``, as the app's own process (off the event loop)."""
    return await asyncio.to_thread(subprocess.run, [sys.executable, *args], cwd=folder, env=env, capture_output=True,
                                   text=True, timeout=120, check=False)


async def test_the_example_apps_api_serves_its_notes_without_secrets(app_folder, empty_database_url):
    env = {**os.environ, "DATABASE_URL": empty_database_url, "DATALAYER_ENV": "test", "BCRYPT_ROUNDS": "4"}
    run = await python_in(app_folder, env, "-c", EXAMPLE_DRIVER)
    assert run.returncode == 0, run.stdout + run.stderr
    answers = json.loads(run.stdout.strip().splitlines()[-1])
    assert answers["user"][0] == 200 and answers["user"][1]["username"] == "api"
    assert answers["notebook"][0] == 201 and answers["note"][0] == 201
    assert answers["page"][0] == 200 and [n["title"] for n in answers["page"][1]["items"]] == ["Ideas"]
    nested = answers["nested"][1]
    assert answers["nested"][0] == 200 and [n["body"] for n in nested["notes"]] == ["one"]
    assert nested["owner"]["email"] == "api@example.com"
    assert answers["again"][0] == 409 and answers["missing"][0] == 404
    assert "503" in answers["openapi"][1]["paths"]["/notebooks/{notebook_id}"]["get"]["responses"]
    assert "password_hash" not in run.stdout and "$2b$" not in run.stdout
    main = await python_in(app_folder, env, "main.py")  # the app's main job still runs beside its API
    assert main.returncode == 0, main.stderr
    assert "note(s) in 'Reading list' for reader@example.com" in main.stdout
