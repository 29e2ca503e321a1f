"""Reading the audit trail."""

from __future__ import annotations

from typing import Any

from datalayer.managers.base import ModelManager
from datalayer.models.audit_log import AuditLog


class AuditLogManager(ModelManager[AuditLog]):
    model = AuditLog

    async def history(self, model_or_table: type | str, record_id: Any, *, limit: int = 100) -> list[AuditLog]:
        """A record's changes, oldest first: ``await ctx.audit_logs.history(Article, article.id)``."""
        table = model_or_table if isinstance(model_or_table, str) else model_or_table._meta.db_table
        return list(
            await AuditLog.filter(table_name=table, record_id=str(record_id))
            .order_by("created_at", "id")
            .limit(limit)
        )

    async def by_actor(self, actor_id: Any, *, limit: int = 100) -> list[AuditLog]:
        return list(await AuditLog.filter(actor_id=self._key(actor_id)).order_by("-created_at").limit(limit))
