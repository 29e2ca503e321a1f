"""Cache keys: seed 002's scheme, model rows for read-through, all under a namespace.

A namespace (``CACHE_NAMESPACE``, default ``datalayer:<environment>``) prefixes every key, so two apps or
environments can share one Redis without seeing each other's entries. In Redis the prefix also carries the
namespace's epoch (``epoch``): ``<namespace>:<key>`` at epoch 0, ``<namespace>#<epoch>:<key>`` after; the
database tier's keys never do.
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


#: separates a namespace from its epoch in Redis keys; namespaces may not contain it, so no key of one namespace
#: can spell a key of another namespace's later epoch, nor the epoch's own record
EPOCH_MARK = "#"


def epoch_prefix(name: str, epoch: int) -> str:
    """The Redis prefix of namespace ``name`` at ``epoch``: ``name:`` at 0 (the keys of older releases),
    ``name#<epoch>:`` after."""
    return f"{name}:" if epoch == 0 else f"{name}{EPOCH_MARK}{epoch}:"


class Namespace:
    """Turns a caller's key into the stored key: in Redis under the current epoch (``at``), in the database tier
    without one (``durable``)."""

    def __init__(self, name: str) -> None:
        if not name or any(char.isspace() for char in name) or EPOCH_MARK in name:
            raise ValidationError(
                {"namespace": f"use a non-empty name without spaces or {EPOCH_MARK!r}, got {name!r}"})
        self.name = name
        self.base = f"{name}:"
        self.epoch = 0
        self.prefix = self.base

    def at(self, epoch: int) -> None:
        """Store and read Redis keys under ``epoch`` from now on."""
        self.epoch = epoch
        self.prefix = epoch_prefix(self.name, epoch)

    def __call__(self, key: str) -> str:
        """The Redis key of ``key`` at the current epoch."""
        return self.prefix + checked(key)

    def durable(self, key: str) -> str:
        """The database tier's key of ``key``: the same at every epoch."""
        return self.base + checked(key)

    def counters(self) -> str:
        """The hash of counters every process adds to (``Cache.publish_stats``); shared by every epoch."""
        return f"{self.base}__counters__"

    def lock(self, key: str, prefix: str | None = None) -> str:
        """The loader lock of ``key`` under ``prefix`` (default: the current epoch's)."""
        return f"{prefix or self.prefix}lock:{checked(key)}"

    def epoch_record(self) -> str:
        """The database tier's key holding the namespace's epoch (no namespace's ``durable`` key can spell it)."""
        return f"{EPOCH_MARK}epoch:{self.name}"
