"""Managers that need a setting (bcrypt cost, key-wrapping secret) read the context's ``Settings``."""

from __future__ import annotations

from datalayer.settings import Settings


class SettingsAware:
    """``self.settings`` is set by the context; a manager built by hand falls back to ``Settings()``."""

    settings: Settings | None = None

    @property
    def active_settings(self) -> Settings:
        if self.settings is None:
            self.settings = Settings()
        return self.settings
