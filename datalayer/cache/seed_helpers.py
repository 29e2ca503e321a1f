"""Seed 002's named cache helpers (``cache_user_data``, ``get_cached_analysis_result``, ...), mixed into
``Cache``: each is one ``get``/``set``/``delete`` under the seed's key scheme (``datalayer.cache.keys``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from datalayer.cache import keys as cache_keys


class SeedHelpers:
    """The seed's helper names over ``Cache``'s generic API."""

    if TYPE_CHECKING:  # provided by Cache
        async def get(self, key: str, default: Any = None, *, persist: bool = False) -> Any: ...
        async def set(self, key: str, value: Any, ttl: float | None = None, *, persist: bool = False) -> bool: ...
        async def delete(self, *keys: str, persist: bool = False) -> int: ...

    async def cache_analysis_result(self, analysis_id: Any, result: Any, ttl: float | None = None) -> bool:
        return await self.set(cache_keys.analysis_result(analysis_id), result, ttl)

    async def get_cached_analysis_result(self, analysis_id: Any) -> Any:
        return await self.get(cache_keys.analysis_result(analysis_id))

    async def cache_user_data(self, user_id: Any, data: Any, ttl: float | None = None) -> bool:
        return await self.set(cache_keys.user(user_id), data, ttl)

    async def get_cached_user_data(self, user_id: Any) -> Any:
        return await self.get(cache_keys.user(user_id))

    async def invalidate_user_cache(self, user_id: Any) -> None:
        """Forget everything cached about one user: ``user:{id}`` and ``user_analyses:{id}``."""
        await self.delete(cache_keys.user(user_id), cache_keys.user_analyses(user_id))
