"""Retention and upkeep: prune old system logs, expired sessions and rows soft-deleted long ago
(``cleanup``); create the log partitions ahead of time and report on them (``maintain``).

``cleanup`` runs in one transaction; a dry run does the same work and rolls it back, so its counts are exact.
A soft-deleted row that a remaining row still refers to is kept (purging it would cascade into live data).
On a partitioned ``system_logs`` (PostgreSQL, see ``datalayer.partitions``) the partitions holding only rows
older than the cutoff are detached and dropped, whatever their size, as the transaction's last step (so the
parent's exclusive lock is held only until the commit), and rows are deleted only where the cutoff falls
inside a partition and in the default partition. The dry run counts the rows of those partitions exactly
(``count(*)``) instead of dropping them.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from tortoise.expressions import Subquery
from tortoise.models import Model

from datalayer import introspect, partitions
from datalayer.core import rules
from datalayer.partitions import SYSTEM_LOG_TABLE, Partition, PartitionReport
from datalayer.settings import Settings
from datalayer.transactions import transaction
from datalayer.translate import translated

SESSION_TABLE = "sessions"
log = logging.getLogger("datalayer.maintenance")


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


async def _prune_partitioned_logs(cutoff: dt.datetime) -> tuple[int, list[tuple[Partition, int]]]:
    """Delete the rows older than ``cutoff`` in the partition straddling it and in the default partition;
    returns that count and the partitions wholly older than ``cutoff`` with their exact row counts."""
    client = introspect.connection()
    deleted, whole = 0, []
    for partition in await partitions.partitions_of(SYSTEM_LOG_TABLE, client):
        if partition.entirely_before(cutoff):
            whole.append((partition, await partitions.count_rows(partition, client)))
        elif partition.is_default or partition.straddles(cutoff):
            deleted += (await client.execute_query(
                f'DELETE FROM {partition.qualified} WHERE "created_at" < $1', [cutoff]))[0]
    return deleted, whole


async def _drop_partitions(whole: list[tuple[Partition, int]]) -> None:
    """Detach and drop ``whole``'s partitions, in one round trip."""
    if not whole:
        return
    statements = []
    for partition, _ in whole:
        parent = f"{partitions.quote(partition.schema)}.{partitions.quote(SYSTEM_LOG_TABLE)}"
        statements += [f"ALTER TABLE {parent} DETACH PARTITION {partition.qualified}", f"DROP TABLE {partition.qualified}"]
    await introspect.connection().execute_script(";\n".join(statements))


async def cleanup(models: list[type[Model]], *, days: int = 30, dry_run: bool = False,
                  now: dt.datetime | None = None) -> list[tuple[str, str, int]]:
    """Returns ``(table, what, rows)`` for everything removed (or, with ``dry_run``, that would be).

    ``days`` is a whole number from 0 to ``rules.MAX_DAYS``; ``now`` a ``datetime`` (naive is UTC).
    On a partitioned ``system_logs`` the first ``system_logs`` entry counts the rows of the partitions
    dropped whole, the second the rows deleted one by one.

    Raises:
        ValidationError: a bad ``days`` or ``now``.
        DatabaseUnavailableError: the database did not answer (nothing is removed).
    """
    days = rules.whole_number(days, field="days", model="cleanup", minimum=0, maximum=rules.MAX_DAYS)
    now = dt.datetime.now(dt.timezone.utc) if now is None else rules.moment(now, field="now", model="cleanup")
    cutoff = now - dt.timedelta(days=days)
    present = await introspect.existing_tables()
    by_table = {m._meta.db_table: m for m in models if m._meta.db_table in present}
    results: list[tuple[str, str, int]] = []
    whole: list[tuple[Partition, int]] = []
    try:
        async with transaction():
            with translated("cleanup"):
                if SYSTEM_LOG_TABLE in by_table and await partitions.is_partitioned(SYSTEM_LOG_TABLE):
                    removed, whole = await _prune_partitioned_logs(cutoff)
                    results.append((SYSTEM_LOG_TABLE, f"logs older than {days} days, in whole partitions ({len(whole)})",
                                    sum(rows for _, rows in whole)))
                    results.append((SYSTEM_LOG_TABLE, f"logs older than {days} days", removed))
                elif SYSTEM_LOG_TABLE in by_table:
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
            with translated("cleanup"):
                await _drop_partitions(whole)  # last: the parent stays locked only until the commit
    except _DryRun:
        pass
    return results


@dataclass(frozen=True)
class MaintenanceReport:
    """What ``maintain`` did and found: partitions created, and the state of ``system_logs``' partitions."""

    created: list[str]
    logs: PartitionReport


async def maintain(settings: Settings | None = None, *, now: dt.datetime | None = None) -> MaintenanceReport:
    """Create the log partitions due (``LOG_PARTITION_INTERVAL``, ``LOG_PARTITIONS_AHEAD`` intervals ahead of
    ``now``) and report on them; rows found in the default partition are logged at WARNING.

    Idempotent, safe from several processes at once, and a no-op on SQLite or a plain ``system_logs``.

    Raises:
        ValidationError: a bad ``now``.
        DatabaseUnavailableError: the database did not answer.
    """
    settings = settings or Settings()
    created = await partitions.ensure_partitions(settings.log_partition_interval, settings.log_partitions_ahead,
                                                 now=now)
    report = await partitions.describe_partitions()
    if created:
        log.info("log partitions created", extra={"partitions": created})
    if report.default_rows:
        log.warning("%d row(s) in %s's default partition: dates no partition covers", report.default_rows,
                    SYSTEM_LOG_TABLE, extra={"default_rows": report.default_rows})
    return MaintenanceReport(created, report)
