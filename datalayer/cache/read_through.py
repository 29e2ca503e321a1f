"""Read-through caching of ``get``/``find`` by id, and of unfiltered totals, for managers that opt in.

Opt in declaratively, either on the manager class::

    class UserManager(ModelManager[User]):
        model = User
        cached = True          # optional: cache_ttl = 60

or by model name in ``CACHE_MODELS=User,Configuration``. The context applies it when it builds a manager.

With Redis, rows read are also kept in process (the near cache) and dropped the moment Redis reports a change
to them, so a hot row costs no round trip at all (see ``tracking``).

Reads inside a transaction skip the cache (they must see the transaction's own writes). Every write path of
the manager (create, update, update_many, delete, hard delete, restore, bulk) reports its ids through the
manager's write listeners, which run only after commit: a rolled-back write never touches the cache, a
committed one always invalidates it.

With Redis, the exact total of a listing without filter or search (``find_many(...).total``, ``count()``: a
``COUNT(*)`` over the whole table) is cached the same way, one per kind of rows (live, deleted, all). It
changes only when rows come or go, so the writes that add or remove rows (create, bulk create, delete, hard
delete, restore and their ``_many`` forms) drop it through the manager's membership listeners; updates leave
it. Filtered totals are always counted. Writes that go around the managers (raw SQL, another application) are not seen: call
``forget_cached_rows`` after them, as for rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from tortoise import fields as tf
from tortoise.models import Model

from datalayer.backends.replicas import primary_only
from datalayer.managers import pg_rows
from datalayer.managers.pg_where import Rows
from datalayer.transactions import in_transaction_block

if TYPE_CHECKING:
    from datalayer.cache.manager import Cache
    from datalayer.managers.base import ModelManager


ROW_PREFIX = "model:"


async def forget_cached_rows(cache: Cache) -> int:
    """Drop every read-through row: for writes that went around the managers (restore, reset)."""
    return await cache.invalidate_prefix(ROW_PREFIX)


# Bump when the cached form of a row changes, so rows cached by older code are never decoded by newer code.
# 2: JSON fields (and fields with their own to_python_value) are cached in their stored form.
ROW_FORMAT = 2

Encoder = Callable[[Any, Model], Any]


def _json_text(field: tf.JSONField) -> Encoder:
    """A JSON field's value as the JSON text the column holds, which ``to_python_value`` decodes once."""

    def encode(value: Any, row: Model) -> Any:
        if value is None:
            return None
        if isinstance(value, (str, int, float, bool, list, dict)):  # decoded JSON: a str is a JSON string
            return field.encoder(value)
        return field.to_db_value(value, row)  # e.g. a pydantic model, serialised as the field writes it

    return encode


def _stored_form(field: tf.Field) -> Encoder:
    """A field's value as the field writes it to the database, which its ``to_python_value`` reads back."""

    def encode(value: Any, row: Model) -> Any:
        return field.to_db_value(value, row)

    return encode


def _decodes_once(field: tf.Field) -> bool:
    """Whether ``field.to_python_value`` must not see its own output again (it is not idempotent).

    JSON fields decode a ``str`` as JSON text, so the value ``"hello"`` would fail and ``"123"`` become 123;
    fields of other libraries or apps are assumed to decode too. Tortoise's other fields only coerce types.
    """
    if isinstance(field, tf.JSONField):
        return True
    return not type(field).to_python_value.__module__.startswith("tortoise.")


def _row_encoders(model: type[Model]) -> list[tuple[str, Encoder]]:
    """The fields ``_init_from_db`` runs ``to_python_value`` on that cannot take a fetched row's value back,
    each with how to cache it instead: in its stored form, so a cache hit decodes it exactly as a read does.

    Worked out on each miss (a few fields), as which fields are converted depends on the connected engine.
    """
    return [(name, _json_text(field) if isinstance(field, tf.JSONField) else _stored_form(field))
            for _column, name, field in model._meta.db_complex_fields if _decodes_once(field)]


def row_to_dict(row: Model) -> dict[str, Any]:
    """The cached form of a fetched row: its field values, those ``to_python_value`` decodes in stored form."""
    data = {name: getattr(row, name) for name in row._meta.fields_db_projection}
    for name, encode in _row_encoders(type(row)):
        data[name] = encode(data[name], row)
    return data


def row_from_dict(model: type[Model], data: dict[str, Any]) -> Model:
    """An instance equal to one fetched from the database (saved, so ``save``/``delete`` work on it).

    Built as Tortoise builds fetched rows (``_init_from_db``, by ``pg_rows``), which skips ``__init__``'s
    defaults and validation: several times cheaper, and this is the hot path of a cache hit. Fields whose
    ``to_python_value`` decodes (JSON) arrive in stored form (``row_to_dict``), so they are decoded once.
    """
    columns, names = _layout(model)
    return pg_rows.instances(model, columns, ([data[name] for name in names],))[0]


@cache
def _layout(model: type[Model]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The model's columns, and the field names holding them in a cached row, in the same order."""
    projection = model._meta.fields_db_projection
    return tuple(projection.values()), tuple(projection)


def schema_fingerprint(model: type[Model]) -> str:
    """Changes when the model's columns or the cached row format change, so a deploy never decodes rows
    cached by the old code."""
    columns = ",".join(sorted(model._meta.fields_db_projection.values()))
    return hashlib.sha1(f"{ROW_FORMAT}|{columns}".encode()).hexdigest()[:8]


def wants_read_through(manager: ModelManager[Any], model_names: frozenset[str]) -> bool:
    """``cached = True`` on the manager class, or the model (or manager) named in ``CACHE_MODELS``."""
    if getattr(type(manager), "cached", False):
        return True
    return manager.model.__name__ in model_names or (type(manager).name or "") in model_names


class ReadThrough:
    """Installed on one manager: serves ``find`` (and so ``get``) from the cache, invalidates on writes."""

    def __init__(self, manager: ModelManager[Any], cache: Cache, ttl: float | None) -> None:
        self.manager = manager
        self.cache = cache
        self.ttl = ttl
        self.enabled = True
        self._prefix = f"{ROW_PREFIX}{manager.model.__name__}:{schema_fingerprint(manager.model)}"

    def key(self, pk: Any) -> str:
        return f"{self._prefix}:{pk}"

    async def find(self, key: Any, *, include_deleted: bool = False) -> Any:
        manager = self.manager
        uncached = type(manager).find
        if include_deleted or not self.enabled or in_transaction_block():
            return await uncached(manager, key, include_deleted=include_deleted)
        key = manager._key(key)

        async def load() -> dict[str, Any] | None:
            with primary_only():  # a lagging read replica would fill the cache with a row older than the last write
                row = await uncached(manager, key)
            return None if row is None else row_to_dict(row)

        data = await self.cache.get_or_set(self.key(key), load, self.ttl, cache_none=False, near=True)
        return None if data is None else row_from_dict(manager.model, data)

    async def written(self, manager: ModelManager[Any], ids: list[Any]) -> None:
        if self.enabled and ids:
            await self.cache.invalidate(*(self.key(pk) for pk in ids))

    def total_key(self, rows: Rows) -> str:
        """The key of the unfiltered total of ``rows`` (``#``, not ``:``: never a row's key, whatever its id)."""
        return f"{self._prefix}#total:{rows}"

    async def total(self, rows: Rows, count: Callable[[], Awaitable[int]]) -> int:
        """The exact number of ``rows`` (``"live"``, ``"deleted"`` or ``"all"``) with no filter: cached like a
        row (near cache, Redis), counted on a miss; dropped by every write that adds or removes rows
        (``membership_changed``). Counted inside a transaction, with the cache off, and with an in-process
        cache: its drops reach no other process (a CLI command, a worker), and a stale total would go unseen
        where a stale row at least shows its ``updated_at``."""
        if not self.enabled or in_transaction_block() or not self.cache.backend.shared:
            return await count()

        async def load() -> int:
            with primary_only():  # as for rows: a lagging replica would cache an older total
                return await count()

        return int(await self.cache.get_or_set(self.total_key(rows), load, self.ttl, near=True))

    async def membership_changed(self, manager: ModelManager[Any]) -> None:
        if self.enabled:
            await self.cache.invalidate(*(self.total_key(rows) for rows in ("live", "deleted", "all")))


def apply_read_through(manager: ModelManager[Any], cache: Cache) -> ReadThrough | None:
    """Install, rebind or switch off read-through on ``manager`` to match ``cache``'s configuration."""
    installed: ReadThrough | None = manager.__dict__.get("read_through")
    if not wants_read_through(manager, cache.read_through_models):
        if installed is not None:
            installed.enabled = False
        return None
    ttl = getattr(type(manager), "cache_ttl", None) or cache.row_ttl
    if installed is None:
        installed = ReadThrough(manager, cache, ttl)
        manager.read_through = installed  # type: ignore[attr-defined]
        manager.find = installed.find  # type: ignore[method-assign]
        manager.add_write_listener(installed.written)
        manager.add_membership_listener(installed.membership_changed)
        manager.cached_total = installed.total
    installed.cache, installed.ttl, installed.enabled = cache, ttl, True
    return installed
