"""``NearCache``: in-process copies of values read from Redis, dropped the moment Redis says they changed.

A read that finds its value here costs no round trip. It stays true because an ``InvalidationListener``
(``tracking.py``) hears from Redis about every write to a tracked key, by any process, and drops the copy;
while that listener is not connected the near cache holds nothing and answers nothing.

One race needs care: a GET answered before a write can reach us after the write's invalidation did, and
would then store a stale copy. So a fill is announced before the GET (``begin_fill``) and only lands if no
invalidation for that key arrived in between (``fill``), the placeholder scheme Redis' client-side caching
documentation describes.
"""

from __future__ import annotations

import copy
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

MISS: Any = object()


class NearCache:
    """Bounded LRU of decoded values; ``live`` only while invalidations are being received."""

    def __init__(self, max_entries: int = 10_000, max_ttl: float = 60.0) -> None:
        self.max_entries = max_entries
        self.max_ttl = max_ttl
        self.live = False
        self.hits = 0
        self._entries: OrderedDict[str, tuple[Any, float]] = OrderedDict()
        self._filling: dict[str, object] = {}

    def get(self, key: str) -> Any:
        """A private copy of the value (mutable parts copied, so callers may change it), or ``MISS``."""
        entry = self._entries.get(key)
        if entry is None:
            return MISS
        value, expires = entry
        if expires <= time.monotonic():
            del self._entries[key]
            return MISS
        self._entries.move_to_end(key)
        self.hits += 1
        return _detached(value)

    def begin_fill(self, key: str) -> object | None:
        """Call before reading ``key`` from Redis; pass the token to ``fill``. None while not live."""
        if not self.live:
            return None
        token = self._filling[key] = object()
        return token

    def fill(self, key: str, token: object | None, value: Any, ttl: float) -> None:
        """Keep a copy of ``value`` unless ``key`` was invalidated since ``begin_fill`` handed out ``token``."""
        if token is None or self._filling.get(key) is not token:
            return
        del self._filling[key]
        self._entries[key] = (_detached(value), time.monotonic() + min(ttl, self.max_ttl))
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def abandon_fill(self, key: str, token: object | None) -> None:
        if token is not None and self._filling.get(key) is token:
            del self._filling[key]

    def drop(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._entries.pop(key, None)
            self._filling.pop(key, None)

    def drop_prefix(self, prefix: str) -> None:
        self.drop([key for key in (*self._entries, *self._filling) if key.startswith(prefix)])

    def clear(self) -> None:
        self._entries.clear()
        self._filling.clear()

    def set_live(self, live: bool) -> None:
        """Going live or dropping out, everything held is forgotten: invalidations may have been missed."""
        self.clear()
        self.live = live

    def describe(self) -> dict[str, object]:
        return {"live": self.live, "entries": len(self._entries), "max_entries": self.max_entries,
                "hits": self.hits}


def _detached(value: Any) -> Any:
    """``value`` with its dicts and lists copied (a row's JSON fields); immutable parts are shared."""
    if isinstance(value, dict):
        return {key: copy.deepcopy(item) if isinstance(item, (dict, list)) else item
                for key, item in value.items()}
    if isinstance(value, list):
        return copy.deepcopy(value)
    return value
