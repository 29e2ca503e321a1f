"""An in-process LRU with TTLs: the backend when no ``REDIS_URL`` is set, same contract as Redis."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence

from datalayer.cache.backend import CacheBackend


class MemoryBackend(CacheBackend):
    """Bounded at ``max_entries`` (least recently used go first); expired entries vanish on access."""

    name = "memory"

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[str, tuple[str, float | None]] = OrderedDict()
        self._counters: dict[str, dict[str, float]] = {}

    def _live(self, key: str) -> str | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and expires <= time.monotonic():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    def _put(self, key: str, value: str, ttl_ms: int | None) -> None:
        expires = time.monotonic() + ttl_ms / 1000 if ttl_ms is not None else None
        self._data[key] = (value, expires)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    async def get(self, key: str) -> str | None:
        return self._live(key)

    async def set(self, key: str, value: str, ttl_ms: int | None, *, only_if_absent: bool = False) -> bool:
        if only_if_absent and self._live(key) is not None:
            return False
        self._put(key, value, ttl_ms)
        return True

    async def set_many(self, items: Sequence[tuple[str, str]], ttl_ms: int | None) -> None:
        for key, value in items:
            self._put(key, value, ttl_ms)

    async def delete(self, keys: Sequence[str]) -> int:
        removed = 0
        for key in keys:
            if self._live(key) is not None:
                removed += 1
            self._data.pop(key, None)
        return removed

    async def delete_prefix(self, prefix: str) -> int:
        doomed = [key for key in self._data if key.startswith(prefix)]
        live = sum(1 for key in doomed if self._live(key) is not None)
        for key in doomed:
            self._data.pop(key, None)
        return live

    async def add_counters(self, key: str, increments: Mapping[str, float]) -> None:
        counters = self._counters.setdefault(key, {})
        for field, amount in increments.items():
            counters[field] = counters.get(field, 0.0) + amount

    async def read_counters(self, key: str) -> dict[str, float]:
        return dict(self._counters.get(key, {}))

    async def release_lock(self, key: str, token: str) -> bool:
        if self._live(key) == token:
            del self._data[key]
            return True
        return False

    async def ping(self) -> None:
        return None

    def describe_state(self) -> dict[str, object]:
        return {"entries": len(self._data), "max_entries": self.max_entries}

    async def close(self) -> None:
        self._data.clear()
