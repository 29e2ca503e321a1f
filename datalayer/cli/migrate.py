"""Schema commands: ``migrate`` (create), ``upgrade``, ``downgrade``, ``history``, ``check-migrations``.

Each loaded app has its own history (datalayer's packs, then the app's own models); see ``datalayer.migrations``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from datalayer import migration_writer, migrations
from datalayer.cli.app import command, console, current_project, fail, load_settings, run
from datalayer.errors import DataLayerError

APP_HELP = "the app (Tortoise label) to work on; default: your own app (DATALAYER_MODELS)"


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@command("migrate")
def migrate_command(
    name: str = typer.Argument("update", help="what the migration does, e.g. add_user_bio"),
    empty: bool = typer.Option(False, "--empty", help="write an empty migration to fill in by hand"),
    app_label: str | None = typer.Option(None, "--app", help=APP_HELP),
) -> None:
    """Create your app's next migration from its model changes (aerich, both dialects). Needs no database."""
    project = current_project()
    try:
        path = migration_writer.make_migration(name, empty=empty, app=app_label, project=project)
    except DataLayerError as exc:
        raise fail(str(exc)) from None
    if path is None:
        console.print("No changes detected: the models match the migration history.")
    else:
        console.print(f"Created {_shown(path)}")


@command("check-migrations")
def check_migrations_command() -> None:
    """Exit 1 when a model changed and no migration records it (for CI, like makemigrations --check)."""
    project = current_project()
    try:
        drifted = migration_writer.check_migrations(project)
    except DataLayerError as exc:
        raise fail(str(exc)) from None
    if drifted:
        raise fail(f"the models of {', '.join(drifted)} changed but no migration records it; "
                   "run `datalayer migrate <name>`")
    console.print(f"Migrations are in sync with the models ({', '.join(project.labels())}).")


@command("upgrade")
def upgrade_command() -> None:
    """Apply every pending migration of every loaded app (datalayer's packs first, then yours)."""
    settings = load_settings()
    project = current_project()
    applied = run(migrations.upgrade(settings, project))
    for name in applied:
        console.print(f"Applied {name}")
    console.print(f"{len(applied)} migration(s) applied to {settings.target.describe()}." if applied
                  else "Already up to date.")


@command("downgrade")
def downgrade_command(
    version: int = typer.Option(-1, "--version", "-v", help="roll back this version and every later one of the "
                                                               "app; -1 = only the last"),
    app_label: str | None = typer.Option(None, "--app", help="the app to roll back; default: the one whose "
                                                                "migration was applied last"),
) -> None:
    """Roll back the last migration, or every migration of --app from --version on."""
    settings = load_settings()
    rolled_back = run(migrations.downgrade(version, settings, app=app_label, project=current_project()))
    for name in rolled_back:
        console.print(f"Rolled back {name}")


@command("history")
def history_command() -> None:
    """Every migration file of every loaded app and whether the database has it."""
    settings = load_settings()
    project = current_project()
    applied = set(run(migrations.applied_migrations(settings, project)))
    table = Table("app", "migration", "state", title=f"Migrations of {settings.target.describe()}")
    for name in migrations.history(project):
        label, file = name.split("/", 1)
        table.add_row(label, file, "applied" if name in applied else "[yellow]pending[/yellow]")
    console.print(table)
