"""``MissedWrites``: what this process could not remove from the backend, replayed before its next call there.

The fallback of ``epoch``: used when the namespace has no durable epoch (no database tier) or the database did
not answer the epoch's advance. It lives in this process's memory only, so it is lost if the process exits
before the backend answers again.
"""

from __future__ import annotations

import logging

from datalayer.cache.backend import CacheBackend

log = logging.getLogger("datalayer.cache")


class MissedWrites:
    """Keys to remove (without their epoch prefix: the replay adds the current one) or, once more than
    ``max_keys`` are missed, the whole namespace."""

    def __init__(self, max_keys: int = 10_000) -> None:
        self.max_keys = max_keys
        self.keys: set[str] = set()
        self.everything = False

    def __bool__(self) -> bool:
        return self.everything or bool(self.keys)

    def count(self) -> int:
        """How many removals wait (the whole namespace counts one)."""
        return len(self.keys) + self.everything

    def remember(self, names: list[str] | None) -> None:
        """Keep ``names`` (None: the whole namespace) to remove once the backend answers again."""
        if names is None or len(self.keys) + len(names) > self.max_keys:
            self.everything = True  # too many to track: clear the namespace once the backend is back
            self.keys.clear()
        elif not self.everything:
            self.keys.update(names)

    async def replay(self, backend: CacheBackend, prefix: str) -> None:
        """Remove what was missed, under ``prefix`` (the current epoch's). Raises ``BackendUnavailable``,
        keeping it all, if the backend still does not answer."""
        keys, self.keys = list(self.keys), set()
        everything, self.everything = self.everything, False
        try:
            if everything:
                await backend.delete_prefix(prefix)
            if keys:
                await backend.delete([prefix + name for name in keys])
        except BaseException:
            self.remember(None if everything else keys)
            raise
        log.info("replayed %s cache invalidation(s) missed while the backend was down",
                 "the namespace's" if everything else len(keys))
