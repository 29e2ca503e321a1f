"""Which manager class serves which model, and under which name the context exposes it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tortoise.models import Model

    from datalayer.managers.base import ModelManager

_MANAGERS: dict[type, type[ModelManager]] = {}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


def pluralize(word: str) -> str:
    if word.endswith("is"):
        return word[:-2] + "es"  # analysis -> analyses
    if word.endswith("y") and word[-2:-1] not in set("aeiou"):
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"


def default_manager_name(model: type[Model]) -> str:
    """``MLModel`` -> ``ml_models``, ``ProjectAnalysis`` -> ``project_analyses``."""
    return pluralize(snake_case(model.__name__))


_version = 0


def register(manager_class: type[ModelManager]) -> None:
    global _version
    _MANAGERS[manager_class.model] = manager_class
    _version += 1


def unregister(model: type[Model]) -> None:
    """Forget the manager subclass of ``model`` (the generic ``ModelManager`` serves it again)."""
    global _version
    if _MANAGERS.pop(model, None) is not None:
        _version += 1


def version() -> int:
    """Bumped on every registration, so contexts built earlier can refresh their name tables."""
    return _version


def manager_class_for(model: type[Model]) -> type[ModelManager] | None:
    return _MANAGERS.get(model)
