"""The agent's work items: lifecycle rules, retries, the claim_next queue, and the request/analysis chain."""

import asyncio
import datetime as dt
from collections import Counter

import pytest
from tortoise import timezone

from datalayer import ConflictError, NotFoundError, ValidationError
from datalayer.agent.models import ProjectAnalysis, TaskStatus


@pytest.fixture
async def request_row(ctx):
    return await ctx.parsed_requests.create({"raw_input": "add a login page", "intent": "feature"})


async def test_start_complete_records_worker_attempt_and_results(ctx):
    task = await ctx.tasks.create({"title": "write tests"})
    started = await ctx.tasks.start_task(task.id, "worker-1")
    assert (started.status, started.assigned_to, started.attempts) == (TaskStatus.RUNNING, "worker-1", 1)
    assert started.started_at is not None
    done = await ctx.tasks.complete_task(task.id, {"files": 3})
    assert done.status is TaskStatus.COMPLETED and done.results == {"files": 3} and done.completed_at


async def test_illegal_transitions_raise_validation_error_and_change_nothing(ctx):
    task = await ctx.tasks.create({"title": "t"})
    with pytest.raises(ValidationError) as info:
        await ctx.tasks.complete_task(task.id, {})  # pending -> completed skips running
    assert "status" in info.value.errors
    await ctx.tasks.cancel_task(task.id)
    with pytest.raises(ValidationError, match="cancelled task cannot become completed"):
        await ctx.tasks.complete_task(task.id, {})
    with pytest.raises(ValidationError):
        await ctx.tasks.start_task(task.id, "w")
    reloaded = await ctx.tasks.get(task.id)
    assert reloaded.status is TaskStatus.CANCELLED and reloaded.results is None


async def test_fail_task_retries_back_to_pending_while_attempts_remain(ctx):
    task = await ctx.tasks.create({"title": "flaky", "max_retries": 2})
    for attempt in (1, 2, 3):
        await ctx.tasks.start_task(task.id, "w")
        failed = await ctx.tasks.fail_task(task.id, f"boom {attempt}")
        expected = TaskStatus.PENDING if attempt <= 2 else TaskStatus.FAILED
        assert (failed.status, failed.attempts, failed.error_message) == (expected, attempt, f"boom {attempt}")
    with pytest.raises(ValidationError):
        await ctx.tasks.start_task(task.id, "w")


async def test_fail_task_without_retry_fails_at_once(ctx):
    task = await ctx.tasks.create({"title": "t"})
    await ctx.tasks.start_task(task.id, "w")
    assert (await ctx.tasks.fail_task(task.id, "fatal", retry=False)).status is TaskStatus.FAILED


async def test_find_by_status_orders_by_priority(ctx):
    low = await ctx.tasks.create({"title": "low", "priority": 1})
    high = await ctx.tasks.create({"title": "high", "priority": 9})
    await ctx.tasks.start_task((await ctx.tasks.create({"title": "busy"})).id, "w")
    assert [t.id for t in await ctx.tasks.find_by_status("pending")] == [high.id, low.id]
    assert len(await ctx.tasks.find_by_status(TaskStatus.RUNNING)) == 1
    with pytest.raises(ValidationError):
        await ctx.tasks.find_by_status("sleeping")


async def test_find_overdue_lists_unfinished_tasks_past_due(ctx):
    past = timezone.now() - dt.timedelta(hours=1)
    overdue = await ctx.tasks.create({"title": "late", "due_at": past})
    await ctx.tasks.create({"title": "future", "due_at": timezone.now() + dt.timedelta(hours=1)})
    finished = await ctx.tasks.create({"title": "done late", "due_at": past})
    await ctx.tasks.start_task(finished.id, "w")
    await ctx.tasks.complete_task(finished.id)
    assert [t.id for t in await ctx.tasks.find_overdue()] == [overdue.id]


async def test_claim_next_takes_highest_priority_then_oldest(ctx):
    first = await ctx.tasks.create({"title": "a", "priority": 1})
    urgent = await ctx.tasks.create({"title": "b", "priority": 5})
    claimed = await ctx.tasks.claim_next("w1")
    assert claimed.id == urgent.id and claimed.status is TaskStatus.RUNNING and claimed.assigned_to == "w1"
    assert (await ctx.tasks.claim_next("w2")).id == first.id
    assert await ctx.tasks.claim_next("w3") is None


async def test_claim_next_can_filter_by_task_type(ctx):
    await ctx.tasks.create({"title": "a", "task_type": "lint"})
    build = await ctx.tasks.create({"title": "b", "task_type": "build"})
    assert (await ctx.tasks.claim_next("w", task_type="build")).id == build.id


async def test_fifty_workers_claim_each_of_twenty_tasks_exactly_once(ctx):
    created = [await ctx.tasks.create({"title": f"task {i}", "priority": i % 3}) for i in range(20)]
    results = await asyncio.gather(*(ctx.tasks.claim_next(f"worker-{n}") for n in range(50)))
    claimed = [task for task in results if task is not None]
    assert len(claimed) == 20
    assert Counter(task.id for task in claimed) == Counter(task.id for task in created)
    rows = await ctx.tasks.find_by_status(TaskStatus.RUNNING)
    assert len(rows) == 20 and all(task.attempts == 1 for task in rows)
    owners = {task.id: task.assigned_to for task in claimed}
    assert all(owners[row.id] == row.assigned_to for row in rows)


async def test_task_statistics_count_by_status(ctx):
    for i in range(3):
        await ctx.tasks.create({"title": f"t{i}", "due_at": timezone.now() - dt.timedelta(minutes=1)})
    await ctx.tasks.start_task((await ctx.tasks.create({"title": "r"})).id, "w")
    stats = await ctx.tasks.get_task_statistics()
    assert stats["total"] == 4 and stats["by_status"]["pending"] == 3 and stats["by_status"]["running"] == 1
    assert stats["overdue"] == 3


async def test_request_analysis_task_and_file_chain(ctx, request_row):
    analysis = await ctx.project_analyses.create({"parsed_request_id": request_row.id, "project_name": "web"})
    await ctx.project_analyses.create({"parsed_request_id": request_row.id, "project_name": "api"})
    task = await ctx.tasks.create({"title": "t", "parsed_request_id": request_row.id,
                                   "project_analysis_id": analysis.id})
    await ctx.code_files.create({"project_analysis_id": analysis.id, "path": "src/b.py", "language": "python"})
    await ctx.code_files.create({"project_analysis_id": analysis.id, "path": "src/a.py", "size_bytes": 10})
    analyses = await ctx.project_analyses.find_by_parsed_request_id(request_row.id)
    assert [a.project_name for a in analyses] == ["web", "api"]
    assert [t.id for t in await ctx.tasks.find_by_parsed_request_id(request_row.id)] == [task.id]
    files = await ctx.code_files.find_by_project_analysis_id(analysis.id)
    assert [f.path for f in files] == ["src/a.py", "src/b.py"]


async def test_code_file_path_is_unique_per_live_analysis(ctx, request_row):
    analysis = await ctx.project_analyses.create({"parsed_request_id": request_row.id, "project_name": "web"})
    first = await ctx.code_files.create({"project_analysis_id": analysis.id, "path": "a.py"})
    with pytest.raises(ConflictError):
        await ctx.code_files.create({"project_analysis_id": analysis.id, "path": "a.py"})
    await ctx.code_files.delete(first.id)
    await ctx.code_files.create({"project_analysis_id": analysis.id, "path": "a.py"})


async def test_soft_deleted_analysis_is_hidden_but_its_files_and_tasks_stay_reachable(ctx, request_row):
    analysis = await ctx.project_analyses.create({"parsed_request_id": request_row.id, "project_name": "web"})
    code_file = await ctx.code_files.create({"project_analysis_id": analysis.id, "path": "a.py"})
    task = await ctx.tasks.create({"title": "t", "project_analysis_id": analysis.id})
    await ctx.project_analyses.delete(analysis.id)
    with pytest.raises(NotFoundError):
        await ctx.project_analyses.get(analysis.id)
    assert await ctx.project_analyses.find_by_parsed_request_id(request_row.id) == []
    assert [f.id for f in await ctx.code_files.find_by_project_analysis_id(analysis.id)] == [code_file.id]
    assert (await ctx.tasks.get(task.id)).project_analysis_id == analysis.id
    assert await ProjectAnalysis.all_objects.filter(pk=analysis.id).exists()


async def test_configuration_typed_get_and_set(ctx):
    await ctx.configurations.set_value("max_workers", 4, as_type=int, description="agent pool size")
    assert await ctx.configurations.get_value("max_workers", as_type=int) == 4
    await ctx.configurations.set_value("max_workers", "8", as_type=int)  # coerced, then stored as 8
    assert await ctx.configurations.get_value("max_workers") == 8
    assert (await ctx.configurations.find_by_key("max_workers")).description == "agent pool size"
    await ctx.configurations.set_value("features", {"beta": True}, scope="agent")
    assert await ctx.configurations.get_value("features", as_type=dict[str, bool]) == {"beta": True}
    assert await ctx.configurations.count() == 2


async def test_configuration_strings_stay_strings_on_create_and_update(ctx):
    await ctx.configurations.set_value("build", "123")
    assert await ctx.configurations.get_value("build") == "123"
    await ctx.configurations.set_value("build", "true")
    assert await ctx.configurations.get_value("build", as_type=str) == "true"


async def test_configuration_rejects_wrong_types_and_reports_missing_keys(ctx):
    await ctx.configurations.set_value("name", "agent")
    with pytest.raises(ValidationError) as info:
        await ctx.configurations.get_value("name", as_type=int)
    assert "name" in info.value.errors
    with pytest.raises(ValidationError):
        await ctx.configurations.set_value("limit", "many", as_type=int)
    with pytest.raises(NotFoundError):
        await ctx.configurations.get_value("nope")
    assert await ctx.configurations.get_value("nope", 7) == 7
