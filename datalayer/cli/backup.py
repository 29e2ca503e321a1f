"""``backup FILE`` and ``restore FILE``: every table as JSON lines, with a progress bar.

A backup appears at FILE only once complete; a restore checks the whole file before touching the database.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from datalayer import backup as backups
from datalayer.cache.read_through import forget_cached_rows
from datalayer.cli.app import (
    Abort,
    command,
    console,
    fail,
    guard_production,
    load_settings,
    open_context,
    run,
)
from datalayer.settings import Settings


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


@command("backup")
def backup_command(
    file: Path = typer.Argument(..., help="where to write the backup (JSON lines)"),  # noqa: B008 - typer's way
) -> None:
    """Write every table to FILE from one snapshot, streamed in primary-key order (memory stays flat).

    The file appears only once complete (written beside it as .FILE.partial-PID, then renamed); an existing
    FILE is replaced only by a complete backup.
    """
    settings = load_settings()
    if file.is_dir():
        raise fail(f"cannot write the backup to {file}: it is a folder; name a file, e.g. {file / 'backup.jsonl'}")
    if not file.parent.is_dir():
        raise fail(f"cannot write the backup to {file}: the folder {file.parent} does not exist")

    async def work() -> dict[str, int]:
        context = await open_context(settings)
        try:
            with _progress() as bar:
                task = bar.add_task("backing up", total=None)
                return await backups.backup(file, context.models, settings,
                                            progress=lambda table, n: bar.update(task, advance=n, description=table))
        except OSError as exc:
            raise Abort(f"cannot write the backup to {file}: {exc.strerror or exc}") from None

    written = run(work())
    console.print(f"wrote {sum(written.values())} rows from {len(written)} tables to {file}", markup=False)


@command("restore")
def restore_command(
    file: Path = typer.Argument(..., help="a file written by `datalayer backup`"),  # noqa: B008 - typer's way
    replace: bool = typer.Option(False, "--replace", help="empty the tables in the backup before loading (refused "
                                 "when rows of a table outside the backup refer to them)"),
    yes_production: bool = typer.Option(False, "--yes-i-mean-production", help="allow --replace in production"),
) -> None:
    """Check FILE whole (trailer, row counts, sha256), then load it in one transaction.

    Refuses, leaving the database unchanged, a file cut short, edited or from an older datalayer, and a backup
    from a newer schema than the database.
    """
    settings = load_settings()
    if not file.is_file():
        raise fail(f"cannot restore {file}: " + ("it is a folder, not a backup file" if file.is_dir() else
                                                  "no such file"))
    if replace:
        guard_production(settings.is_production, yes_production, "replace tables")
    header = run(_header(file))
    total = _rows_listed(header)

    async def work(settings: Settings = settings) -> dict[str, int]:
        context = await open_context(settings)
        with _progress() as bar:
            task = bar.add_task("checking the file", total=total)
            restored = await backups.restore(file, context.models, settings, replace=replace,
                                             progress=lambda table, n: bar.update(task, advance=n, description=table))
        await forget_cached_rows(context.cache)  # the restore wrote around the managers
        return restored

    restored = run(work())
    schema = header.get("schema")
    shown = ", ".join(f"{app} {file}" for app, file in schema.items()) if isinstance(schema, dict) else schema
    console.print(f"restored {sum(restored.values())} rows into {len(restored)} tables from schema {shown}",
                  markup=False)


async def _header(file: Path) -> dict:
    return backups.read_header(file)


def _rows_listed(header: dict) -> int | None:
    """The header's row total, for the progress bar (``None`` when the header does not say: it is checked next)."""
    counts = header.get("tables")
    if isinstance(counts, dict) and all(isinstance(n, int) for n in counts.values()):
        return sum(counts.values())
    return None
