"""ML models by owner, stored model files with wrapped encryption keys, endpoints, and usage analytics per day.

Domain rules (seed 000): rate limits are positive, sizes, latencies and counts never negative, HTTP status
codes real ones; a file's encryption key is only ever stored wrapped, by ``store``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from tortoise import timezone

from datalayer.backends.sqlite_functions import utc_text
from datalayer.core import rules
from datalayer.errors import ValidationError
from datalayer.managers.base import ModelManager
from datalayer.managers.settings_aware import SettingsAware
from datalayer.ml.models import EndpointConfig, MLModel, ModelStatus, ModelUsage, StoredModel
from datalayer.security import keywrap
from datalayer.transactions import transaction
from datalayer.translate import translated


class MLModelManager(ModelManager[MLModel]):
    model = MLModel
    field_checks: ClassVar = {"tags": rules.string_list, "config": rules.json_object}

    async def find_all(
        self, *, user_id: Any = None, status: ModelStatus | str | None = None, limit: int = 100
    ) -> list[MLModel]:
        """Live models, newest first, optionally one owner's and/or in one status (``limit`` at most 1000).

        Raises ``ValidationError`` for an unknown status, a bad owner id or limit.
        """
        limit = rules.whole_number(limit, field="limit", model="MLModel", maximum=1000)
        queryset = self.query()
        if user_id is not None:
            queryset = queryset.filter(owner_id=self._key(user_id))
        if status is not None:
            queryset = queryset.filter(status=rules.enum_member(ModelStatus, status, field="status", model="MLModel"))
        with translated("MLModel"):
            return list(await queryset.order_by("-created_at", "-id").limit(limit))


class StoredModelManager(SettingsAware, ModelManager[StoredModel]):
    """``ctx.stored_models``: the file key is wrapped with ``DATALAYER_KEY_WRAPPING_SECRET`` before storing."""

    model = StoredModel
    guarded_fields: ClassVar = {"encryption_key_wrapped": "store (which wraps the key with DATALAYER_KEY_WRAPPING_SECRET)"}
    field_checks: ClassVar = {"size_bytes": rules.at_least(0, " bytes"), "encryption_key_wrapped": keywrap.wrapped_form}

    def _secret(self) -> str | None:
        secret = self.active_settings.key_wrapping_secret
        return secret.get_secret_value() if secret is not None else None

    async def store(
        self, ml_model_id: Any, *, storage_path: str, size_bytes: int, checksum: str,
        encryption_key: bytes | None = None,
    ) -> tuple[StoredModel, bytes]:
        """Record a stored file; returns ``(row, data_key)``. A new random key is made when none is given.

        ``encryption_key`` must be non-empty ``bytes`` (``ValidationError`` otherwise, nothing stored).
        """
        data_key = keywrap.new_data_key() if encryption_key is None else encryption_key
        async with transaction():
            stored = await self.create({"ml_model_id": self._key(ml_model_id), "storage_path": storage_path,
                                        "size_bytes": size_bytes, "checksum": checksum})
            wrapped = keywrap.wrap_key(data_key, self._secret(), str(stored.pk))
            with self.domain_write():
                stored = await self.update(stored.pk, {"encryption_key_wrapped": wrapped})
        return stored, data_key

    async def encryption_key(self, stored_model_id: Any) -> bytes:
        """The unwrapped data key of a stored file (``ValidationError`` if it has none or it does not unwrap)."""
        stored = await self.get(stored_model_id)
        if not stored.encryption_key_wrapped:
            raise ValidationError({"encryption_key_wrapped": "this stored model has no key"}, model="StoredModel")
        return keywrap.unwrap_key(stored.encryption_key_wrapped, self._secret(), str(stored.pk))


class EndpointConfigManager(ModelManager[EndpointConfig]):
    """``ctx.endpoint_configs``: an endpoint's path starts with ``/``; its rate limit is requests per minute."""

    model = EndpointConfig
    field_checks: ClassVar = {"rate_limit": rules.at_least(1, " request per minute; set is_active=False to close it"),
               "path": rules.starts_with("/", "/v1/predict"), "settings": rules.json_object}


class ModelUsageManager(ModelManager[ModelUsage]):
    """``ctx.model_usage``: one append-only row per served request, and per-model per-day statistics."""

    model = ModelUsage
    name = "model_usage"
    field_checks: ClassVar = {"latency_ms": rules.at_least(0, " ms"), "request_size": rules.at_least(0, " bytes"),
               "response_size": rules.at_least(0, " bytes"), "status_code": rules.between(100, 599)}

    async def record(
        self, ml_model_id: Any, *, status_code: int, latency_ms: float, api_key_id: Any = None,
        user_id: Any = None, endpoint: str | None = None, request_size: int = 0, response_size: int = 0,
        at: dt.datetime | None = None,
    ) -> ModelUsage:
        data: dict[str, Any] = {
            "ml_model_id": self._key(ml_model_id), "status_code": status_code, "latency_ms": latency_ms,
            "api_key_id": self._key(api_key_id) if api_key_id is not None else None,
            "user_id": self._key(user_id) if user_id is not None else None, "endpoint": endpoint,
            "request_size": request_size, "response_size": response_size, "at": at or timezone.now(),
        }
        return await self.create(data)

    async def usage_statistics(
        self, ml_model_id: Any = None, *, since: dt.datetime | None = None, until: dt.datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Per model per UTC day: requests, errors (status >= 400), average/max latency, bytes in and out.

        ``since`` (inclusive) and ``until`` (exclusive) are instants: an aware ``datetime`` in any zone, or a
        naive one read as UTC, as filters read them.
        """
        connection = ModelUsage._meta.db
        sql, params = self._statistics_query(connection.capabilities.dialect == "postgres", ml_model_id, since, until)
        with translated("ModelUsage"):
            rows = await connection.execute_query_dict(sql, params)
        return [
            {
                "ml_model_id": str(row["ml_model_id"]), "day": dt.date.fromisoformat(str(row["day"])),
                "requests": int(row["requests"]), "errors": int(row["errors"] or 0),
                "avg_latency_ms": float(row["avg_latency_ms"]), "max_latency_ms": float(row["max_latency_ms"]),
                "request_bytes": int(row["request_bytes"] or 0), "response_bytes": int(row["response_bytes"] or 0),
            }
            for row in rows
        ]

    def _statistics_query(self, postgres: bool, ml_model_id: Any, since: Any, until: Any) -> tuple[str, list[Any]]:
        """``usage_statistics``' statement and parameters (``$n`` on PostgreSQL, ``?`` on SQLite); the
        ``(ml_model_id, at)`` covering index answers it alone."""
        if since is not None:
            since = rules.moment(since, field="since", model="ModelUsage")
        if until is not None:
            until = rules.moment(until, field="until", model="ModelUsage")
        day = "to_char(\"at\" AT TIME ZONE 'UTC', 'YYYY-MM-DD')" if postgres else "date(\"at\")"
        conditions, params = [], []
        for clause, value in (('"ml_model_id" = {}', self._key(ml_model_id) if ml_model_id is not None else None),
                              ('"at" >= {}', since), ('"at" < {}', until)):
            if value is not None:
                params.append(value if postgres or not isinstance(value, dt.datetime) else utc_text(value))
                conditions.append(clause.format(f"${len(params)}" if postgres else "?"))
        if not postgres:
            params = [str(p) if not isinstance(p, str | int | float) else p for p in params]
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        sql = (
            f'SELECT "ml_model_id" AS ml_model_id, {day} AS day, COUNT(*) AS requests, '
            f'SUM(CASE WHEN "status_code" >= 400 THEN 1 ELSE 0 END) AS errors, '
            f'AVG("latency_ms") AS avg_latency_ms, MAX("latency_ms") AS max_latency_ms, '
            f'SUM("request_size") AS request_bytes, SUM("response_size") AS response_bytes '
            f'FROM "model_usage" {where} GROUP BY "ml_model_id", {day} ORDER BY day, ml_model_id'
        )
        return sql, params
