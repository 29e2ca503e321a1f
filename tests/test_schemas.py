"""Output schemas: a row leaves the process without its secret fields however it is serialised (its schema,
pydantic, ``dict()``, FastAPI's encoder, a ``Page``, ``repr``), and relations are nested only on request."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from typing import Any

import pydantic
import pytest
from fastapi.encoders import jsonable_encoder
from pydantic import TypeAdapter

from datalayer import ApiKey, Chunk, Page, Session, User, ValidationError, schema_out, to_schema
from datalayer.ml.models import StoredModel
from tests.models import Article, Author, CachedNote, Comment


def every_way_of_showing(row: Any) -> dict[str, str]:
    """The text of a row through each way an app may serialise or print it."""
    model = type(row)
    return {
        "schema": schema_out(model).model_validate(row).model_dump_json(),
        "dict": repr(dict(row)),
        "jsonable_encoder": json.dumps(jsonable_encoder(row)),
        "pydantic typed": TypeAdapter(model).dump_json(row).decode(),
        "pydantic python mode": repr(TypeAdapter(model).dump_python(row)),
        "pydantic untyped": TypeAdapter(list[Any]).dump_json([row]).decode(),
        "bare page": Page(items=[row], total=1, page=1, limit=20).model_dump_json(),
        "typed page": Page[model](items=[row], total=1, page=1, limit=20).model_dump_json(),  # type: ignore[valid-type]
        "chunk": Chunk(items=[row], next_cursor=None).model_dump_json(),
        "repr": repr(row),
        "str": str(row),
    }


def assert_hidden(shown: dict[str, str], *secrets: str) -> None:
    for way, text in shown.items():
        for secret in secrets:
            assert secret not in text, f"{secret!r} shown by {way}: {text}"


def test_every_models_output_schema_leaves_out_its_secret_fields():
    for model, secret in ((User, "password_hash"), (Session, "token_hash"), (ApiKey, "key_hash"),
                          (StoredModel, "encryption_key_wrapped"), (Author, "password_hash")):
        shown = schema_out(model).model_fields
        assert secret not in shown and "id" in shown, model
        assert secret in schema_out(model, include_secrets=True).model_fields
        assert secret not in schema_out(model).model_json_schema(mode="serialization")["properties"]


async def test_a_user_shows_no_password_hash_however_it_is_serialised(ctx):
    created = await ctx.users.create_user("ann@example.com", "a long passphrase", username="ann")
    user = await ctx.users.get(created.id)
    shown = every_way_of_showing(user)
    assert_hidden(shown, "password_hash", user.password_hash)
    body = json.loads(shown["jsonable_encoder"])
    assert body["email"] == "ann@example.com" and body["id"] == str(user.id)
    assert json.loads(shown["pydantic typed"])["email"] == "ann@example.com"


async def test_api_keys_and_sessions_show_neither_hash_nor_token(ctx):
    user = await ctx.users.create_user("kim@example.com", "a long passphrase", username="kim")
    key, plaintext = await ctx.api_keys.issue(user.id, "ci", ["models:read"])
    session, token = await ctx.sessions.create_session(user.id, dt.timedelta(hours=1))
    assert_hidden(every_way_of_showing(await ctx.api_keys.get(key.id)), "key_hash", key.key_hash, plaintext)
    assert_hidden(every_way_of_showing(await ctx.sessions.get(session.id)), "token_hash", session.token_hash, token)


async def test_relations_are_nested_on_request_without_their_secrets(ctx):
    author = await ctx.manager(Author).create({"name": "Ann", "email": "ann@example.com", "password_hash": "h-4711"})
    article = await ctx.manager(Article).create({"title": "post", "author_id": author.id})
    comments = ctx.manager(Comment)
    await comments.create({"article_id": article.id, "text": "nice"})
    await comments.delete((await comments.create({"article_id": article.id, "text": "spam"})).id)

    plain = await to_schema(await ctx.manager(Article).get(article.id))
    assert "author" not in plain.model_dump() and plain.author_id == author.id  # type: ignore[attr-defined]

    out = await to_schema(await ctx.manager(Article).get(article.id), relations=("author", "comments"))
    body = out.model_dump(mode="json")
    assert body["author"]["email"] == "ann@example.com" and "password_hash" not in body["author"]
    assert [c["text"] for c in body["comments"]] == ["nice"]  # soft-deleted comments stay hidden

    nested = await (await ctx.manager(Author).get(author.id)).to_schema(relations=("articles__comments",))
    text = nested.model_dump_json()
    assert "h-4711" not in text and "password_hash" not in text
    assert [[c.text for c in a.comments] for a in nested.articles] == [["nice"]]  # type: ignore[attr-defined]


async def test_to_schema_takes_lists_and_a_missing_parent_is_none(ctx):
    orphan = await ctx.manager(Article).create({"title": "orphan"})
    rows = (await ctx.manager(Article).find_many()).items
    out = await to_schema(rows, relations=("author",))
    assert [(o.title, o.author) for o in out] == [("orphan", None)]  # type: ignore[attr-defined]
    assert await to_schema([], relations=("author",)) == []
    assert orphan.id == out[0].id  # type: ignore[attr-defined]


async def test_a_relation_that_was_not_fetched_is_named_in_the_error(ctx):
    author = await ctx.manager(Author).create({"name": "Ann", "email": "ann@example.com"})
    article = await ctx.manager(Article).create({"title": "post", "author_id": author.id})
    with pytest.raises(pydantic.ValidationError, match="relation 'author' is not fetched"):
        schema_out(Article, relations=("author",)).model_validate(await ctx.manager(Article).get(article.id))


def test_an_unknown_relation_or_excluded_field_is_refused_by_name():
    with pytest.raises(ValidationError) as caught:
        schema_out(Article, relations=("writer",))
    assert "writer" in caught.value.errors["relations"] and "author" in caught.value.errors["relations"]
    with pytest.raises(ValidationError) as caught:
        schema_out(Article, exclude=("nope",))
    assert "nope" in caught.value.errors["exclude"]
    assert "views" not in schema_out(Article, exclude=("views",)).model_fields


def test_output_fields_carry_the_columns_types():
    properties = schema_out(CachedNote).model_json_schema(mode="serialization")["properties"]
    assert properties["id"] == {"format": "uuid", "title": "Id", "type": "string"}
    assert {"type": "null"} in properties["author_id"]["anyOf"] and "author" not in properties
    assert {"format": "date-time", "type": "string"} in properties["due_at"]["anyOf"]
    fields = schema_out(CachedNote).model_fields
    assert fields["amount"].annotation is decimal.Decimal and fields["meta"].annotation is Any
    assert fields["author_id"].annotation == uuid.UUID | None


async def test_a_page_validates_rows_and_documents_their_output_schema(ctx):
    await ctx.manager(Author).bulk_create([{"name": f"a{i}", "email": f"a{i}@example.com", "password_hash": "h-1"}
                                           for i in range(3)])
    page = await ctx.manager(Author).find_many(limit=2, sort_by="name")
    typed = Page[Author].model_validate(page)
    body = json.loads(typed.model_dump_json())
    assert [a["name"] for a in body["items"]] == ["a0", "a1"]
    assert (body["total"], body["pages"], body["has_next"], body["has_prev"]) == (3, 2, True, False)
    assert "h-1" not in typed.model_dump_json() and "h-1" not in page.model_dump_json()
    schema = TypeAdapter(Page[Author]).json_schema(mode="serialization")
    assert schema["properties"]["items"]["items"] == {"$ref": "#/$defs/AuthorOut"}
    assert "password_hash" not in schema["$defs"]["AuthorOut"]["properties"]
    with pytest.raises(pydantic.ValidationError):
        Page[Author](items=[object()], total=1, page=1, limit=20)


async def test_a_page_converted_with_relations_is_a_page_of_their_schemas(ctx):
    author = await ctx.manager(Author).create({"name": "Ann", "email": "ann@example.com", "password_hash": "h-4711"})
    await ctx.manager(Article).bulk_create([{"title": f"t{i}", "author_id": author.id} for i in range(3)])
    page = await to_schema(await ctx.manager(Article).find_many(limit=2, sort_by="title"), relations=("author",))
    typed = Page[schema_out(Article, relations=("author",))].model_validate(page)  # type: ignore[misc]
    body = json.loads(typed.model_dump_json())
    assert [(a["title"], a["author"]["name"]) for a in body["items"]] == [("t0", "Ann"), ("t1", "Ann")]
    assert (body["total"], body["has_next"]) == (3, True)
    assert "h-4711" not in typed.model_dump_json() and "h-4711" not in page.model_dump_json()
