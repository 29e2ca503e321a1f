"""Seed data commands: ``seed`` (apply or clear a seed set) and ``reset`` (drop, upgrade, seed)."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from datalayer import introspect, migrations, seeding
from datalayer.cache.read_through import forget_cached_rows
from datalayer.cli.app import (
    Abort,
    command,
    console,
    guard_production,
    load_settings,
    open_context,
    run,
)
from datalayer.context import DataContext, close_context
from datalayer.settings import Settings

ENV_HELP = "seed set: development, test, production, or a path to a .json seed file (default: DATALAYER_ENV)"
PRODUCTION_FLAG = typer.Option(False, "--yes-i-mean-production", help="allow this in production")


async def _require_tables(context: DataContext, seed_set: seeding.SeedSet) -> None:
    present = await introspect.existing_tables()
    models = {model.__name__: model for model in context.models}
    for block in seed_set.blocks:
        model = models.get(block.model)
        if model is not None and model._meta.db_table not in present:
            raise Abort(f"table {model._meta.db_table} does not exist; run `datalayer upgrade` first")


def _print_report(report: seeding.SeedReport, verbose: bool) -> None:
    if verbose:
        for outcome in report.outcomes:
            note = f"  ({outcome.note})" if outcome.note else ""
            console.print(f"{outcome.action:9} {outcome.model} {outcome.key}{note}", highlight=False, markup=False)
    counts = report.counts()
    summary = ", ".join(f"{counts[action]} {action}" for action in
                        ("created", "updated", "unchanged", "differs", "removed", "kept") if counts.get(action))
    console.print(f"seed set {report.seed_set}: {summary or 'nothing to do'}", markup=False)
    if counts.get("differs") and not verbose:
        console.print("some seeded rows differ from the seed; --verbose lists them, --force overwrites them")
    if report.generated_passwords:
        table = Table("user", "generated password", title="Generated passwords (shown once, stored as bcrypt)")
        for user, password in report.generated_passwords.items():
            table.add_row(escape(user), escape(password))
        console.print(table)


async def _seed(settings: Settings, environment: str, force: bool, clear: bool) -> seeding.SeedReport:
    context = await open_context(settings)
    seed_set = seeding.load_seed_set(environment, context.project)
    await _require_tables(context, seed_set)
    if clear:
        return await seeding.clear(context, seed_set)
    return await seeding.seed(context, seed_set, force=force)


@command("seed")
def seed_command(
    env: str = typer.Option(None, "--env", "-e", help=ENV_HELP),
    force: bool = typer.Option(False, "--force", help="overwrite seeded rows that differ from the seed"),
    clear: bool = typer.Option(False, "--clear", help="remove the rows this seed set created (only those)"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="list every row created, updated or skipped"),
    yes_production: bool = PRODUCTION_FLAG,
) -> None:
    """Apply a seed set idempotently (natural keys), in one transaction; --clear removes it again."""
    settings = load_settings()
    environment = env or settings.environment
    if clear:
        guard_production(settings.is_production or environment == "production", yes_production, "clear seed data")
    report = run(_seed(settings, environment, force, clear))
    _print_report(report, verbose)


async def drop_all_tables() -> list[str]:
    """Drop every table of the connected database (current schema on PostgreSQL)."""
    client = introspect.connection()
    tables = sorted(await introspect.existing_tables(client))
    if not tables:
        return []
    if introspect.dialect_of(client) == "postgres":
        await client.execute_script("DROP TABLE IF EXISTS " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")
    else:
        drops = "".join(f'DROP TABLE IF EXISTS "{t}";' for t in tables)
        await client.execute_script("PRAGMA foreign_keys=OFF")
        try:  # the connection is shared: a failed drop must not leave foreign keys off for everyone after
            await client.execute_script(drops)
        finally:
            await client.execute_script("PRAGMA foreign_keys=ON")
    return tables


async def _reset(settings: Settings, environment: str | None) -> tuple[list[str], list[str], seeding.SeedReport | None]:
    context = await open_context(settings)
    dropped = await drop_all_tables()
    await forget_cached_rows(context.cache)  # every cached row is gone from the database
    await close_context()
    applied = await migrations.upgrade(settings, context.project)
    report = None
    if environment != "none":
        context = await open_context(settings)
        report = await seeding.seed(context, seeding.load_seed_set(environment or settings.environment, context.project))
    return dropped, applied, report


@command("reset")
def reset_command(
    env: str = typer.Option(None, "--env", "-e", help=ENV_HELP + "; 'none' skips seeding"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="list every seeded row"),
    yes_production: bool = PRODUCTION_FLAG,
) -> None:
    """Drop every table, apply all migrations, then seed. Destroys all data."""
    settings = load_settings()
    guard_production(settings.is_production or env == "production", yes_production, "reset the database")
    dropped, applied, report = run(_reset(settings, env))
    console.print(f"dropped {len(dropped)} table(s), applied {len(applied)} migration(s) on "
                  f"{settings.target.describe()}", markup=False)
    if report is not None:
        _print_report(report, verbose)
