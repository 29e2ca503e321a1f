"""Schema commands: ``migrate`` (create), ``upgrade``, ``downgrade``, ``history``, ``check-migrations``."""

from __future__ import annotations

import typer
from rich.table import Table

from datalayer import migrations
from datalayer.cli.app import app, console, fail, load_settings, run
from datalayer.errors import DataLayerError


@app.command("migrate")
def migrate_command(
    name: str = typer.Argument("update", help="what the migration does, e.g. add_user_bio"),
    empty: bool = typer.Option(False, "--empty", help="write an empty migration to fill in by hand"),
) -> None:
    """Create the next migration from the model changes (aerich, both dialects). Needs no database."""
    try:
        path = migrations.make_migration(name, empty=empty)
    except DataLayerError as exc:
        raise fail(str(exc)) from None
    if path is None:
        console.print("No changes detected: the models match the migration history.")
    else:
        console.print(f"Created {path.relative_to(migrations.MIGRATIONS_DIR.parent)}")


@app.command("check-migrations")
def check_migrations_command() -> None:
    """Exit 1 when a model changed and no migration records it (for CI, like makemigrations --check)."""
    try:
        missing = migrations.check_migrations()
    except DataLayerError as exc:
        raise fail(str(exc)) from None
    if missing:
        raise fail("the models changed but no migration records it; run `datalayer migrate <name>`")
    console.print("Migrations are in sync with the models.")


@app.command("upgrade")
def upgrade_command() -> None:
    """Apply every pending migration."""
    settings = load_settings()
    applied = run(migrations.upgrade(settings))
    for name in applied:
        console.print(f"Applied {name}")
    console.print(f"{len(applied)} migration(s) applied to {settings.target.describe()}." if applied
                  else "Already up to date.")


@app.command("downgrade")
def downgrade_command(
    version: int = typer.Option(-1, "--version", "-v", help="roll back this version and every later one; "
                                                               "-1 = only the last"),
) -> None:
    """Roll back the last migration, or every migration from --version on."""
    settings = load_settings()
    rolled_back = run(migrations.downgrade(version, settings))
    for name in rolled_back:
        console.print(f"Rolled back {name}")


@app.command("history")
def history_command() -> None:
    """Every migration file and whether the database has it."""
    settings = load_settings()
    applied = set(run(migrations.applied_migrations(settings)))
    table = Table("migration", "state", title=f"Migrations of {settings.target.describe()}")
    for name in migrations.history():
        table.add_row(name, "applied" if name in applied else "[yellow]pending[/yellow]")
    console.print(table)
