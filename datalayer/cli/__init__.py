"""The ``datalayer`` command line (also ``python -m datalayer``), one module per group of commands."""

from __future__ import annotations

from datalayer.cli import backup, inspect, maintenance, migrate, project, seed, setup  # noqa: F401 - registers commands
from datalayer.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
