"""What the SSH tunnel costs on ``get``: the same ``ModelManager.get`` direct and through a local OpenSSH server.

    python -m benchmarks.tunnel              # about a minute
    BENCH_ROUNDS=9 BENCH_SECONDS=2 python -m benchmarks.tunnel

Both contenders use the same scratch database on the local PostgreSQL (DATABASE_URL's server) and a pool of
10; only the route differs: direct, or through a private sshd on loopback (``tests/ssh_support.py``, so it
needs root and ``/usr/sbin/sshd`` as the tests do). One context per process, so rounds alternate by reopening
the context on the other route; the loopback SSH hop measures the tunnel's own overhead (encryption, asyncssh's
forwarding in Python), not a network's latency.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
from collections.abc import Awaitable, Callable

from benchmarks.harness import machine, rate
from benchmarks.models import BenchItem
from benchmarks.scratch import POOL_SIZE, scratch_database, server_urls
from datalayer import Settings, close_context, get_context

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "1.5"))
CONCURRENCY = 16


def _settings(url: str, ssh: dict[str, object] | None) -> Settings:
    return Settings(_env_file=None, DATABASE_URL=url, DB_MAX_CONNECTIONS=POOL_SIZE, DATALAYER_ENV="test",
                    SSH_HEALTH_CHECK_INTERVAL=60_000, **(ssh or {}))


async def _measure(url: str, ssh: dict[str, object] | None, keys: list[object]) -> tuple[float, float]:
    """(gets/s one caller, gets/s with ``CONCURRENCY`` callers) on one route; the first call makes the rows."""
    ctx = await get_context(settings=_settings(url, ssh), models=["benchmarks.models"], generate_schemas=not keys)
    try:
        items = ctx.manager(BenchItem)
        if not keys:
            keys.extend([(await items.create({"title": f"item {n}"})).id for n in range(20)])
        one: Callable[[], Awaitable[object]] = lambda: items.get(keys[0])

        async def sixteen() -> None:
            await asyncio.gather(*(items.get(keys[n % len(keys)]) for n in range(CONCURRENCY)))

        await rate(one, 0.2)  # warm-up: prepared statements, pool connections
        return await rate(one, SECONDS), await rate(sixteen, SECONDS) * CONCURRENCY
    finally:
        await close_context()


async def main() -> None:
    sys.path.insert(0, os.getcwd())
    from tests.ssh_support import PrivateSSHD  # the tests' private sshd

    server_url, _ = server_urls()
    sshd = PrivateSSHD()
    sshd.start()
    ssh = {"SSH_HOST": "127.0.0.1", "SSH_PORT": sshd.port, "SSH_USER": "root", "SSH_KEY_PATH": str(sshd.client_key),
           "SSH_KNOWN_HOSTS": str(sshd.known_hosts)}
    samples: dict[str, list[tuple[float, float]]] = {"direct": [], "tunnel": []}
    keys: list[object] = []
    try:
        async with scratch_database(server_url) as url:
            for index in range(ROUNDS):
                order = ["direct", "tunnel"] if index % 2 == 0 else ["tunnel", "direct"]
                for route in order:
                    samples[route].append(await _measure(url, ssh if route == "tunnel" else None, keys))
    finally:
        sshd.stop()
    info = machine()
    print(f"SSH tunnel overhead on get ({ROUNDS} interleaved rounds of {SECONDS:g} s; {info.get('cpu', '?')}, "
          f"python {info.get('python', '?')})")
    for label, column in (("1 caller", 0), (f"{CONCURRENCY} callers, pool of {POOL_SIZE}", 1)):
        direct = statistics.median(sample[column] for sample in samples["direct"])
        tunnel = statistics.median(sample[column] for sample in samples["tunnel"])
        latency = f"  ({1e3 / direct:.2f} ms vs {1e3 / tunnel:.2f} ms a get)" if column == 0 else ""
        print(f"  get, {label:22} direct {direct:8,.0f}/s   tunnel {tunnel:8,.0f}/s   "
              f"tunnel/direct {tunnel / direct:.2f}x{latency}")


if __name__ == "__main__":
    asyncio.run(main())
