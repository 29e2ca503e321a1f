"""Pages of a model's rows: ``find_many`` (offset pages with an exact, estimated or no total), ``find_after``
(keyset pages on ``(sort_by, id)``) and ``count``, mixed into ``ModelManager``.

On PostgreSQL they run SQL built once per model and filter shape (``pg_pages``) when ``_fast_where`` says the
arguments allow it; otherwise Tortoise's querysets. Both paths take the same input and return the same rows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

from datalayer.errors import ValidationError
from datalayer.managers import pg_pages
from datalayer.managers.filters import check_sort
from datalayer.managers.pagination import (
    Chunk,
    Page,
    TotalKind,
    check_page,
    check_total,
    decode_cursor,
    encode_cursor,
    offset_page,
)
from datalayer.managers.pg_where import Rows
from datalayer.translate import translated

M = TypeVar("M", bound=Model)
Counter = Callable[[], Awaitable[int]]
TotalCache = Callable[[Rows, Counter], Awaitable[int]]


class Paging(Generic[M]):
    """Mixed into ``ModelManager``: the paged reads."""

    cached_total: TotalCache | None = None
    """Installed by the cache's read-through (``datalayer.cache.read_through``): ``cached_total(rows, count)``
    serves the exact total of an unfiltered listing (``rows``: ``"live"``, ``"deleted"`` or ``"all"``) from the
    cache, ``count()`` on a miss; None: every total is counted."""

    if TYPE_CHECKING:  # provided by ModelManager
        model: type[M]
        _label: str
        _soft: bool
        max_page_size: ClassVar[int]
        page_total: ClassVar[TotalKind | None]

        def _filtered(self, filters: Mapping[str, Any] | None, search: str | None, include_deleted: bool,
                      only_deleted: bool) -> QuerySet[M]: ...
        def _fast_where(self, filters: Mapping[str, Any] | None, search: Any, include_deleted: bool,
                        only_deleted: bool) -> pg_pages.Where | None: ...

    async def find_many(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        search: str | None = None,
        page: int = 1,
        limit: int = 20,
        sort_by: str | None = None,
        sort_order: str = "asc",
        include_deleted: bool = False,
        only_deleted: bool = False,
        total: TotalKind | None = None,
    ) -> Page[M]:
        """One page plus its total; filter and sort input goes through the model's allow-lists.

        Args:
            total: ``"exact"`` (a ``COUNT``), ``"estimated"`` (PostgreSQL: the planner's estimate, no row
                counted; SQLite has none and counts, and the page says ``"exact"``) or ``"none"``; default:
                the manager's ``page_total``, else the model's, else ``"exact"``. ``page.total_kind`` says
                which one the page carries; ``has_next`` is right with each.

        Raises:
            ValidationError: a bad filter, search, page, limit, sort, flag or ``total``.
            ConfigurationError: a ``page_total`` default that is not one of the three.
        """
        page, limit = check_page(page, limit, self.max_page_size)
        sort_field, descending = check_sort(self.model, sort_by, sort_order)
        kind = self._total_kind(total)
        offset = (page - 1) * limit
        fast = self._fast_where(filters, search, include_deleted, only_deleted)
        if fast is not None:
            def fetch(n: int) -> Any:
                return pg_pages.page(self.model, fast, sort=sort_field, descending=descending, offset=offset, limit=n)
            totals: dict[str, Any] = {"exact": lambda: pg_pages.count(self.model, fast),
                                      "estimated": lambda: pg_pages.estimate(self.model, fast)}
        else:
            queryset = self._filtered(filters, search, include_deleted, only_deleted)
            direction = "-" if descending else ""
            ordered = queryset.order_by(f"{direction}{sort_field}", f"{direction}id").offset(offset)

            def fetch(n: int) -> Any:
                return ordered.limit(n)
            totals = {"exact": queryset.count, "estimated": lambda: pg_pages.estimate_queryset(queryset)}
        totals["exact"] = self._total(filters, search, include_deleted, only_deleted, totals["exact"])
        with translated(self._label):
            return await offset_page(fetch, totals, kind=kind, page=page, limit=limit)

    def _total_kind(self, total: Any) -> TotalKind:
        owner = type(self).__name__ if self.page_total is not None else self._label
        default = self.page_total if self.page_total is not None else getattr(self.model, "page_total", "exact")
        kind = check_total(total, default, f"{owner}.page_total")
        return "exact" if kind == "estimated" and pg_pages.postgres_connection() is None else kind

    async def find_after(
        self,
        cursor: str | None = None,
        *,
        limit: int = 100,
        sort_by: str = "created_at",
        sort_order: str = "asc",
        filters: Mapping[str, Any] | None = None,
        include_deleted: bool = False,
        only_deleted: bool = False,
    ) -> Chunk[M]:
        """Keyset pagination on ``(sort_by, id)``: stable under inserts, same cost at any depth.

        Args:
            cursor: ``next_cursor`` of the previous chunk; None starts at the beginning.
            limit: rows per chunk, 1 to ``max(max_page_size, 1000)``.
            sort_by: a NOT NULL sortable field; ``sort_order``: ``"asc"`` or ``"desc"``.
            filters, include_deleted, only_deleted: as ``find_many``'s (``only_deleted`` walks the trash).

        Raises:
            ValidationError: a bad cursor (not issued here, for another sort, or edited), filter, sort, limit
                or flag.
        """
        check_page(1, limit, max(self.max_page_size, 1000))
        sort_field, descending = check_sort(self.model, sort_by, sort_order)
        if self.model._meta.fields_map[sort_field].null:
            raise ValidationError({"sort_by": f"{sort_field} can be NULL; keyset needs a NOT NULL field"},
                                  model=self._label)
        fast = self._fast_where(filters, None, include_deleted, only_deleted)
        rows = fast if fast is not None else self._filtered(filters, None, include_deleted, only_deleted)
        after = None if cursor is None else decode_cursor(self.model, cursor, sort_field, descending)
        with translated(self._label):
            if isinstance(rows, pg_pages.Where):
                items = await pg_pages.chunk(self.model, rows, sort=sort_field, descending=descending, after=after,
                                             limit=limit + 1)
            else:
                queryset = rows
                if after is not None:
                    (value, last_id), (past, beyond) = after, (("lt", "lte") if descending else ("gt", "gte"))
                    queryset = queryset.filter(
                        Q(**{f"{sort_field}__{beyond}": value}),
                        Q(**{f"{sort_field}__{past}": value}) | Q(**{sort_field: value, f"id__{past}": last_id}),
                    )
                direction = "-" if descending else ""
                items = list(await queryset.order_by(f"{direction}{sort_field}", f"{direction}id").limit(limit + 1))
        next_cursor = None
        if len(items) > limit:
            items = items[:limit]
            last = items[-1]
            next_cursor = encode_cursor(sort_field, descending, getattr(last, sort_field), last.pk)
        return Chunk(items=items, next_cursor=next_cursor, limit=limit)

    async def count(
        self, filters: Mapping[str, Any] | None = None, *, search: str | None = None,
        include_deleted: bool = False, only_deleted: bool = False,
    ) -> int:
        fast = self._fast_where(filters, search, include_deleted, only_deleted)

        async def counted() -> int:
            if fast is not None:
                return await pg_pages.count(self.model, fast)
            return await self._filtered(filters, search, include_deleted, only_deleted).count()

        with translated(self._label):
            return await self._total(filters, search, include_deleted, only_deleted, counted)()

    def _total(self, filters: Mapping[str, Any] | None, search: str | None, include_deleted: bool,
               only_deleted: bool, count: Counter) -> Counter:
        """``count``, or the cached total when there is one for this listing (no filter, no search)."""
        if self.cached_total is None or filters or search:
            return count
        rows: Rows = "all" if not self._soft else "deleted" if only_deleted else \
            "all" if include_deleted else "live"
        cached_total = self.cached_total
        return lambda: cached_total(rows, count)
