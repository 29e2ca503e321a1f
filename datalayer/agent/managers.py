"""Agent work (seed 001): tasks with a guarded lifecycle and a safe work queue, analyses, code files, configuration.

Domain rules: a task's ``status`` moves only along ``TASK_TRANSITIONS`` and ``attempts`` counts its starts,
so both change through the lifecycle methods alone; counters and sizes are never negative.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from tortoise import timezone
from tortoise.functions import Count

from datalayer.agent.models import (
    TASK_TRANSITIONS,
    CodeFile,
    Configuration,
    ProjectAnalysis,
    Task,
    TaskStatus,
)
from datalayer.core import rules
from datalayer.core.audit_log import AuditAction
from datalayer.errors import ConflictError, NotFoundError, ValidationError
from datalayer.managers import auditing
from datalayer.managers.base import ModelManager
from datalayer.managers.filters import filter_q
from datalayer.managers.validation import validate_input
from datalayer.transactions import transaction
from datalayer.translate import translated

T = TypeVar("T")
_MISSING = object()


def _adapter(as_type: Any) -> TypeAdapter[Any]:
    """A pydantic adapter of ``as_type``; ``ValidationError`` when ``as_type`` is not a type it can check."""
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(as_type)
        adapter.rebuild(raise_errors=True)  # a forward reference such as "bogus" fails here, not later
        return adapter
    except Exception:  # noqa: BLE001 - whatever fails to become an adapter (a bad forward reference) is no type
        raise ValidationError({"as_type": f"{rules.shown(as_type)} is not a type; pass e.g. int or list[str]"},
                              model="Configuration") from None


def _json_setting(key: str, value: Any) -> Any:
    """``value`` as a configuration stores it (the JSON rule of ``values.value_type``), or ValidationError
    naming ``key``. Checked before ``set_value`` encodes a str, which would hide NUL and surrogates."""
    try:
        return validate_input(Configuration, {"value": value}, "update")["value"]
    except ValidationError as exc:
        raise ValidationError({key: f"value {exc.errors.get('value', exc)}"}, model="Configuration") from None


class TaskManager(ModelManager[Task]):
    """``ctx.tasks``: status changes go through ``TASK_TRANSITIONS``; ``claim_next`` is a work queue."""

    model = Task
    guarded_fields: ClassVar = {
        "status": "start_task, complete_task, fail_task, cancel_task or claim_next (TASK_TRANSITIONS)",
        "attempts": "start_task or claim_next (each start counts one)",
    }
    #: a created task may start in any status (imports, seeds), with counters that are never negative
    field_checks: ClassVar = {"attempts": rules.at_least(0), "max_retries": rules.at_least(0)}

    async def find_by_status(self, status: TaskStatus | str, *, limit: int = 100) -> list[Task]:
        limit = rules.whole_number(limit, field="limit", model="Task", maximum=1000)
        with translated("Task"):
            return list(await self.query().filter(status=self._status(status))
                        .order_by("-priority", "created_at").limit(limit))

    async def find_overdue(self, *, limit: int = 100) -> list[Task]:
        """Unfinished tasks (pending or running) whose ``due_at`` has passed, most overdue first."""
        limit = rules.whole_number(limit, field="limit", model="Task", maximum=1000)
        with translated("Task"):
            return list(await self.query().filter(
                status__in=[TaskStatus.PENDING, TaskStatus.RUNNING], due_at__lt=timezone.now()
            ).order_by("due_at").limit(limit))

    async def find_by_parsed_request_id(self, parsed_request_id: Any) -> list[Task]:
        with translated("Task"):
            return list(await self.query().filter(parsed_request_id=self._key(parsed_request_id))
                        .order_by("-priority", "created_at"))

    @staticmethod
    def _status(status: TaskStatus | str) -> TaskStatus:
        return rules.enum_member(TaskStatus, status, field="status", model="Task")

    async def _transition(
        self, task_id: Any, target: TaskStatus, values: Callable[[Task], dict[str, Any]]
    ) -> Task:
        """Move a task to ``target`` under a row lock, refusing moves ``TASK_TRANSITIONS`` does not allow."""
        key = self._key(task_id)
        async with transaction():
            with translated("Task"):
                task = await self._locked_row(key, deleted=False)
                return await self._move(task, target, values(task))

    async def _move(self, task: Task, target: TaskStatus, values: dict[str, Any]) -> Task:
        if target not in TASK_TRANSITIONS[task.status]:
            raise ValidationError(
                {"status": f"a {task.status.value} task cannot become {target.value}"}, model="Task"
            )
        values = validate_input(Task, {"status": target, **values}, "update")
        if errors := self.domain_errors(values, partial=True):
            raise ValidationError(errors, model="Task")
        changes = auditing.diff(Task, task, values)
        await self._apply(task, values)
        await auditing.write_audit(Task, AuditAction.UPDATE, task.pk, changes)
        await self._written([task.pk])
        return task

    async def start_task(self, task_id: Any, assigned_to: str) -> Task:
        """pending -> running, counting the attempt; ``assigned_to`` names the worker (a non-empty string)."""
        rules.text(assigned_to, field="assigned_to", model="Task")
        return await self._transition(task_id, TaskStatus.RUNNING, lambda task: self._running(task, assigned_to))

    @staticmethod
    def _running(task: Task, worker: str) -> dict[str, Any]:
        return {"assigned_to": worker, "started_at": timezone.now(), "attempts": task.attempts + 1,
                "error_message": None}

    async def complete_task(self, task_id: Any, results: Any = None) -> Task:
        return await self._transition(task_id, TaskStatus.COMPLETED,
                                      lambda task: {"results": results, "completed_at": timezone.now()})

    async def cancel_task(self, task_id: Any) -> Task:
        return await self._transition(task_id, TaskStatus.CANCELLED, lambda task: {"completed_at": timezone.now()})

    async def fail_task(self, task_id: Any, error: str, retry: bool = True) -> Task:
        """Record a failure: back to pending while retries remain (``attempts <= max_retries``), else failed."""
        key = self._key(task_id)
        async with transaction():
            with translated("Task"):
                task = await self._locked_row(key, deleted=False)
                if retry and task.status is TaskStatus.RUNNING and task.attempts <= task.max_retries:
                    return await self._move(task, TaskStatus.PENDING,
                                            {"error_message": error, "assigned_to": None, "started_at": None})
                return await self._move(task, TaskStatus.FAILED,
                                        {"error_message": error, "completed_at": timezone.now()})

    async def claim_next(self, worker: str, *, task_type: str | None = None) -> Task | None:
        """Hand the most urgent pending task to ``worker``, or None when there is none.

        Many workers may call this at once and each task goes to exactly one of them: PostgreSQL locks the
        chosen row with ``FOR UPDATE SKIP LOCKED`` (others skip it instead of waiting); SQLite has one
        writer at a time and the transaction holds it.
        """
        rules.text(worker, field="worker", model="Task")
        of_type = filter_q(Task, {"task_type": task_type}) if task_type is not None else None
        async with transaction():
            with translated("Task"):
                queryset = self.query().filter(status=TaskStatus.PENDING)
                if of_type is not None:
                    queryset = queryset.filter(of_type)
                task = await queryset.order_by("-priority", "created_at", "id") \
                    .select_for_update(skip_locked=True).first()
                if task is None:
                    return None
                return await self._move(task, TaskStatus.RUNNING, self._running(task, worker))

    async def get_task_statistics(self) -> dict[str, Any]:
        """Counts by status, overdue count and the total."""
        with translated("Task"):
            rows = await self.query().annotate(n=Count("id")).group_by("status").values("status", "n")
            overdue = await self.query().filter(
                status__in=[TaskStatus.PENDING, TaskStatus.RUNNING], due_at__lt=timezone.now()
            ).count()
        by_status = {status.value: 0 for status in TaskStatus}
        for row in rows:
            by_status[TaskStatus(row["status"]).value] = row["n"]
        return {"total": sum(by_status.values()), "by_status": by_status, "overdue": overdue}


class ProjectAnalysisManager(ModelManager[ProjectAnalysis]):
    model = ProjectAnalysis

    async def find_by_parsed_request_id(self, parsed_request_id: Any) -> list[ProjectAnalysis]:
        with translated("ProjectAnalysis"):
            return list(await self.query().filter(parsed_request_id=self._key(parsed_request_id))
                        .order_by("created_at"))


class CodeFileManager(ModelManager[CodeFile]):
    model = CodeFile
    field_checks: ClassVar = {"size_bytes": rules.at_least(0, " bytes")}

    async def find_by_project_analysis_id(self, project_analysis_id: Any) -> list[CodeFile]:
        with translated("CodeFile"):
            return list(await self.query().filter(project_analysis_id=self._key(project_analysis_id))
                        .order_by("path"))


class ConfigurationManager(ModelManager[Configuration]):
    """``ctx.configurations``: ``get_value("max_workers", 4, as_type=int)``, ``set_value(key, value)``."""

    model = Configuration

    async def find_by_key(self, key: str) -> Configuration | None:
        rules.text(key, field="key", model="Configuration")
        with translated("Configuration"):
            return await self.query().filter(key=key).first()

    async def get_value(self, key: str, default: Any = _MISSING, *, as_type: type[T] | Any = None) -> Any:
        """The stored value, checked (and coerced) against ``as_type`` when given.

        A missing key returns ``default``, or raises ``NotFoundError`` when no default is given.
        ``ValidationError`` when ``as_type`` is not a type pydantic can check, whether or not the key is set.
        """
        adapter = None if as_type is None else _adapter(as_type)
        found = await self.find_by_key(key)
        if found is None:
            if default is _MISSING:
                raise NotFoundError("Configuration", key, f"configuration {key!r} is not set")
            return default
        if adapter is None:
            return found.value
        try:
            return adapter.validate_python(found.value)
        except PydanticValidationError:
            raise ValidationError({key: f"stored value {rules.shown(found.value)} is not a {rules.shown(as_type)}"},
                                  model="Configuration") from None

    async def set_value(
        self, key: str, value: Any, *, scope: str | None = None, description: str | None = None,
        as_type: type[T] | Any = None,
    ) -> Configuration:
        """Create or replace ``key``; with ``as_type`` the value is checked first.

        JSON values only, under the JSON rule of every write (no NUL or lone surrogates in text, finite
        numbers, bounded nesting): ``ValidationError`` naming ``key`` otherwise, and nothing is written.
        """
        rules.text(key, field="key", model="Configuration")
        value = _json_setting(key, value)
        if as_type is not None:
            adapter = _adapter(as_type)
            try:
                value = adapter.dump_python(adapter.validate_python(value), mode="json")
            except (PydanticValidationError, ValueError):  # a serialisation error is a ValueError
                raise ValidationError({key: f"value {rules.shown(value)} is not a {rules.shown(as_type)}"},
                                      model="Configuration") from None
            value = _json_setting(key, value)
        fields: dict[str, Any] = {"value": value}
        if scope is not None:
            fields["scope"] = scope
        if description is not None:
            fields["description"] = description
        for attempt in (1, 2):  # a concurrent caller may create the key between our read and our insert
            try:
                async with transaction():  # a savepoint in a caller's transaction: a lost race leaves it usable
                    found = await self.find_by_key(key)
                    if found is not None:
                        return await self.update(found.pk, fields)
                    # a new instance decodes str input as JSON text (Tortoise), so hand it the encoded string
                    encoded = json.dumps(value) if isinstance(value, str) else value
                    return await self.create({"key": key, **fields, "value": encoded})
            except ConflictError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")
