"""Measuring: interleaved rounds, medians, latency percentiles, and the machine the figures came from."""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Op = Callable[[], Awaitable[object]]
LIBRARIES = ("datalayer", "tortoise", "asyncpg")


@dataclass
class Rounds:
    """How long to measure: ``rounds`` interleaved rounds of ``seconds`` per contender."""

    rounds: int
    seconds: float


async def rate(op: Op, seconds: float) -> float:
    """Calls per second of ``op`` run back to back for about ``seconds`` (at least 3 calls)."""
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or calls < 3:
        await op()
        calls += 1
    return calls / elapsed


async def interleaved(contenders: dict[str, Op], plan: Rounds) -> dict[str, float]:
    """Median ops/s per contender; each round runs them all, rotating who goes first, so drift hits alike."""
    names = list(contenders)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm-up: prepared statements, caches, pool connections
        await rate(contenders[name], min(plan.seconds, 0.2))
    for round_index in range(plan.rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(await rate(contenders[name], plan.seconds))
    return {name: statistics.median(values) for name, values in samples.items()}


async def interleaved_once(
    contenders: dict[str, Op], rounds: int, units: int, before: Op | None = None
) -> dict[str, float]:
    """Median units/s of one timed call per contender per round (for operations too big to repeat fast).

    ``before`` runs untimed ahead of every call (emptying a table, say).
    """
    names = list(contenders)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            if before is not None:
                await before()
            start = time.perf_counter()
            await contenders[name]()
            samples[name].append(units / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in samples.items()}


@dataclass
class Latencies:
    """Per-call latencies of a concurrent run."""

    seconds: float
    samples: list[float] = field(default_factory=list)

    @property
    def ops_per_s(self) -> float:
        return len(self.samples) / self.seconds

    def percentile(self, share: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


async def concurrent_latencies(tasks: int, calls_per_task: int, pick: Callable[[int], Op]) -> Latencies:
    """``tasks`` tasks each making ``calls_per_task`` calls of ``pick(i)()``; every call timed."""
    samples: list[float] = []

    async def worker(worker_index: int) -> None:
        for call_index in range(calls_per_task):
            op = pick(worker_index * calls_per_task + call_index)
            start = time.perf_counter()
            await op()
            samples.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(tasks)))
    return Latencies(time.perf_counter() - start, samples)


class Heartbeat:
    """A task that wakes every ``interval_s`` and records how late it woke: the event loop's stalls."""

    def __init__(self, interval_s: float = 0.002) -> None:
        self.interval_s = interval_s
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _beat(self) -> None:
        while True:
            expected = time.perf_counter() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.lags.append(max(0.0, time.perf_counter() - expected))

    async def __aenter__(self) -> Heartbeat:
        self._task = asyncio.create_task(self._beat())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    @property
    def worst_ms(self) -> float:
        return max(self.lags, default=0.0) * 1000


def machine() -> dict[str, str]:
    """What the figures ran on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as info:
            kib = int(next(line.split()[1] for line in info if line.startswith("MemTotal")))
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
