"""Retention: prune old system logs, expired sessions and rows soft-deleted long ago.

Everything runs in one transaction; a dry run does the same work and rolls it back, so its counts are
exact. A soft-deleted row that a remaining row still refers to is kept (purging it would cascade into
live data).
"""

from __future__ import annotations

import datetime as dt

from tortoise.expressions import Subquery
from tortoise.models import Model

from datalayer import introspect
from datalayer.core import rules
from datalayer.transactions import transaction
from datalayer.translate import translated

SYSTEM_LOG_TABLE = "system_logs"
SESSION_TABLE = "sessions"


class _DryRun(Exception):
    """Raised to roll back a dry run."""


async def _purge_soft_deleted(model: type[Model], models: list[type[Model]], cutoff: dt.datetime) -> int:
    query = model.all_objects.filter(deleted_at__lt=cutoff)  # type: ignore[attr-defined]  # a soft model
    for child in models:
        for name in child._meta.fk_fields:
            if child._meta.fields_map[name].related_model is model and child is not model:  # type: ignore[attr-defined]
                referenced = introspect.every_row(child).filter(**{f"{name}_id__isnull": False})
                query = query.exclude(pk__in=Subquery(referenced.values(f"{name}_id")))
    return await query.delete()


async def cleanup(models: list[type[Model]], *, days: int = 30, dry_run: bool = False,
                  now: dt.datetime | None = None) -> list[tuple[str, str, int]]:
    """Returns ``(table, what, rows)`` for everything removed (or, with ``dry_run``, that would be).

    ``days`` is a whole number from 0 to ``rules.MAX_DAYS``; ``now`` a ``datetime`` (naive is UTC).
    """
    days = rules.whole_number(days, field="days", model="cleanup", minimum=0, maximum=rules.MAX_DAYS)
    now = dt.datetime.now(dt.timezone.utc) if now is None else rules.moment(now, field="now", model="cleanup")
    cutoff = now - dt.timedelta(days=days)
    present = await introspect.existing_tables()
    by_table = {m._meta.db_table: m for m in models if m._meta.db_table in present}
    results: list[tuple[str, str, int]] = []
    try:
        async with transaction():
            with translated("cleanup"):
                if SYSTEM_LOG_TABLE in by_table:
                    removed = await by_table[SYSTEM_LOG_TABLE].filter(created_at__lt=cutoff).delete()
                    results.append((SYSTEM_LOG_TABLE, f"logs older than {days} days", removed))
                if SESSION_TABLE in by_table:
                    removed = await introspect.every_row(by_table[SESSION_TABLE]).filter(expires_at__lt=now).delete()
                    results.append((SESSION_TABLE, "expired sessions", removed))
                ordered = introspect.dependency_order(list(by_table.values()))
                for model in reversed(ordered):  # children first, so their parents become free to go
                    if introspect.is_soft(model):
                        removed = await _purge_soft_deleted(model, ordered, cutoff)
                        results.append((model._meta.db_table, f"soft-deleted over {days} days ago", removed))
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    return results
