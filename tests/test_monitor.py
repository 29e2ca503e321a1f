"""Background health monitoring: callbacks on status changes, a failing callback changes nothing, and
close_context() stops it."""

from __future__ import annotations

import asyncio

from datalayer import close_context
from datalayer.health import HealthReport


async def _until(condition, what: str) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never reached: {what}")


async def test_monitor_calls_callbacks_when_the_status_changes(ctx):
    changes: list[tuple[str | None, str]] = []
    unsubscribe = ctx.on_health_change(lambda report, previous: changes.append((previous, report.status)))
    threshold = ctx.settings.db_health_latency_ms
    monitor = ctx.start_monitoring(0.02)
    try:
        await _until(lambda: changes == [(None, "healthy")], "the first report")
        ctx.settings.db_health_latency_ms = 1e-6
        await _until(lambda: len(changes) == 2, "a change to degraded")
        ctx.settings.db_health_latency_ms = threshold
        await _until(lambda: len(changes) == 3, "a change back to healthy")
    finally:
        ctx.settings.db_health_latency_ms = threshold
        ctx.stop_monitoring()
        unsubscribe()
    assert changes == [(None, "healthy"), ("healthy", "degraded"), ("degraded", "healthy")]
    assert isinstance(ctx.last_health, HealthReport)
    await asyncio.sleep(0.05)
    assert not monitor.running


async def test_a_failing_callback_neither_stops_the_monitor_nor_the_other_callbacks(ctx):
    seen: list[str] = []

    def broken(report, previous):
        raise RuntimeError("subscriber bug")

    async def recording(report, previous):
        seen.append(report.status)

    ctx.on_health_change(broken)
    unsubscribe = ctx.on_health_change(recording)
    monitor = ctx.start_monitoring(0.02)
    try:
        await _until(lambda: seen == ["healthy"], "the async callback after the broken one")
        checked = ctx.last_health.checked_at
        await _until(lambda: ctx.last_health.checked_at > checked, "another check")
        assert monitor.running
    finally:
        ctx.stop_monitoring()
        unsubscribe()


async def test_close_context_stops_monitoring(ctx):
    monitor = ctx.start_monitoring(0.02)
    await _until(lambda: ctx.last_health is not None, "the first report")
    task = monitor._task
    await close_context()
    assert task.done() and not monitor.running
