"""The contract every cache backend meets: string values under string keys, with TTLs and a lock primitive.

Backends raise ``BackendUnavailable`` when they cannot answer; the ``Cache`` turns that into a miss (reads) or
a no-op (writes), so nothing above it asks whether a cache exists or works.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence


class BackendUnavailable(Exception):
    """The backend did not answer (down, slow, circuit open). Internal: never reaches a ``Cache`` caller."""


class CacheBackend(ABC):
    """Raw key/value storage. Keys arrive already namespaced; values arrive already serialised."""

    name: str = "backend"
    #: whether other processes read and write the same data (then the ``Cache`` keeps a durable epoch)
    shared: bool = False
    #: how many runs of the server this backend has connected to (a restart or a failover is a new run, whose
    #: data may predate writes this process heard of); stays 0 for backends that cannot lose or restore data
    runs: int = 0

    @abstractmethod
    async def get(self, key: str) -> str | None:
        """The value, or None when absent or expired."""

    @abstractmethod
    async def set(self, key: str, value: str, ttl_ms: int | None, *, only_if_absent: bool = False) -> bool:
        """Store ``value``; with ``only_if_absent`` only when no value is there (``SET NX``). True if stored."""

    @abstractmethod
    async def set_many(self, items: Sequence[tuple[str, str]], ttl_ms: int | None) -> None:
        """Store several values with one TTL in one round trip."""

    @abstractmethod
    async def delete(self, keys: Sequence[str]) -> int:
        """Remove ``keys``; the number that existed."""

    @abstractmethod
    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix``; the number removed."""

    @abstractmethod
    async def release_lock(self, key: str, token: str) -> bool:
        """Delete ``key`` only if it still holds ``token`` (so a lock that expired and was retaken survives)."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise ``BackendUnavailable`` unless the backend answers."""

    @abstractmethod
    async def add_counters(self, key: str, increments: Mapping[str, float]) -> None:
        """Add ``increments`` to the numeric fields of the counter set ``key`` (shared by every process)."""

    @abstractmethod
    async def read_counters(self, key: str) -> dict[str, float]:
        """The counter set ``key`` ({} when none was published)."""

    def describe_state(self) -> dict[str, object]:
        """Backend-specific facts for ``Cache.stats()`` (circuit state, size)."""
        return {}

    async def close(self) -> None:
        """Release connections. Never raises."""
