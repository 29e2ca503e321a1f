"""Data analyses and their files, tool generations, system events, database statistics and retention."""

import datetime as dt

import pytest
from tortoise import timezone

from datalayer import ConfigurationError, NotFoundError, ValidationError
from datalayer.analysis.models import LogLevel, SystemLog
from datalayer.core.accounts import Session


@pytest.fixture
async def analyst(ctx):
    return await ctx.users.create_user("ana@example.com", "password123", username="ana")


async def test_log_system_event_stores_the_event(ctx):
    entry = await ctx.system_logs.log_system_event("data_analyzer", "info", "Analysis completed",
                                                   {"analysis_id": "123", "duration": 5.2})
    assert entry.level is LogLevel.INFO and entry.details == {"analysis_id": "123", "duration": 5.2}
    await ctx.system_logs.log_system_event("gateway", LogLevel.ERROR, "upstream timeout")
    errors = await ctx.system_logs.find_recent(level="ERROR")
    assert [e.message for e in errors] == ["upstream timeout"]
    assert [e.service for e in await ctx.system_logs.find_recent(service="data_analyzer")] == ["data_analyzer"]


async def test_log_system_event_rejects_unknown_levels(ctx):
    with pytest.raises(ValidationError) as info:
        await ctx.system_logs.log_system_event("svc", "LOUD", "x")
    assert "level" in info.value.errors
    assert await ctx.system_logs.count() == 0


async def test_a_stored_level_the_enum_does_not_list_is_a_library_error_naming_it_on_every_read(ctx):
    """A row written by raw SQL, or by a version of the app whose LogLevel had more members: every read names
    the field, the value and the fix instead of raising Tortoise's bare ValueError."""
    entry = await ctx.system_logs.log_system_event("svc", "INFO", "kept")
    await ctx.raw("UPDATE system_logs SET level = 'TRACE' WHERE id = $1", [str(entry.id)] if ctx.target.engine
                  == "sqlite" else [entry.id])
    for read in (lambda: ctx.system_logs.get(entry.id), lambda: ctx.system_logs.find_many(),
                 lambda: ctx.system_logs.find_after(None), lambda: ctx.system_logs.find_one({"service": "svc"}),
                 lambda: ctx.system_logs.find_recent(service="svc")):
        with pytest.raises(ConfigurationError) as caught:
            await read()
        assert "SystemLog.level" in str(caught.value) and "'TRACE'" in str(caught.value)
        assert "LogLevel does not list" in str(caught.value)
    await ctx.raw("UPDATE system_logs SET level = 'WARNING' WHERE level = 'TRACE'")
    assert (await ctx.system_logs.get(entry.id)).level is LogLevel.WARNING


async def test_system_logs_are_not_audited(ctx):
    await ctx.system_logs.log_system_event("svc", "INFO", "x")
    assert await ctx.audit_logs.count() == 0


async def test_database_stats_count_rows_per_table_and_recent_activity(ctx, analyst):
    analysis = await ctx.data_analyses.create({"user_id": analyst.id, "title": "churn"})
    gone = await ctx.data_analyses.create({"user_id": analyst.id, "title": "old"})
    await ctx.data_analyses.delete(gone.id)
    await ctx.analysis_files.create({"analysis_id": analysis.id, "filename": "a.csv", "file_type": "csv",
                                     "storage_path": "s3://b/a.csv"})
    await ctx.tool_generations.create({"user_id": analyst.id, "tool_type": "chart", "prompt": "bar chart"})
    await ctx.system_logs.log_system_event("svc", "ERROR", "boom")
    stats = await ctx.system_logs.get_database_stats()
    assert stats["tables"]["users"] == {"rows": 1, "deleted": 0}
    assert stats["tables"]["data_analyses"] == {"rows": 1, "deleted": 1}
    assert stats["tables"]["analysis_files"]["rows"] == 1 and stats["tables"]["system_logs"]["rows"] == 1
    recent = stats["recent_activity"]
    assert (recent["users_created"], recent["tool_generations_created"], recent["errors_logged"]) == (1, 1, 1)


async def test_cleanup_old_data_removes_old_logs_and_ended_sessions_only(ctx, analyst):
    old = await ctx.system_logs.log_system_event("svc", "INFO", "old")
    await ctx.system_logs.log_system_event("svc", "INFO", "new")
    long_ago = timezone.now() - dt.timedelta(days=40)
    await SystemLog.filter(pk=old.id).update(created_at=long_ago)
    stale, _ = await ctx.sessions.create_session(analyst.id)
    await Session.filter(pk=stale.id).update(expires_at=long_ago)
    fresh, _ = await ctx.sessions.create_session(analyst.id)
    analysis = await ctx.data_analyses.create({"user_id": analyst.id, "title": "keep me"})
    removed = await ctx.system_logs.cleanup_old_data(days=30)
    assert removed == {"system_logs": 1, "sessions": 1}
    assert [e.message for e in await ctx.system_logs.find_recent()] == ["new"]
    assert await ctx.sessions.find(fresh.id) is not None and await ctx.sessions.find(stale.id) is None
    assert await ctx.data_analyses.find(analysis.id) is not None


async def test_cleanup_old_data_needs_a_positive_day_count(ctx):
    for days in (0, -3):
        with pytest.raises(ValidationError) as info:
            await ctx.system_logs.cleanup_old_data(days)
        assert "days" in info.value.errors


async def test_soft_deleted_analysis_is_hidden_but_its_files_stay_reachable(ctx, analyst):
    analysis = await ctx.data_analyses.create({"user_id": analyst.id, "title": "t", "parameters": {"k": 3}})
    upload = await ctx.analysis_files.create({"analysis_id": analysis.id, "filename": "d.parquet",
                                              "file_type": "parquet", "storage_path": "p"})
    await ctx.data_analyses.delete(analysis.id)
    with pytest.raises(NotFoundError):
        await ctx.data_analyses.get(analysis.id)
    files = await ctx.analysis_files.find_many({"analysis_id": analysis.id})
    assert [f.id for f in files.items] == [upload.id]
    restored = await ctx.data_analyses.restore(analysis.id)
    assert restored.parameters == {"k": 3}
