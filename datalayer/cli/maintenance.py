"""``cleanup``: prune old system logs, expired sessions and rows soft-deleted long ago."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from datalayer.cli.app import command, console, load_settings, open_context, run
from datalayer.maintenance import cleanup


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
