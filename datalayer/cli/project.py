"""``init``: make the app in the working directory a datalayer project (its configuration and migrations folder)."""

from __future__ import annotations

from pathlib import Path

from datalayer.cli.app import command, console, current_project, fail
from datalayer.project import Project, read_section


def _section(project: Project) -> str:
    models = ", ".join(f'"{module}"' for module in project.models)
    packs = ", ".join(f'"{label}"' for label in project.pack_labels)

    def relative(path: Path) -> str:
        try:
            return path.relative_to(project.root).as_posix() or "."
        except ValueError:
            return path.as_posix()

    return (
        "\n[tool.datalayer]\n"
        f"models = [{models}]\n"
        f'app = "{project.label}"\n'
        f"apps = [{packs}]\n"
        f'migrations = "{relative(project.migrations_dir)}"\n'
        f'seeds = "{relative(project.seeds_dir)}"\n'
        f'src = "{relative(project.src)}"\n'
    )


@command("init")
def init_command() -> None:
    """Scaffold the app in this folder: a tool.datalayer table in pyproject.toml, migrations/<app>/ and seeds/.

    Run it with DATALAYER_MODELS (or --models) naming your model modules; it changes nothing that exists.
    """
    project = current_project()
    if not project.models:
        raise fail("name your models first: DATALAYER_MODELS=myapp.models datalayer init (or --models myapp.models)")
    pyproject = project.root / "pyproject.toml"
    if pyproject.exists() and read_section(pyproject):
        console.print(f"{pyproject.name} already has [tool.datalayer]; left as it is", highlight=False, markup=False)
    else:
        existing = pyproject.read_text(encoding="utf-8") if pyproject.exists() else ""
        pyproject.write_text(existing.rstrip("\n") + ("\n" if existing else "") + _section(project), encoding="utf-8")
        console.print(f"wrote [tool.datalayer] to {pyproject}", highlight=False, markup=False)
    for folder in (project.app_migrations, project.seeds_dir):
        if folder.exists():
            console.print(f"{folder} exists; left as it is", highlight=False, markup=False)
        else:
            folder.mkdir(parents=True)
            console.print(f"created {folder}", highlight=False, markup=False)
    console.print("next: `datalayer migrate init` writes your first migration, `datalayer upgrade` applies "
                  "datalayer's and yours, `datalayer seed` loads seeds/<environment>.json", highlight=False, markup=False)
