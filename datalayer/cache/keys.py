"""Cache keys: seed 002's scheme, model rows for read-through, all under a namespace.

A namespace (``CACHE_NAMESPACE``, default ``datalayer:<environment>``) prefixes every key, so two apps or
environments can share one Redis without seeing each other's entries.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from datalayer.cache.serialization import to_jsonable
from datalayer.errors import ValidationError

SYSTEM_STATS = "system_stats"


def user(user_id: Any) -> str:
    return f"user:{user_id}"


def user_analyses(user_id: Any) -> str:
    return f"user_analyses:{user_id}"


def analysis_result(analysis_id: Any) -> str:
    return f"analysis_result:{analysis_id}"


def tool_generation(tool_id: Any) -> str:
    return f"tool_generation:{tool_id}"


def api(endpoint: str, params: Any = None) -> str:
    """``api:{endpoint}:{hash}``; the hash is stable for equal params whatever their dict order."""
    canonical = json.dumps(to_jsonable(params), sort_keys=True, separators=(",", ":"))
    return f"api:{endpoint}:{hashlib.sha256(canonical.encode()).hexdigest()[:24]}"


def checked(key: str) -> str:
    """A caller's key, refused early when it cannot work."""
    if not isinstance(key, str) or not key:
        raise ValidationError({"key": f"cache keys are non-empty strings, got {key!r:.40}"})
    if len(key) > 1000:
        raise ValidationError({"key": f"cache keys are at most 1000 characters, got {len(key)}; hash long parts"})
    return key


class Namespace:
    """Turns a caller's key into the stored key and back."""

    def __init__(self, name: str) -> None:
        if not name or any(char.isspace() for char in name):
            raise ValidationError({"namespace": f"use a non-empty name without spaces, got {name!r}"})
        self.name = name
        self.prefix = f"{name}:"

    def __call__(self, key: str) -> str:
        return self.prefix + checked(key)

    def counters(self) -> str:
        """The hash of counters every process adds to (``Cache.publish_stats``)."""
        return f"{self.prefix}__counters__"

    def lock(self, key: str) -> str:
        return f"{self.prefix}lock:{checked(key)}"
