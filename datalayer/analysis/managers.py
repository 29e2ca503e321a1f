"""System events, database statistics and retention (seed 002), reachable as ``ctx.system_logs``."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, ClassVar

from tortoise import Tortoise, timezone

from datalayer.analysis.models import AnalysisFile, DataAnalysis, LogLevel, SystemLog, ToolGeneration
from datalayer.core import rules
from datalayer.core.accounts import Session, SessionStatus, User
from datalayer.managers.base import ModelManager
from datalayer.transactions import transaction
from datalayer.translate import translated

log = logging.getLogger("datalayer.system_logs")


class SystemLogManager(ModelManager[SystemLog]):
    """``ctx.system_logs``: ``log_system_event``, ``get_database_stats``, ``cleanup_old_data``."""

    model = SystemLog
    field_checks: ClassVar = {"details": rules.json_object}

    async def log_system_event(
        self, service: str, level: LogLevel | str, message: str, details: dict[str, Any] | None = None
    ) -> SystemLog:
        """Store one event (and pass it to the ``datalayer.system_logs`` logger at the same level).

        ``level`` is a ``LogLevel`` or its name in any case, ``details`` a dict (a JSON object);
        ``ValidationError`` for anything else.
        """
        level = rules.enum_member(LogLevel, level, field="level", model="SystemLog")
        entry = await self.create({"service": service, "level": level, "message": message,
                                   "details": {} if details is None else details})
        log.log(logging.getLevelName(level.value), "%s: %s", service, message)
        return entry

    async def find_recent(
        self, *, service: str | None = None, level: LogLevel | str | None = None, limit: int = 100
    ) -> list[SystemLog]:
        """Newest events first, optionally of one service and/or level (``limit`` at most 1000)."""
        limit = rules.whole_number(limit, field="limit", model="SystemLog", maximum=1000)
        queryset = self.query()
        if service is not None:
            queryset = queryset.filter(service=rules.text(service, field="service", model="SystemLog"))
        if level is not None:
            queryset = queryset.filter(level=rules.enum_member(LogLevel, level, field="level", model="SystemLog"))
        with translated("SystemLog"):
            return list(await queryset.order_by("-created_at").limit(limit))

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
        rules.whole_number(days, field="days", model="SystemLog", minimum=1, maximum=rules.MAX_DAYS)
        cutoff = timezone.now() - dt.timedelta(days=days)
        async with transaction():
            with translated("cleanup"):
                logs = await SystemLog.filter(created_at__lt=cutoff).delete()
                sessions = await Session.all_objects.filter(expires_at__lt=cutoff).delete()
                sessions += await Session.all_objects.filter(
                    status__in=[SessionStatus.EXPIRED, SessionStatus.TERMINATED], updated_at__lt=cutoff
                ).delete()
        return {"system_logs": logs, "sessions": sessions}


class AnalysisFileManager(ModelManager[AnalysisFile]):
    """``ctx.analysis_files``: a file's size is never negative."""

    model = AnalysisFile

    field_checks: ClassVar = {"size_bytes": rules.at_least(0, " bytes")}
