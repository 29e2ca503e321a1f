"""A throwaway PostgreSQL cluster on a free loopback port, started and stopped for real inside a test.

``initdb`` refuses to run as root, so when the tests run as root the cluster is created and run by the
``postgres`` user (``runuser``), in a temporary directory that user owns.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile

import pytest

from tests.cache_support import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or ([shutil.which(name)] if shutil.which(name) else [])
    if not found:
        pytest.fail(f"{name} is required for the database-down tests (PostgreSQL server binaries)", pytrace=False)
    return found[-1]


class PrivatePostgres:
    """``start()``, ``stop()``, ``url``; trust auth, so any password in the URL is accepted (and must stay hidden)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = tempfile.mkdtemp(prefix="datalayer-pg-")
        self.data = os.path.join(self.root, "data")
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self.running = False

    def _run(self, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", *args] if self.as_postgres else list(args)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def url(self, password: str | None = None, database: str = "postgres") -> str:
        auth = f"postgres:{password}" if password else "postgres"
        return f"postgres://{auth}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        if not os.path.exists(self.data):
            self._run(_bin("initdb"), "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self._run(_bin("pg_ctl"), "-D", self.data, "-w", "-t", "60", "-l", os.path.join(self.root, "log"),
                  "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off", "start")
        self.running = True

    def stop(self) -> None:
        if self.running:
            self._run(_bin("pg_ctl"), "-D", self.data, "-w", "-m", "immediate", "stop")
            self.running = False

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
