"""Pack declarations: each of datalayer's model packs is one Tortoise app with its own migration history.

A pack is one folder of ``datalayer/`` (``datalayer/<label>/models.py`` and ``managers.py``), one folder of
migrations (``migrations/<label>/``, shipped in the wheel as ``datalayer._migrations``) and one folder of seed
sets (``seeds/<label>/``, shipped as ``datalayer._seeds``). ``core`` is what every app needs (audit log,
cache entries, accounts); the others are the seed systems' domain packs and depend on ``core`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from datalayer.errors import ConfigurationError


@dataclass(frozen=True)
class Pack:
    """One of datalayer's Tortoise apps (Django's ``AppConfig``, piccolo's ``AppConfig``)."""

    label: str
    """The Tortoise app label: foreign keys say ``"<label>.Model"``; aerich records it in ``aerich.app``."""
    description: str
    depends_on: tuple[str, ...] = ()

    @property
    def models_module(self) -> str:
        return f"datalayer.{self.label}.models"

    @property
    def managers_module(self) -> str:
        return f"datalayer.{self.label}.managers"


CORE = Pack("core", "audit log, cache entries, users, sessions and API keys: what every app needs")

#: every pack, in dependency order (a pack comes after the packs it depends on)
PACKS: tuple[Pack, ...] = (
    CORE,
    Pack("agent", "the AI code agent (seed 001)", ("core",)),
    Pack("analysis", "microservices data analysis (seed 002)", ("core",)),
    Pack("ml", "the ML model upload API (seed 000)", ("core",)),
    Pack("characters", "the character creation platform (seed 003)", ("core",)),
)
BY_LABEL = {pack.label: pack for pack in PACKS}


def select_packs(labels: str | list[str] | tuple[str, ...] | None) -> tuple[Pack, ...]:
    """The packs named by ``labels`` (comma-separated or a list), plus ``core`` and each one's dependencies.

    ``None`` or ``"all"`` selects every pack (the default). Raises ``ConfigurationError`` for an unknown
    label, naming the known ones.
    """
    if labels is None or labels == "all" or labels == ["all"]:
        return PACKS
    names = [n.strip() for n in (labels.split(",") if isinstance(labels, str) else labels) if n.strip()]
    unknown = [n for n in names if n not in BY_LABEL]
    if unknown:
        raise ConfigurationError(
            f"DATALAYER_APPS names unknown pack(s) {', '.join(unknown)}; known: {', '.join(BY_LABEL)} (or 'all')"
        )
    wanted = {"core"} | set(names)
    for name in list(wanted):
        wanted |= set(BY_LABEL[name].depends_on)
    return tuple(pack for pack in PACKS if pack.label in wanted)


def bundled_folder(kind: str) -> Path:
    """The packs' ``migrations`` or ``seeds`` folder: ``datalayer._<kind>`` in a wheel, ``<kind>/`` in a checkout."""
    try:
        return Path(str(resources.files(f"datalayer._{kind}")))  # a regular package (it has an __init__.py)
    except ModuleNotFoundError:  # a source tree (or an editable install, which maps no data packages)
        return Path(__file__).resolve().parents[1] / kind
