"""Statements sent straight to the driver's connection: the last step of every one-statement write (``fetch``)
and of the reads built once per shape (``read``: pages, keyset chunks, counts, estimates).

The ORM client wraps each statement in layers (re-wrapping driver errors, sniffing the query text, debug
logging, retry bookkeeping) that cost about 25 us a statement, most of what separated a one-statement write
from the bare driver. Here the statement goes to the connection the client hands out (``acquire_connection``:
a pooled one, with the pool's deadline and its care for stale prepared statements, or the transaction's, one
statement at a time) and keeps what those layers are for: its time in the query monitor and, outside a
transaction, the pool client's rules for a lost connection and its read replicas' read-your-writes mark (``RetriedStatements``: a write is sent again only
if it provably never reached the server), and its debug log line (values hidden). Driver errors reach the
caller's ``translated`` unchanged. A read goes through the client when it has read replicas, whose routing
(a fit replica, else the primary) lives there.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from time import perf_counter
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.connection import get_connection

from datalayer.backends.retry import RetriedStatements
from datalayer.config import CONNECTION_NAME


async def fetch(sql: str, params: Sequence[Any], client: BaseDBAsyncClient | None = None) -> list[Any]:
    """Run ``sql`` with ``params`` on ``client`` (default: the current connection, a transaction's or the
    pool's).

    Returns:
        The driver's records (rows the statement returns; empty for none).
    """
    if client is None:
        client = get_connection(CONNECTION_NAME)
    replicas = getattr(client, "replicas", None)  # the pool client with read replicas: note the write
    try:
        return await _retried(client, sql, params)
    finally:
        if replicas is not None:  # read-your-writes: this process's next reads wait for a replica to replay it
            replicas.wrote()


async def read(sql: str, params: Sequence[Any], client: BaseDBAsyncClient) -> list[Any]:
    """Run the read ``sql`` (a plain ``SELECT`` or ``EXPLAIN``) with ``params`` on ``client`` (a transaction's
    connection or the pool's client); a lost connection is retried by the pool client's rules for reads.

    Returns:
        The driver's records.
    """
    if getattr(client, "replicas", None) is not None:
        _, rows = await client.execute_query(sql, list(params))
        return list(rows)
    return await _retried(client, sql, params)


async def _retried(client: BaseDBAsyncClient, sql: str, params: Sequence[Any]) -> list[Any]:
    """``_fetch``, and on a failure the pool client's ``retry_lost`` (which tells reads from writes)."""
    try:
        return await _fetch(client, sql, params)
    except Exception as exc:
        if not isinstance(client, RetriedStatements):
            raise
        return await client.retry_lost(exc, partial(_fetch, client), sql, params)


async def _fetch(client: BaseDBAsyncClient, sql: str, params: Sequence[Any]) -> list[Any]:
    started, failed = perf_counter(), True
    try:
        async with client.acquire_connection() as raw:
            client.log.debug("%s: %s", sql, params)  # as the client logs statements (its log hides values)
            rows: list[Any] = await raw.fetch(sql, *params)
        failed = False
        return rows
    finally:
        monitor = getattr(client, "monitor", None)
        if monitor is not None:
            monitor.record(sql, perf_counter() - started, failed)
