"""System events, database statistics and retention (seed 002), reachable as ``ctx.system_logs``."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from tortoise import Tortoise, timezone

from datalayer.errors import ValidationError
from datalayer.managers.base import ModelManager
from datalayer.core.accounts import Session, SessionStatus, User
from datalayer.analysis.models import DataAnalysis, LogLevel, SystemLog, ToolGeneration
from datalayer.transactions import transaction
from datalayer.translate import translated

log = logging.getLogger("datalayer.system_logs")


class SystemLogManager(ModelManager[SystemLog]):
    """``ctx.system_logs``: ``log_system_event``, ``get_database_stats``, ``cleanup_old_data``."""

    model = SystemLog

    async def log_system_event(
        self, service: str, level: LogLevel | str, message: str, details: dict[str, Any] | None = None
    ) -> SystemLog:
        """Store one event (and pass it to the ``datalayer.system_logs`` logger at the same level)."""
        try:
            level = LogLevel(level.upper() if isinstance(level, str) else level)
        except ValueError:
            allowed = ", ".join(item.value for item in LogLevel)
            raise ValidationError({"level": f"unknown level {level!r}; use one of {allowed}"},
                                  model="SystemLog") from None
        entry = await self.create({"service": service, "level": level, "message": message,
                                   "details": details or {}})
        log.log(logging.getLevelName(level.value), "%s: %s", service, message)
        return entry

    async def find_recent(
        self, *, service: str | None = None, level: LogLevel | str | None = None, limit: int = 100
    ) -> list[SystemLog]:
        queryset = self.query()
        if service is not None:
            queryset = queryset.filter(service=service)
        if level is not None:
            queryset = queryset.filter(level=LogLevel(level))
        with translated("SystemLog"):
            return list(await queryset.order_by("-created_at").limit(min(limit, 1000)))

    async def get_database_stats(self) -> dict[str, Any]:
        """Rows per table (live and soft-deleted) and activity in the last 24 hours."""
        now = timezone.now()
        day_ago = now - dt.timedelta(days=1)
        tables: dict[str, dict[str, int]] = {}
        with translated("stats"):
            for model in sorted(Tortoise.apps.get_models_iterable(), key=lambda m: m._meta.db_table):
                if model.__module__.startswith("aerich"):
                    continue
                if "deleted_at" in model._meta.fields_map:
                    total = await model.all_objects.all().count()
                    deleted = await model.all_objects.filter(deleted_at__isnull=False).count()
                    tables[model._meta.db_table] = {"rows": total - deleted, "deleted": deleted}
                else:
                    tables[model._meta.db_table] = {"rows": await model.all().count(), "deleted": 0}
            recent = {
                "users_created": await User.filter(created_at__gte=day_ago).count(),
                "data_analyses_created": await DataAnalysis.filter(created_at__gte=day_ago).count(),
                "tool_generations_created": await ToolGeneration.filter(created_at__gte=day_ago).count(),
                "logins": await User.filter(last_login_at__gte=day_ago).count(),
                "errors_logged": await SystemLog.filter(
                    created_at__gte=day_ago, level__in=[LogLevel.ERROR, LogLevel.CRITICAL]
                ).count(),
            }
            characters = Tortoise.apps["characters"].get("Character") if "characters" in Tortoise.apps else None
            if characters is not None:  # the characters pack is loaded (DATALAYER_APPS)
                recent["characters_created"] = await characters.filter(created_at__gte=day_ago).count()
        return {"tables": tables, "recent_activity": recent, "generated_at": now.isoformat()}

    async def cleanup_old_data(self, days: int = 30) -> dict[str, int]:
        """Delete system logs older than ``days`` and sessions that ended (expired/terminated) before then.

        Returns how many rows went from each table. Nothing else is touched: soft-deleted business rows
        stay restorable.
        """
        if not isinstance(days, int) or days < 1:
            raise ValidationError({"days": "must be a whole number of days >= 1"}, model="SystemLog")
        cutoff = timezone.now() - dt.timedelta(days=days)
        async with transaction():
            with translated("cleanup"):
                logs = await SystemLog.filter(created_at__lt=cutoff).delete()
                sessions = await Session.all_objects.filter(expires_at__lt=cutoff).delete()
                sessions += await Session.all_objects.filter(
                    status__in=[SessionStatus.EXPIRED, SessionStatus.TERMINATED], updated_at__lt=cutoff
                ).delete()
        return {"system_logs": logs, "sessions": sessions}
