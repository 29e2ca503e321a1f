"""The app datalayer serves: which packs it loads, its own models, and where its migrations and seeds live.

An app configures itself the way aerich and alembic projects do, in its own ``pyproject.toml``::

    [tool.datalayer]
    models = ["myapp.models"]      # the app's model modules (its Tortoise app)
    app = "models"                 # that app's label ("models", as aerich and Tortoise default)
    apps = ["core", "ml"]          # datalayer's packs to load (default: all of them)
    migrations = "migrations"      # the app's history goes in <migrations>/<app>/
    seeds = "seeds"                # the app's seed sets: <seeds>/<environment>.json
    src = "."                      # folder put on sys.path to import the models

``datalayer init`` writes that section. The environment overrides it (``DATALAYER_MODELS``,
``DATALAYER_APPS``, ``DATALAYER_APP_LABEL``, ``DATALAYER_MIGRATIONS_DIR``, ``DATALAYER_SEEDS_DIR``), and
``get_context(models=..., apps=...)`` or the commands' ``--models``/``--apps`` override both. The project
file is ``./pyproject.toml`` (the folder the command runs in), or ``DATALAYER_PROJECT`` (a file or folder).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datalayer.errors import ConfigurationError
from datalayer.packs import PACKS, Pack, select_packs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_APP_LABEL = "models"


@dataclass(frozen=True)
class Project:
    """Everything datalayer loads for one app. Paths are absolute."""

    root: Path
    """The app's folder: where its ``pyproject.toml`` is (or the working directory)."""
    models: tuple[str, ...] = ()
    """Module paths of the app's own models (one Tortoise app, labelled ``label``)."""
    label: str = DEFAULT_APP_LABEL
    packs: tuple[Pack, ...] = PACKS
    migrations_dir: Path = field(default=Path("migrations"))
    """The app's migration root; its history is ``migrations_dir / label``."""
    seeds_dir: Path = field(default=Path("seeds"))
    src: Path = field(default=Path("."))
    configured_in: Path | None = None
    """The ``pyproject.toml`` that held ``[tool.datalayer]``, if any."""

    @property
    def pack_labels(self) -> tuple[str, ...]:
        return tuple(pack.label for pack in self.packs)

    @property
    def app_migrations(self) -> Path:
        return self.migrations_dir / self.label

    def labels(self) -> list[str]:
        """Every Tortoise app label, in migration order: the packs, then the app's own."""
        return [*self.pack_labels, *([self.label] if self.models else [])]

    def importable(self) -> None:
        """Put the app's source folder on ``sys.path`` and import its model modules.

        A console script does not have the working directory on ``sys.path``; ``src`` puts it there.

        Raises:
            ConfigurationError: a model module does not import, naming it and where it was looked for.
        """
        source = str(self.src)
        if source not in sys.path:
            sys.path.insert(0, source)
        for name in self.models:
            try:
                module = importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001 - any failure importing the app's code is a config error
                raise ConfigurationError(
                    f"cannot import the app's models {name!r} ({exc.__class__.__name__}: {exc}); DATALAYER_MODELS "
                    f"(or [tool.datalayer] models, --models) takes module paths importable from {source}"
                ) from None
            if not _defines_models(module):
                raise ConfigurationError(
                    f"the app's models module {name!r} defines no Tortoise model; name the module that does "
                    "(a migration written from it would drop every table of the app)"
                )


def _defines_models(module: Any) -> bool:
    from tortoise.models import Model

    found = getattr(module, "__models__", None) or [getattr(module, attr) for attr in dir(module)]
    return any(isinstance(item, type) and issubclass(item, Model) and not item._meta.abstract for item in found)


def _find_pyproject() -> Path | None:
    given = os.environ.get("DATALAYER_PROJECT")
    if given:
        path = Path(given).expanduser()
        path = path / "pyproject.toml" if path.is_dir() else path
        if not path.exists():
            raise ConfigurationError(f"DATALAYER_PROJECT={given} does not exist; point it at the app's pyproject.toml")
        return path.resolve()
    here = Path.cwd()
    for folder in (here, *here.parents):  # like git: a command run in a subfolder finds the app's project
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and read_section(candidate):
            return candidate
    candidate = here / "pyproject.toml"
    return candidate if candidate.is_file() else None


def read_section(path: Path) -> dict[str, Any]:
    """The ``[tool.datalayer]`` table of a ``pyproject.toml`` ({} when it has none)."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path} is not valid TOML ({exc}); fix it or set DATALAYER_PROJECT") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path} ({exc.strerror or exc}); fix it or set DATALAYER_PROJECT") from None
    section = document.get("tool", {}).get("datalayer", {})
    if not isinstance(section, dict):
        raise ConfigurationError(f"{path}: [tool.datalayer] must be a table")
    return section


def _names(value: Any, source: str) -> tuple[str, ...]:
    """A list of module paths or labels from TOML (a list or one string) or the environment (comma-separated)."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
        raise ConfigurationError(f"{source} must be a list of names (or one comma-separated string), got {value!r}")
    names = tuple(item.strip() for item in items if item.strip())
    bad = [name for name in names if not all(part.isidentifier() for part in name.split("."))]
    if bad:
        raise ConfigurationError(f"{source}: {', '.join(map(repr, bad))} is not a module path (like myapp.models)")
    return names


def load_project(models: Sequence[str] | str | None = None, apps: Sequence[str] | str | None = None) -> Project:
    """The project of the working directory: ``[tool.datalayer]``, then the environment, then the arguments.

    Raises:
        ConfigurationError: an unknown pack, a label that is taken by a pack, an unreadable project file.
    """
    pyproject = _find_pyproject()
    section = read_section(pyproject) if pyproject else {}
    root = pyproject.parent if pyproject else Path.cwd()
    origin = f"{pyproject} [tool.datalayer]" if pyproject else "[tool.datalayer]"

    def pick(key: str, env: str, given: Any = None) -> tuple[Any, str]:
        if given is not None:
            return given, f"the {key} argument"
        if os.environ.get(env):
            return os.environ[env], env
        return section.get(key), f"{origin} {key}"

    model_value, model_source = pick("models", "DATALAYER_MODELS", models)
    app_value, app_source = pick("apps", "DATALAYER_APPS", apps)
    label, label_source = pick("app", "DATALAYER_APP_LABEL")
    label = label or DEFAULT_APP_LABEL
    if not isinstance(label, str) or not label.isidentifier():
        raise ConfigurationError(f"{label_source} must be a Python identifier (a Tortoise app label), got {label!r}")
    try:
        packs = select_packs(None if app_value is None else list(_names(app_value, app_source)) or None)
    except ConfigurationError as exc:
        raise ConfigurationError(str(exc).replace("DATALAYER_APPS", app_source)) from None
    module_names = tuple(m for m in _names(model_value, model_source) if not m.startswith("datalayer."))
    if module_names and label in {pack.label for pack in PACKS}:
        raise ConfigurationError(f"{label_source}={label!r} is the label of a datalayer pack; choose another")

    def folder(key: str, env: str, default: str) -> Path:
        value, source = pick(key, env)
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(f"{source} must be a folder path (a string), got {value!r}")
        path = Path(value or default).expanduser()
        return (path if path.is_absolute() else root / path).resolve()

    return Project(
        root=root,
        models=module_names,
        label=label,
        packs=packs,
        migrations_dir=folder("migrations", "DATALAYER_MIGRATIONS_DIR", "migrations"),
        seeds_dir=folder("seeds", "DATALAYER_SEEDS_DIR", "seeds"),
        src=folder("src", "DATALAYER_SRC", "."),
        configured_in=pyproject if section else None,
    )
