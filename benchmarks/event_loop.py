"""Does datalayer stall the event loop? A heartbeat's worst lateness while password checks or a bulk insert run."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from benchmarks.harness import Heartbeat
from benchmarks.models import BulkItem
from benchmarks.scratch import Stage


@dataclass
class LoopResult:
    workload: str
    worst_ms: float
    worst_after_start_ms: float  # once every call is in flight: the first beat waits out their start
    p99_ms: float
    beats: int


def _summary(workload: str, heartbeat: Heartbeat) -> LoopResult:
    lags = sorted(heartbeat.lags) or [0.0]
    after_start = max(heartbeat.lags[1:], default=0.0) * 1000
    return LoopResult(workload, heartbeat.worst_ms, after_start, lags[int(0.99 * (len(lags) - 1))] * 1000,
                      len(heartbeat.lags))


async def heartbeat_lag(stage: Stage, *, logins: int = 50, bulk_rows: int = 20_000) -> list[LoopResult]:
    users = stage.ctx.users
    await users.create_user("bench@example.com", "correct horse battery staple", username="bench")
    results = []
    async with Heartbeat() as heartbeat:
        outcomes = await asyncio.gather(*(
            users.authenticate("bench@example.com", "correct horse battery staple" if i % 2 else "wrong password")
            for i in range(logins)
        ))
    assert sum(user is not None for user in outcomes) == logins // 2, "authenticate gave wrong answers"
    rounds = stage.ctx.settings.bcrypt_rounds
    results.append(_summary(f"{logins} concurrent authenticate calls (bcrypt cost {rounds})", heartbeat))
    rows = [{"title": f"b{i}"} for i in range(bulk_rows)]
    async with Heartbeat() as heartbeat:
        await stage.ctx.manager(BulkItem).bulk_create(rows)
    results.append(_summary(f"bulk_create of {bulk_rows:,} rows (+audit)", heartbeat))
    return results
