"""FastAPI integration: a lifespan that opens and closes the context, a dependency handing routes the
context, a health router (``GET /health``, ``GET /health/live``) and datalayer errors as HTTP answers.

    app = FastAPI(lifespan=datalayer_lifespan(monitor_interval=30))
    app.include_router(health_router())
    install_error_handlers(app)

    @app.get("/users/{user_id}")
    async def read_user(user_id: UUID, ctx: Context): ...
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated

try:
    from fastapi import APIRouter, Depends, FastAPI, Request
    from fastapi.responses import JSONResponse
except ImportError as exc:  # pragma: no cover - depends on the extra
    raise ImportError("datalayer.integrations.fastapi needs FastAPI: pip install 'datalayer[fastapi]'") from exc

from datalayer.context import DataContext, close_context, get_context
from datalayer.errors import (
    ConcurrencyError,
    ConflictError,
    DatabaseUnavailableError,
    DataLayerError,
    NotFoundError,
    ValidationError,
)
from datalayer.settings import Settings

log = logging.getLogger("datalayer.integrations.fastapi")

_STATUS_CODES: tuple[tuple[type[DataLayerError], int], ...] = (
    (NotFoundError, 404),
    (ValidationError, 422),
    (ConflictError, 409),
    (ConcurrencyError, 409),
    (DatabaseUnavailableError, 503),
)


def datalayer_lifespan(
    settings: Settings | None = None,
    *,
    models: Sequence[str] = (),
    generate_schemas: bool = False,
    monitor_interval: float | None = None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A FastAPI ``lifespan``: open the context at startup (optionally monitoring health), close it at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = await get_context(settings=settings, models=models, generate_schemas=generate_schemas)
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

    @router.get("", summary="Health report of the data layer")
    async def health(request: Request) -> JSONResponse:
        try:
            ctx = await get_data_context(request)
        except DataLayerError as exc:
            return JSONResponse({"status": "unhealthy", "error": str(exc)}, status_code=503)
        report = await ctx.health()
        return JSONResponse(report.model_dump(mode="json"), status_code=503 if report.status == "unhealthy" else 200)

    @router.get("/live", summary="Liveness: does the database answer?")
    async def live(request: Request) -> JSONResponse:
        try:
            alive = await (await get_data_context(request)).quick_health()
        except DataLayerError:
            alive = False
        return JSONResponse({"status": "alive" if alive else "unavailable"}, status_code=200 if alive else 503)

    return router


def install_error_handlers(app: FastAPI) -> None:
    """Answer datalayer errors with their HTTP meaning (404, 422, 409, 503; 500 for the rest)."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        status = next((code for kind, code in _STATUS_CODES if isinstance(exc, kind)), 500)
        body: dict[str, object] = {"error": type(exc).__name__, "detail": str(exc)}
        if isinstance(exc, ValidationError):
            body["fields"] = exc.errors
        if status >= 500:
            log.error("request failed: %s", exc, extra={"path": request.url.path, "error": type(exc).__name__})
        return JSONResponse(body, status_code=status)

    app.add_exception_handler(DataLayerError, handle)
