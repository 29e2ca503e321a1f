"""Background health monitoring: run the check every ``interval`` seconds, keep the last report, and tell
subscribers when the status changes. Nothing it does can raise into the app."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable

from datalayer.health.report import HealthReport, Status

log = logging.getLogger("datalayer.health")

#: ``callback(report, previous_status)``; ``previous_status`` is ``None`` for the first report. May be async.
HealthCallback = Callable[[HealthReport, "Status | None"], object]


#: seconds between two runs of the monitor's ``upkeep`` (creating log partitions ahead of time)
UPKEEP_INTERVAL_S = 3600.0


class HealthMonitor:
    """Runs ``check`` periodically in one background task; ``stop()`` cancels it, ``aclose()`` waits too.

    ``upkeep`` (optional) runs in the same task after the first check (its report is not held up) and then
    at most every ``upkeep_interval`` seconds; a failing upkeep is logged and never stops the monitor.
    """

    def __init__(self, check: Callable[[], Awaitable[HealthReport]],
                 upkeep: Callable[[], Awaitable[object]] | None = None,
                 upkeep_interval: float = UPKEEP_INTERVAL_S) -> None:
        self._check = check
        self._upkeep = upkeep
        self._upkeep_interval = upkeep_interval
        self._upkeep_due = 0.0
        self._callbacks: list[HealthCallback] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None
        self.interval: float | None = None
        self.last_report: HealthReport | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def on_change(self, callback: HealthCallback) -> Callable[[], None]:
        """Call ``callback`` whenever the status changes; returns a function that unsubscribes it."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    def start(self, interval: float) -> None:
        """Check now and then every ``interval`` seconds (restarts with the new interval if running).

        The first report after a start always reaches the callbacks, with ``previous_status=None``.
        """
        if interval <= 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval}")
        self.stop()
        self.last_report = None
        self.interval = interval
        self._task = asyncio.get_running_loop().create_task(self._run(interval), name="datalayer-health-monitor")
        log.info("health monitoring started", extra={"interval_seconds": interval})

    def stop(self) -> None:
        """Cancel the background task (it ends at its next await; ``aclose()`` waits for that)."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = task
            if not task.done():
                task.cancel()
                log.info("health monitoring stopped")

    async def aclose(self) -> None:
        """Stop and wait until the background task has ended."""
        self.stop()
        task, self._stopping = self._stopping, None
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self, interval: float) -> None:
        while True:
            try:
                report = await self._check()
            except Exception:  # the check should never raise; if it does, keep monitoring
                log.exception("health check failed")
            else:
                previous = self.last_report.status if self.last_report else None
                self.last_report = report
                if report.status != previous:
                    await self._notify(report, previous)
            await self._run_upkeep()
            await asyncio.sleep(interval)

    async def _run_upkeep(self) -> None:
        if self._upkeep is None or time.monotonic() < self._upkeep_due:
            return
        self._upkeep_due = time.monotonic() + self._upkeep_interval
        try:
            await self._upkeep()
        except Exception:  # upkeep is best effort; the next run tries again
            log.exception("background upkeep failed")

    async def _notify(self, report: HealthReport, previous: Status | None) -> None:
        log.log(logging.INFO if report.status == "healthy" else logging.WARNING,
                "health changed from %s to %s", previous, report.status,
                extra={"status": report.status, "previous_status": previous, "errors": report.errors})
        for callback in list(self._callbacks):
            try:
                result = callback(report, previous)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a subscriber must never stop the monitor
                log.exception("health change callback failed")
