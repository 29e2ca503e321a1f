"""The peer users would pick instead: SQLAlchemy 2's async ORM (the engine under advanced-alchemy and FastCRUD).

Written as its users write it: declarative models mapped onto the benchmark's own tables, a session per call
(``async_sessionmaker``), ``select()`` statements, the unit of work for writes, on ``postgresql+asyncpg://``
with a pool of the same size as datalayer's and asyncpg's (``POOL_SIZE``). Where datalayer gives a guarantee
the operation's row compares, the SQLAlchemy code gives it too, as a user would have to add it: the ``create``
audit row, the version check (SQLAlchemy's own ``version_id_col``) and an audit row on update, soft delete and
restore, and audit rows on bulk inserts (SQLAlchemy 2's bulk ``insert()`` with a list of dicts).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import DateTime, Integer, String, Text, Uuid, func, insert, select, tuple_
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from benchmarks.scratch import POOL_SIZE


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    pass


class _ItemColumns:
    """The columns of ``benchmarks.models.Item`` (the tables datalayer created)."""

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now, onupdate=_now)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    version: Mapped[int] = mapped_column(Integer, default=1)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="draft")
    views: Mapped[int] = mapped_column(Integer, default=0)


class Item(_ItemColumns, Base):
    __tablename__ = "bench_item"

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.__table__.c.version}  # UPDATE ... WHERE version = :seen, bumped


class BulkItem(_ItemColumns, Base):
    __tablename__ = "bench_bulk_item"


class Audit(Base):
    """datalayer's ``audit_log`` table, which the SQLAlchemy code writes as a user's audit trail would."""

    __tablename__ = "audit_log"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    action: Mapped[str] = mapped_column(String(16))
    table_name: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str] = mapped_column(String(64))
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB)
    correlation_id: Mapped[str | None] = mapped_column(String(128))


def _created(item: Any) -> dict[str, list[Any]]:
    """What datalayer's ``create`` audit row holds: ``[None, value]`` for each field the input may set."""
    return {"id": [None, str(item["id"])], "title": [None, item["title"]], "body": [None, item["body"]],
            "status": [None, item["status"]], "views": [None, item["views"]]}


def _live() -> Any:
    return Item.deleted_at.is_(None)


class Peer:
    """The benchmark's operations through SQLAlchemy 2's async ORM, one session per call."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def get(self, key: uuid.UUID) -> Item | None:
        async with self.sessions() as session:
            return await session.scalar(select(Item).where(Item.id == key, _live()))

    async def create(self, title: str, views: int) -> Item:
        """The row and its audit row, in one transaction."""
        values = {"id": uuid.uuid4(), "title": title, "body": "", "status": "draft", "views": views}
        async with self.sessions.begin() as session:
            item = Item(**values)
            session.add(item)
            session.add(Audit(action="create", table_name="bench_item", record_id=str(values["id"]),
                              changes=_created(values)))
        return item

    async def update(self, key: uuid.UUID, views: int) -> None:
        """Load, change, and let the unit of work write it guarded by the version read, with an audit row."""
        async with self.sessions.begin() as session:
            item = await session.scalar(select(Item).where(Item.id == key, _live()))
            if item is None or item.views == views:
                return
            session.add(Audit(action="update", table_name="bench_item", record_id=str(key),
                              changes={"views": [item.views, views]}))
            item.views = views

    async def _flip(self, key: uuid.UUID, *, delete: bool) -> None:
        async with self.sessions.begin() as session:
            deleted = Item.deleted_at.is_(None) if delete else Item.deleted_at.is_not(None)
            item = await session.scalar(select(Item).where(Item.id == key, deleted))
            if item is None:
                return
            was, item.deleted_at = item.deleted_at, _now() if delete else None
            session.add(Audit(action="delete" if delete else "restore", table_name="bench_item",
                              record_id=str(key),
                              changes={"deleted_at": [None if was is None else was.isoformat(),
                                                      None if item.deleted_at is None else item.deleted_at.isoformat()]}))

    async def delete_restore(self, key: uuid.UUID) -> None:
        """Soft delete, then restore: each a transaction with its version check and audit row."""
        await self._flip(key, delete=True)
        await self._flip(key, delete=False)

    async def page(self, *, offset: int = 40, total: bool = True) -> tuple[list[Item], int | None]:
        """Page of 20, newest first, and (``total``) the count of live rows, in one session."""
        async with self.sessions() as session:
            rows = (await session.scalars(select(Item).where(_live())
                                          .order_by(Item.created_at.desc(), Item.id.desc())
                                          .offset(offset).limit(20))).all()
            count = await session.scalar(select(func.count()).select_from(Item).where(_live())) if total else None
        return list(rows), count

    async def keyset(self, created_at: dt.datetime, key: uuid.UUID) -> list[Item]:
        async with self.sessions() as session:
            return list((await session.scalars(
                select(Item).where(_live(), tuple_(Item.created_at, Item.id) > tuple_(created_at, key))
                .order_by(Item.created_at, Item.id).limit(20))).all())

    async def bulk_insert(self, size: int) -> None:
        """``size`` rows and their audit rows by SQLAlchemy 2's bulk ``insert()`` (batched multi-row VALUES)."""
        now = _now()
        rows = [{"id": uuid.uuid4(), "created_at": now, "updated_at": now, "version": 1, "title": f"bulk {i}",
                 "body": "", "status": "draft", "views": i} for i in range(size)]
        audits = [{"id": uuid.uuid4(), "created_at": now, "updated_at": now, "action": "create",
                   "table_name": "bench_bulk_item", "record_id": str(row["id"]), "changes": _created(row)}
                  for row in rows]
        async with self.sessions.begin() as session:
            await session.execute(insert(BulkItem), rows)
            await session.execute(insert(Audit), audits)


def async_url(url: str) -> str:
    """``postgres://...`` as SQLAlchemy's asyncpg URL."""
    return "postgresql+asyncpg://" + url.split("://", 1)[1]


@asynccontextmanager
async def peer(url: str) -> AsyncIterator[Peer]:
    """SQLAlchemy on the benchmark's database, with the pool size datalayer and asyncpg get."""
    engine = create_async_engine(async_url(url), pool_size=POOL_SIZE, max_overflow=0)
    try:
        yield Peer(engine)
    finally:
        await engine.dispose()
