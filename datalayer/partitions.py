"""Range partitions by ``created_at`` on PostgreSQL: ``system_logs`` gets one partition per day (or week, month).

The migration ``analysis/1_..._partition_system_logs`` makes ``system_logs`` a partitioned table with a
``DEFAULT`` partition (an insert never fails for lack of a partition); ``ensure_partitions`` creates the
partitions of the current interval and the next ``ahead`` ones before rows arrive (``datalayer maintain``, the
background monitor). Bounds are midnights UTC; a partition is named after its first day:
``system_logs_p20261130``. On SQLite, and on a table that is not partitioned, every call here is a no-op.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal, get_args

from tortoise.backends.base.client import BaseDBAsyncClient

from datalayer import introspect
from datalayer.core import rules
from datalayer.errors import ValidationError
from datalayer.transactions import transaction
from datalayer.translate import translated

SYSTEM_LOG_TABLE = "system_logs"
Interval = Literal["day", "week", "month"]
INTERVALS: tuple[str, ...] = get_args(Interval)
#: the most intervals ``ensure_partitions`` creates ahead of the current one
MAX_AHEAD = 366
_LABEL = "partitions"
_BOUND = {"start": r"FROM \('([^']*)'\)", "end": r"TO \('([^']*)'\)"}
_PARTITIONS_SQL = """
SELECT c.relname AS name, n.nspname AS schema, pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' AS is_default,
       extract(epoch FROM (regexp_match(pg_get_expr(c.relpartbound, c.oid), $2))[1]::timestamptz) AS start_epoch,
       extract(epoch FROM (regexp_match(pg_get_expr(c.relpartbound, c.oid), $3))[1]::timestamptz) AS end_epoch
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.inhparent = to_regclass($1)
ORDER BY is_default, start_epoch NULLS FIRST"""


@dataclass(frozen=True)
class Partition:
    """One partition of a range-partitioned table; ``start``/``end`` are UTC, ``None`` when unbounded."""

    name: str
    schema: str
    start: dt.datetime | None
    end: dt.datetime | None
    is_default: bool = False

    @property
    def qualified(self) -> str:
        return f"{quote(self.schema)}.{quote(self.name)}"

    def entirely_before(self, cutoff: dt.datetime) -> bool:
        """Every row it can hold is older than ``cutoff`` (the default partition never is)."""
        return not self.is_default and self.end is not None and self.end <= cutoff

    def straddles(self, cutoff: dt.datetime) -> bool:
        """It can hold rows on both sides of ``cutoff``."""
        return not self.is_default and (self.start is None or self.start < cutoff) and (
            self.end is None or self.end > cutoff)


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def check_interval(interval: object) -> Interval:
    """``interval`` if it is ``"day"``, ``"week"`` or ``"month"``; else ``ValidationError`` naming ``interval``."""
    if interval not in INTERVALS:
        raise ValidationError({"interval": f"must be one of {', '.join(INTERVALS)}, got {interval!r}"},
                              model=_LABEL)
    return interval  # type: ignore[return-value]  # checked against the Literal's members


def interval_start(moment: dt.datetime, interval: Interval) -> dt.datetime:
    """The UTC midnight starting the interval that holds ``moment`` (weeks start on Monday)."""
    utc = moment.astimezone(dt.timezone.utc)
    day = dt.datetime(utc.year, utc.month, utc.day, tzinfo=dt.timezone.utc)
    if interval == "week":
        return day - dt.timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return day


def next_start(start: dt.datetime, interval: Interval) -> dt.datetime:
    """The start of the interval after the one starting at ``start``."""
    if interval == "month":
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start + dt.timedelta(days=7 if interval == "week" else 1)


def wanted_ranges(now: dt.datetime, interval: Interval, ahead: int) -> list[tuple[dt.datetime, dt.datetime]]:
    """``[start, end)`` of the interval holding ``now`` and of the ``ahead`` intervals after it."""
    ranges, start = [], interval_start(now, interval)
    for _ in range(ahead + 1):
        end = next_start(start, interval)
        ranges.append((start, end))
        start = end
    return ranges


def missing_ranges(wanted: list[tuple[dt.datetime, dt.datetime]],
                   existing: list[Partition]) -> list[tuple[dt.datetime, dt.datetime]]:
    """The parts of ``wanted`` no existing range partition covers (so a new partition never overlaps one).

    Partitions made with another interval (the setting changed) leave gaps that this fills exactly.
    """
    covered = [(p.start, p.end) for p in existing if not p.is_default]
    missing: list[tuple[dt.datetime, dt.datetime]] = []
    for start, end in wanted:
        pieces = [(start, end)]
        for low, high in covered:
            pieces = [piece for a, b in pieces for piece in _subtract(a, b, low, high)]
        missing.extend(pieces)
    return missing


def _subtract(a: dt.datetime, b: dt.datetime, low: dt.datetime | None,
              high: dt.datetime | None) -> list[tuple[dt.datetime, dt.datetime]]:
    """``[a, b)`` minus ``[low, high)`` (``None``: unbounded)."""
    if (high is not None and high <= a) or (low is not None and low >= b):
        return [(a, b)]
    left = [(a, low)] if low is not None and low > a else []
    right = [(high, b)] if high is not None and high < b else []
    return left + right


def partition_name(table: str, start: dt.datetime) -> str:
    """``system_logs_p20261130`` (a start that is not midnight UTC adds the time: ``..._p20261130_120000``)."""
    utc = start.astimezone(dt.timezone.utc)
    stamp = f"{utc:%Y%m%d}" if utc.time() == dt.time(0) else f"{utc:%Y%m%d_%H%M%S}"
    return f"{table}_p{stamp}"


def _literal(moment: dt.datetime) -> str:
    return f"'{moment.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M:%S}+00'"


def _epoch(value: object) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(float(value), dt.timezone.utc)  # type: ignore[arg-type]


def _is_postgres(client: BaseDBAsyncClient) -> bool:
    return introspect.dialect_of(client) == "postgres"


async def _partitioned_schema(table: str, client: BaseDBAsyncClient) -> str | None:
    """The schema of ``table`` when it is a partitioned table, else ``None``."""
    if not _is_postgres(client):
        return None
    with translated(_LABEL):
        _, rows = await client.execute_query(
            "SELECT n.nspname AS schema, c.relkind::text AS kind FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)", [quote(table)])
    return rows[0]["schema"] if rows and rows[0]["kind"] == "p" else None


async def is_partitioned(table: str = SYSTEM_LOG_TABLE, client: BaseDBAsyncClient | None = None) -> bool:
    """Whether ``table`` is a partitioned table (always ``False`` on SQLite or when it does not exist)."""
    return await _partitioned_schema(table, client or introspect.connection()) is not None


async def partitions_of(table: str = SYSTEM_LOG_TABLE, client: BaseDBAsyncClient | None = None) -> list[Partition]:
    """The partitions of ``table``, oldest first, the default one last ([] when it is not partitioned)."""
    client = client or introspect.connection()
    if not _is_postgres(client):
        return []
    with translated(_LABEL):
        _, rows = await client.execute_query(_PARTITIONS_SQL, [quote(table), _BOUND["start"], _BOUND["end"]])
    return [Partition(row["name"], row["schema"], _epoch(row["start_epoch"]), _epoch(row["end_epoch"]),
                      bool(row["is_default"])) for row in rows]


async def count_rows(partition: Partition, client: BaseDBAsyncClient) -> int:
    """Exact ``count(*)`` of one partition's rows."""
    with translated(_LABEL):
        _, rows = await client.execute_query(f"SELECT count(*) AS n FROM {partition.qualified}")
    return int(rows[0]["n"])


async def ensure_partitions(interval: Interval = "day", ahead: int = 7, *, now: dt.datetime | None = None,
                            table: str = SYSTEM_LOG_TABLE) -> list[str]:
    """Create the partitions of the interval holding ``now`` and of the next ``ahead`` intervals; returns the
    names created ([] when all exist, on SQLite, or when ``table`` is not partitioned).

    Idempotent and safe to run from several processes at once: one transaction, serialised by an advisory
    lock, creates only what the catalog does not list yet (clipped to the gaps between existing partitions).
    Rows already in the default partition for a new partition's range are moved into it.

    Args:
        interval: ``"day"``, ``"week"`` (Monday to Monday) or ``"month"``, in UTC.
        ahead: whole number of intervals after the current one, 0 to ``MAX_AHEAD``.
        now: an aware ``datetime`` (naive is UTC); default the current time.
    Raises:
        ValidationError: a bad ``interval``, ``ahead`` or ``now``.
        DatabaseUnavailableError: the database did not answer.
    """
    interval = check_interval(interval)
    ahead = rules.whole_number(ahead, field="ahead", model=_LABEL, minimum=0, maximum=MAX_AHEAD)
    now = dt.datetime.now(dt.timezone.utc) if now is None else rules.moment(now, field="now", model=_LABEL)
    schema = await _partitioned_schema(table, introspect.connection())
    if schema is None:
        return []
    created: list[str] = []
    async with transaction() as client:
        with translated(_LABEL):
            await client.execute_query("SELECT pg_advisory_xact_lock(hashtext('datalayer.partitions'), hashtext($1))",
                                       [table])
        existing = await partitions_of(table, client)  # read under the lock: what another process just made
        default = next((p for p in existing if p.is_default), None)
        for start, end in missing_ranges(wanted_ranges(now, interval, ahead), existing):
            name = partition_name(table, start)
            await _create_partition(client, f"{quote(schema)}.{quote(table)}", f"{quote(schema)}.{quote(name)}",
                                    start, end, default)
            created.append(name)
    return created


async def _create_partition(client: BaseDBAsyncClient, parent: str, target: str, start: dt.datetime,
                            end: dt.datetime, default: Partition | None) -> None:
    bounds = f"FOR VALUES FROM ({_literal(start)}) TO ({_literal(end)})"
    in_range = '"created_at" >= $1 AND "created_at" < $2'
    with translated(_LABEL):
        if default is None or not (await client.execute_query(
                f"SELECT EXISTS (SELECT 1 FROM {default.qualified} WHERE {in_range}) AS x", [start, end]))[1][0]["x"]:
            await client.execute_script(f"CREATE TABLE IF NOT EXISTS {target} PARTITION OF {parent} {bounds}")
            return
        # the default partition holds rows of this range: creating the partition would fail its check, so
        # build it beside, move those rows in, then attach it
        await client.execute_script(
            f"CREATE TABLE {target} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)")
        await client.execute_query(
            f"WITH moved AS (DELETE FROM {default.qualified} WHERE {in_range} RETURNING *) "
            f"INSERT INTO {target} SELECT * FROM moved", [start, end])
        await client.execute_script(f"ALTER TABLE {parent} ATTACH PARTITION {target} {bounds}")


@dataclass(frozen=True)
class PartitionReport:
    """What ``describe_partitions`` finds: the range partitions, and the rows the default partition holds."""

    table: str
    partitioned: bool
    partitions: list[Partition]
    default_rows: int
    """Rows in the default partition: dates no partition covers (late or far-past rows)."""

    @property
    def covered_until(self) -> dt.datetime | None:
        """The end of the newest range partition (UTC), ``None`` without one."""
        ends = [p.end for p in self.partitions if not p.is_default and p.end is not None]
        return max(ends) if ends else None


async def describe_partitions(table: str = SYSTEM_LOG_TABLE) -> PartitionReport:
    """The partitions of ``table`` and the exact row count of its default partition (not partitioned: empty)."""
    client = introspect.connection()
    found = await partitions_of(table, client)
    default = next((p for p in found if p.is_default), None)
    rows = await count_rows(default, client) if default is not None else 0
    return PartitionReport(table, await is_partitioned(table, client),
                           [p for p in found if not p.is_default], rows)
