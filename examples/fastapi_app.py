"""A FastAPI app on datalayer, end to end: lifespan, context dependency, health routes, error mapping.

    pip install 'datalayer[fastapi]' uvicorn
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/app uvicorn examples.fastapi_app:app

    curl localhost:8000/health        # full report; 503 when the database is unhealthy
    curl localhost:8000/health/live   # liveness probe
    curl localhost:8000/stats         # statement timings by shape, slow statements, pool, cache
    curl localhost:8000/database      # rows per table, tasks by status, database size
"""

from __future__ import annotations

from uuid import UUID

from fastapi import FastAPI

from datalayer import Settings, User
from datalayer.integrations.fastapi import Context, datalayer_lifespan, health_router, install_error_handlers


def create_app(settings: Settings | None = None, *, generate_schemas: bool = True) -> FastAPI:
    app = FastAPI(title="datalayer example",
                  lifespan=datalayer_lifespan(settings, generate_schemas=generate_schemas, monitor_interval=30))
    app.include_router(health_router())
    install_error_handlers(app)

    @app.get("/stats")
    async def stats(ctx: Context) -> dict:
        return ctx.stats().model_dump(mode="json")

    @app.get("/database")
    async def database_stats(ctx: Context) -> dict:
        """Rows per table, tasks by status and the database size."""
        return await ctx.get_database_stats()

    @app.get("/users/{user_id}")
    async def read_user(user_id: UUID, ctx: Context) -> User:
        """The user as its output schema: no password_hash. NotFoundError answers 404."""
        return await ctx.users.get(user_id)

    return app


app = create_app(generate_schemas=False)
