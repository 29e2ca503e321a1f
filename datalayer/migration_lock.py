"""One migration run at a time per database, across processes (several app workers calling
``get_context(migrate=True)`` at once, or two ``datalayer upgrade`` runs): without it both see a file as
pending and both apply it, and a data migration runs twice.

PostgreSQL: a session advisory lock on a connection of its own, held for the whole run. SQLite: an exclusive
``flock`` on ``<database file>.migrate-lock`` beside the database (an in-memory database needs none).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from datalayer.errors import DatabaseUnavailableError
from datalayer.settings import Settings

#: pg_advisory_lock key: the first 8 bytes of sha1("datalayer migrations"), as a signed bigint
LOCK_KEY = 0x3A1D_2C5E_7B90_11E4 - (1 << 63)
#: how long a run waits for another one to finish, in seconds
WAIT_S = 600
POLL_S = 0.1


@contextlib.asynccontextmanager
async def migration_lock(settings: Settings) -> AsyncIterator[None]:
    """Hold the database's migration lock while the block runs (waits up to ``WAIT_S`` s for it).

    Raises:
        DatabaseUnavailableError: PostgreSQL did not answer, or another run held the lock for ``WAIT_S`` s.
    """
    target = settings.target
    if target.is_postgres:
        async with _advisory_lock(settings):
            yield
    elif target.database != ":memory:":
        async with _file_lock(Path(target.database).expanduser().resolve()):
            yield
    else:
        yield


@contextlib.asynccontextmanager
async def _advisory_lock(settings: Settings) -> AsyncIterator[None]:
    import asyncpg

    target = settings.target
    try:
        connection = await asyncpg.connect(
            host=target.host, port=target.port, user=target.user, database=target.database,
            password=target.password.get_secret_value() if target.password else None,
            ssl=target.ssl or False, timeout=settings.db_connection_timeout_ms / 1000,
            server_settings={"application_name": "datalayer-migrations", "lock_timeout": f"{WAIT_S}s"},
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailableError(f"could not connect to {target.describe()} to migrate: "
                                       f"{exc.__class__.__name__}") from None
    try:
        try:
            await connection.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        except asyncpg.exceptions.LockNotAvailableError:
            raise DatabaseUnavailableError(f"another migration run held the lock on {target.describe()} "
                                           f"for {WAIT_S} s; is one stuck?") from None
        yield
    finally:
        with contextlib.suppress(Exception):  # closing the session releases the lock in any case
            await connection.close(timeout=5)


@contextlib.asynccontextmanager
async def _file_lock(database: Path) -> AsyncIterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no flock; SQLite files are rarely shared there
        yield
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    handle = open(database.with_name(database.name + ".migrate-lock"), "a+")  # noqa: SIM115 - held for the block
    try:
        for _ in range(int(WAIT_S / POLL_S)):  # never blocks the event loop: try, then sleep
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(POLL_S)
        else:
            raise DatabaseUnavailableError(f"another migration run held {handle.name} for {WAIT_S} s; is one stuck?")
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()
