"""The root ``datalayer`` Typer app and the plumbing every command shares.

Commands never show a traceback for something a user can cause: ``run`` turns the library's errors (bad
URL, database down, unknown environment) into one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from datalayer.errors import DataLayerError
from datalayer.project import Project, load_project
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

MODELS_HELP = "the app's model modules, comma-separated (default: DATALAYER_MODELS, else tool.datalayer.models in pyproject.toml)"
APPS_HELP = "datalayer's packs to load, comma-separated, core always (default: DATALAYER_APPS, else all)"
_selection: dict[str, str | None] = {"models": None, "apps": None}
#: the settings the command loaded last: with SSH_HOST set, ``run`` opens the tunnel for them
_loaded: list[Settings] = []


@app.callback()
def _everywhere(
    models: str | None = typer.Option(None, "--models", help=MODELS_HELP),
    apps: str | None = typer.Option(None, "--apps", help=APPS_HELP),
) -> None:
    """Migrations, seeding, backups and health of the datalayer database (DATABASE_URL or DB_*)."""
    _selection.update(models=models, apps=apps)
    _loaded.clear()  # a previous invocation's settings (tests run several in one process)


def command(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``@app.command(name)`` that also takes ``--models`` and ``--apps`` (after the command's name)."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, models: str | None = None, apps: str | None = None, **kwargs: Any) -> Any:
            if models is not None:
                _selection["models"] = models
            if apps is not None:
                _selection["apps"] = apps
            return func(*args, **kwargs)

        signature = inspect.signature(func)
        extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=str | None,
                                   default=typer.Option(None, f"--{name}", help=text))
                 for name, text in (("models", MODELS_HELP), ("apps", APPS_HELP))]
        wrapper.__signature__ = signature.replace(parameters=[*signature.parameters.values(), *extra])  # type: ignore[attr-defined]
        wrapper.__annotations__ = {**func.__annotations__, "models": str | None, "apps": str | None}
        return app.command(name)(wrapper)

    return decorate


def current_project() -> Project:
    """What this command loads: ``--models``/``--apps``, else the environment and ``[tool.datalayer]``."""
    with user_errors():
        project = load_project(_selection["models"], _selection["apps"])
    try:
        project.importable()
    except DataLayerError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - the app's own code failed to import: one line, never a traceback
        modules = ", ".join(repr(module) for module in project.models)
        raise fail(f"cannot import the app's models {modules} ({exc.__class__.__name__}: {exc}); fix the module "
                   "or DATALAYER_MODELS (or [tool.datalayer] models, --models)") from None
    return project


async def open_context(settings: Settings, project: Project | None = None) -> Any:
    """The context with every app this command loads (``DataContext``)."""
    from datalayer.context import get_context

    project = project or current_project()
    return await get_context(settings=settings, models=project.models, apps=project.pack_labels)


class Abort(Exception):
    """A user-facing failure: ``message`` is printed alone, then the process exits with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` as one line on stderr (taken literally: ``[tool.datalayer]`` is not markup)."""
    errors.print(f"[red]error:[/red] {escape(' '.join(message.split()))}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def os_error(exc: OSError, doing: str = "") -> str:
    """One readable line for a failed file operation: what, which file, and the system's reason."""
    text = exc.strerror or str(exc) or exc.__class__.__name__
    if exc.filename is not None:
        text = f"{exc.filename}: {text}"
    return f"{doing}: {text}" if doing else text


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can cause (the library's, a file's) into one line on stderr and exit code 1."""
    try:
        yield
    except Abort as exc:
        raise fail(str(exc), exc.code) from None
    except DataLayerError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(os_error(exc)) from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment; a bad value becomes one readable line (never a traceback).

    ``Settings`` raises ``ConfigurationError`` (a ``DataLayerError``) naming the variable and the expected form.
    """
    try:  # fail() escapes: the message quotes user values, and "[x]" must not be read as markup
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
        _ = settings.target  # parse DATABASE_URL now, so a bad URL (or production without one) fails first
        _loaded[:] = [settings]
        return settings
    except DataLayerError as exc:
        raise fail(str(exc)) from None


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one command's coroutine; library and file errors become one line and exit code 1."""
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    with user_errors():
        return asyncio.run(_closing(coroutine))


async def _closing(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run the command with the SSH tunnel open around it (``SSH_HOST``: migrations, seeding and the context
    all connect through it), then close the context and the tunnel."""
    from datalayer.context import close_context
    from datalayer.tunnel import close_tunnel, open_tunnel

    try:
        tunnelled = bool(_loaded) and await open_tunnel(_loaded[-1]) is not None
    except BaseException:
        coroutine.close()
        raise
    try:
        return await coroutine
    finally:
        try:
            await close_context()
        finally:
            if tunnelled:
                await close_tunnel()


def guard_production(is_production: bool, confirmed: bool, action: str) -> None:
    """Refuse a destructive ``action`` in production unless ``--yes-i-mean-production`` was given."""
    if is_production and not confirmed:
        raise fail(f"refusing to {action} in production (DATALAYER_ENV=production); "
                   "pass --yes-i-mean-production if you really mean it", EXIT_USAGE)
