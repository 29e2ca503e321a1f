"""The root ``datalayer`` Typer app and the plumbing every command shares.

Commands never show a traceback for something a user can cause: ``run`` turns the library's errors (bad
URL, database down, unknown environment) into one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import typer
from pydantic import ValidationError as SettingsError
from rich.console import Console

from datalayer.errors import DataLayerError
from datalayer.settings import Settings

T = TypeVar("T")

app = typer.Typer(
    name="datalayer",
    help="Migrations, seeding, backups and health of the datalayer database (DATABASE_URL or DB_*).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)

EXIT_USAGE = 2


class Abort(Exception):
    """A user-facing failure: ``message`` is printed alone, then the process exits with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment; a bad value becomes one readable line (never a traceback)."""
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
        settings.target  # parse DATABASE_URL now, so a bad URL fails before anything runs
        return settings
    except SettingsError as exc:
        first = exc.errors()[0]
        raise fail(f"{first['msg'].removeprefix('Value error, ')}") from None
    except DataLayerError as exc:
        raise fail(str(exc)) from None


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one command's coroutine; library errors become one line and exit code 1."""
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return asyncio.run(_closing(coroutine))
    except Abort as exc:
        raise fail(str(exc), exc.code) from None
    except DataLayerError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None


async def _closing(coroutine: Coroutine[Any, Any, T]) -> T:
    from datalayer.context import close_context

    try:
        return await coroutine
    finally:
        await close_context()


def guard_production(is_production: bool, confirmed: bool, action: str) -> None:
    """Refuse a destructive ``action`` in production unless ``--yes-i-mean-production`` was given."""
    if is_production and not confirmed:
        raise fail(f"refusing to {action} in production (DATALAYER_ENV=production); "
                   "pass --yes-i-mean-production if you really mean it", EXIT_USAGE)
