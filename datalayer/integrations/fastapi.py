"""FastAPI integration: a lifespan that opens and closes the context, a dependency handing routes the
context, a health router (``GET /health``, ``GET /health/live``) and datalayer errors as HTTP answers,
documented in the OpenAPI document.

    app = FastAPI(lifespan=datalayer_lifespan(monitor_interval=30))
    app.include_router(health_router())
    install_error_handlers(app)

    @app.get("/users/{user_id}")
    async def read_user(user_id: UUID, ctx: Context) -> User:   # served without password_hash
        return await ctx.users.get(user_id)
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

import asyncpg
from pydantic import BaseModel, Field
from tortoise.exceptions import BaseORMException

try:
    from fastapi import APIRouter, Depends, FastAPI, Request
    from fastapi.dependencies.models import Dependant
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from fastapi.routing import APIRoute
except ImportError as exc:  # pragma: no cover - depends on the extra
    raise ImportError("datalayer.integrations.fastapi needs FastAPI: pip install 'datalayer[fastapi]'") from exc

from datalayer.context import DataContext, close_context, get_context
from datalayer.errors import (
    ConcurrencyError,
    ConflictError,
    DatabaseUnavailableError,
    DataLayerError,
    NotFoundError,
    PoolExhaustedError,
    ValidationError,
)
from datalayer.settings import Settings
from datalayer.translate import translate

log = logging.getLogger("datalayer.integrations.fastapi")

_STATUS_CODES: tuple[tuple[type[DataLayerError], int], ...] = (
    (NotFoundError, 404),
    (ValidationError, 422),
    (ConflictError, 409),
    (ConcurrencyError, 409),
    (DatabaseUnavailableError, 503),
)
#: driver and ORM errors a route can meet when it uses Tortoise directly; answered as ``translate`` maps them
_DRIVER_ERRORS = (BaseORMException, asyncpg.PostgresError, asyncpg.InterfaceError, sqlite3.Error)
_UNAVAILABLE = "the database is unavailable; retry shortly"
_POOL_BUSY = "every database connection is busy; retry shortly"
_FAILED = "the data layer failed; the server log has the details"


class ErrorBody(BaseModel):
    """The body of every datalayer error answer."""

    error: str = Field(description="datalayer's exception: NotFoundError, ConflictError, ConcurrencyError, "
                                   "DatabaseUnavailableError, PoolExhaustedError, ...")
    detail: str = Field(description="what went wrong and how to fix it; never driver text or a secret")


class ValidationErrorBody(ErrorBody):
    """The body of a 422 answer: a ``ValidationError`` from datalayer or the request's own parameters."""

    fields: dict[str, str] = Field(description="each refused field (a request parameter as `query.limit`, "
                                               "`body.email`, ...) and what is wrong with it")


def _answer(description: str, body: type[ErrorBody], example: dict[str, Any]) -> dict[str, Any]:
    return {"model": body, "description": description, "content": {"application/json": {"example": example}}}


#: the error answers of routes that use the database, for ``responses=`` of a route, router or app
#: (``install_error_handlers`` adds them to every route taking ``Context`` already)
error_responses: dict[int | str, dict[str, Any]] = {
    404: _answer("Not found: no live row has this key (missing or soft-deleted)", ErrorBody,
                 {"error": "NotFoundError", "detail": "User 0190... not found (missing or deleted)"}),
    409: _answer("Conflict: a unique field is already taken (ConflictError) or the row changed since it was "
                 "read (ConcurrencyError)", ErrorBody,
                 {"error": "ConflictError", "detail": "User: email already taken by a live row; choose another value"}),
    422: _answer("Refused input: a field, filter, sort, page or cursor; `fields` names each one", ValidationErrorBody,
                 {"error": "ValidationError", "detail": "limit: expected a whole number from 1 to 100",
                  "fields": {"limit": "expected a whole number from 1 to 100"}}),
    503: _answer("The database is unavailable or every connection is busy; retry later", ErrorBody,
                 {"error": "DatabaseUnavailableError", "detail": _UNAVAILABLE}),
}


def datalayer_lifespan(
    settings: Settings | None = None,
    *,
    models: Sequence[str] | None = None,
    apps: Sequence[str] | None = None,
    generate_schemas: bool = False,
    migrate: bool = False,
    monitor_interval: float | None = None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A FastAPI ``lifespan``: open the context at startup (optionally monitoring health), close it at shutdown.

    ``models`` and ``apps`` default to the app's ``[tool.datalayer]`` and the environment, as ``get_context``.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = await get_context(settings=settings, models=models, apps=apps, generate_schemas=generate_schemas,
                                migrate=migrate)
        app.state.datalayer = ctx
        if monitor_interval:
            ctx.start_monitoring(monitor_interval)
        try:
            yield
        finally:
            await close_context()

    return lifespan


async def get_data_context(request: Request) -> DataContext:
    """The dependency: the app's open context (reopened if something closed it)."""
    ctx: DataContext | None = getattr(request.app.state, "datalayer", None)
    if ctx is None or ctx.closed:
        ctx = request.app.state.datalayer = await get_context(settings=ctx.settings if ctx else None)
    return ctx


Context = Annotated[DataContext, Depends(get_data_context)]
"""Annotate a route parameter with ``Context`` to receive the ``DataContext``."""


def health_router(prefix: str = "/health") -> APIRouter:
    """``GET {prefix}``: the full report, 200 when healthy or degraded, 503 when unhealthy.
    ``GET {prefix}/live``: 200 when the database answers ``SELECT 1``, else 503."""
    router = APIRouter(prefix=prefix, tags=["health"])

    @router.get("", summary="Health report of the data layer",
                responses={503: {"description": "Unhealthy: the report (status `unhealthy`), or the error"}})
    async def health(request: Request) -> JSONResponse:
        try:
            ctx = await get_data_context(request)
        except DataLayerError as exc:
            return JSONResponse({"status": "unhealthy", "error": str(exc)}, status_code=503)
        report = await ctx.health()
        return JSONResponse(report.model_dump(mode="json"), status_code=503 if report.status == "unhealthy" else 200)

    @router.get("/live", summary="Liveness: does the database answer?",
                responses={503: {"description": "The database does not answer: `{\"status\": \"unavailable\"}`"}})
    async def live(request: Request) -> JSONResponse:
        try:
            alive = await (await get_data_context(request)).quick_health()
        except DataLayerError:
            alive = False
        return JSONResponse({"status": "alive" if alive else "unavailable"}, status_code=200 if alive else 503)

    return router


def error_answer(exc: DataLayerError) -> tuple[int, dict[str, Any]]:
    """The HTTP status and body for a datalayer error: 404, 422 (with ``fields``), 409, 503, else 500.

    Server-side failures (5xx) answer with a fixed message: their text can carry the driver's (a database
    name, an error class); it goes to the log instead.
    """
    status = next((code for kind, code in _STATUS_CODES if isinstance(exc, kind)), 500)
    if status == 503:
        detail = _POOL_BUSY if isinstance(exc, PoolExhaustedError) else _UNAVAILABLE
    else:
        detail = _FAILED if status >= 500 else str(exc)
    body: dict[str, Any] = {"error": type(exc).__name__, "detail": detail}
    if isinstance(exc, ValidationError):
        body["fields"] = exc.errors
    return status, body


def install_error_handlers(app: FastAPI, *, request_validation: bool = True, document: bool = True) -> None:
    """Answer datalayer errors with their HTTP meaning (404, 422, 409, 503; 500 for the rest).

    Args:
        app: the application.
        request_validation: also answer FastAPI's own request validation errors (a bad query parameter, a
            malformed body) with datalayer's 422 body, so a client meets one 422 shape.
        document: list the answers in the OpenAPI document: 404, 409, 422 and 503 on every route that takes
            ``Context``, with their body schemas (``ErrorBody``, ``ValidationErrorBody``).
    """

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        error = exc if isinstance(exc, DataLayerError) else translate(exc)
        status, body = error_answer(error)
        where = {"path": request.url.path, "error": type(error).__name__}
        if status == 503:
            log.warning("request answered 503: %s", error, extra=where)
        elif status >= 500:
            log.error("request failed: %s", error, exc_info=exc, extra=where)
        return JSONResponse(body, status_code=status)

    async def handle_request(request: Request, exc: Exception) -> JSONResponse:
        errors: dict[str, str] = {}
        for problem in exc.errors() if isinstance(exc, RequestValidationError) else ():
            key = ".".join(str(part) for part in problem["loc"])
            errors[key] = f"{errors[key]}; {problem['msg']}" if key in errors else problem["msg"]
        return await handle(request, ValidationError(errors or "the request is malformed"))

    app.add_exception_handler(DataLayerError, handle)
    for kind in _DRIVER_ERRORS:
        app.add_exception_handler(kind, handle)
    if request_validation:
        app.add_exception_handler(RequestValidationError, handle_request)
    if document:
        _document_errors(app, request_validation)


def _document_errors(app: FastAPI, request_validation: bool) -> None:
    generate = app.openapi
    done: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        schema = generate()
        if not done or done[0] is not schema:  # FastAPI regenerates it when routes are added
            _add_error_answers(app, schema, request_validation)
            done[:] = [schema]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _uses_context(dependant: Dependant) -> bool:
    return any(dep.call is get_data_context or _uses_context(dep) for dep in dependant.dependencies)


def _add_error_answers(app: FastAPI, schema: dict[str, Any], request_validation: bool) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for body in (ErrorBody, ValidationErrorBody):
        components[body.__name__] = body.model_json_schema(ref_template="#/components/schemas/{model}")
    answers = {
        str(code): {"description": answer["description"], "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{answer['model'].__name__}"},
            "example": answer["content"]["application/json"]["example"]}}}
        for code, answer in error_responses.items()
    }
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        uses_context = _uses_context(route.dependant)
        for method in route.methods:  # type: ignore[union-attr]  # an APIRoute's is set
            operation = schema.get("paths", {}).get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            documented = operation.setdefault("responses", {})
            if request_validation and "HTTPValidationError" in json.dumps(documented.get("422", {})):
                documented["422"] = answers["422"]  # the request's own 422s answer with datalayer's body
            if uses_context:
                for code, answer in answers.items():
                    documented.setdefault(code, answer)
            operation["responses"] = dict(sorted(documented.items()))
    if request_validation:  # FastAPI's 422 schemas, once nothing refers to them
        _drop_unreferenced(schema, "HTTPValidationError")
        _drop_unreferenced(schema, "ValidationError")


def _drop_unreferenced(schema: dict[str, Any], name: str) -> None:
    components = schema["components"]["schemas"]
    if name in components:
        rest = {**schema, "components": {**schema["components"],
                                         "schemas": {key: value for key, value in components.items() if key != name}}}
        if f'"#/components/schemas/{name}"' not in json.dumps(rest):
            del components[name]
