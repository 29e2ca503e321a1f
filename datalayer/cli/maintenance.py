"""``cleanup``: prune old system logs, expired sessions and rows soft-deleted long ago; ``maintain``: create
the log partitions ahead of time and report on them."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from datalayer.cli.app import command, console, load_settings, open_context, run
from datalayer.maintenance import MaintenanceReport, cleanup, maintain


@command("cleanup")
def cleanup_command(
    days: int = typer.Option(30, "--days", min=0, help="age in days beyond which rows are removed"),
    dry_run: bool = typer.Option(False, "--dry-run", help="count what would go, change nothing"),
) -> None:
    """Remove system logs older than N days, expired sessions, and rows soft-deleted more than N days ago."""
    settings = load_settings()

    async def work() -> list[tuple[str, str, int]]:
        context = await open_context(settings)
        return await cleanup(context.models, days=days, dry_run=dry_run)

    results = run(work())
    table = Table("table", "what", "would remove" if dry_run else "removed")
    for name, what, count in results:
        table.add_row(escape(name), escape(what), str(count))
    console.print(table)
    console.print(("dry run: nothing changed" if dry_run else "done") + f" ({sum(r[2] for r in results)} rows)")


@command("maintain")
def maintain_command() -> None:
    """Create the system-log partitions due (LOG_PARTITION_INTERVAL, LOG_PARTITIONS_AHEAD) and report on them."""
    settings = load_settings()

    async def work() -> MaintenanceReport:
        await open_context(settings)
        return await maintain(settings)

    report = run(work())
    logs = report.logs
    if not logs.partitioned:
        console.print(f"{logs.table} is not partitioned (SQLite, or its migration is not applied): nothing to do")
        return
    console.print(f"created {len(report.created)} partition(s)" + (f": {', '.join(report.created)}" if report.created else ""))
    until = logs.covered_until.isoformat() if logs.covered_until else "nothing"
    console.print(f"{logs.table}: {len(logs.partitions)} partition(s), covering up to {until} (UTC)")
    if logs.default_rows:
        console.print(f"[yellow]{logs.default_rows} row(s) in the default partition[/yellow]: dates no partition "
                      "covers (late, far-past or far-future rows); `datalayer cleanup` removes the old ones")
    else:
        console.print("default partition: empty")
