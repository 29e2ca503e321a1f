"""A private OpenSSH server for the tunnel tests: ``/usr/sbin/sshd`` on a free loopback port, with a throwaway
host key, client key, authorized_keys and known_hosts made in a temporary folder, and stopped by its pid.

sshd must run as root with an absolute path, needs its privilege-separation folder (``/run/sshd``, made here when
missing) and refuses files others can write; ``StrictModes no`` spares the temporary folder that check. The
per-connection processes it forks carry the forwarded channels; ``kill()`` kills them too, found by parent pid.
No pytest here: ``benchmarks/tunnel.py`` starts the same server.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from datalayer import Settings

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = "/run/sshd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _keygen(path: Path, passphrase: str = "") -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "datalayer-test", "-f", str(path)],
                   check=True, capture_output=True)


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children first found through /proc's parent pids)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":  # a zombie is already dead
            parents.setdefault(int(fields[1]), []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        for child in parents.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


class PrivateSSHD:
    """``start()``, ``kill()`` (SIGKILL, with its per-connection children), ``stop()``; files in ``self.root``."""

    def __init__(self) -> None:
        if not os.path.exists(SSHD) or not shutil.which("ssh-keygen"):
            raise RuntimeError(f"the tunnel tests need OpenSSH's server ({SSHD}) and ssh-keygen (apt install openssh-server)")
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="datalayer-sshd-"))
        self.root.chmod(0o700)
        self.host_key = self.root / "host_key"
        self.client_key = self.root / "client_key"
        self.stranger_key = self.root / "stranger_key"  # a key the server does not know
        self.locked_key = self.root / "locked_key"  # an authorized key with a passphrase
        self.passphrase = "correct horse battery staple"
        for path in (self.host_key, self.client_key, self.stranger_key):
            _keygen(path)
        _keygen(self.locked_key, self.passphrase)
        authorized = "".join(Path(f"{key}.pub").read_text() for key in (self.client_key, self.locked_key))
        (self.root / "authorized_keys").write_text(authorized)
        host_public = Path(f"{self.host_key}.pub").read_text().split()
        self.known_hosts = self.root / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_public[0]} {host_public[1]}\n")
        self.config = self.root / "sshd_config"
        self.config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}", f"PidFile {self.root / 'sshd.pid'}",
            "UsePAM no", "AllowTcpForwarding yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password", "StrictModes no", "MaxStartups 100", "LogLevel VERBOSE", "",
        ]))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start sshd on ``self.port`` (the same one after a kill) and wait, bounded, until it accepts."""
        os.makedirs(PRIVSEP_DIR, mode=0o755, exist_ok=True)
        log = open(self.root / "sshd.log", "ab")  # noqa: SIM115 - handed to the process, closed with it
        self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 10
        while not listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start on port {self.port}: {self.log()[-800:]}")
            time.sleep(0.02)

    def children(self) -> list[int]:
        """The per-connection sshd processes (each carries one SSH connection and its channels)."""
        return descendants(self.process.pid) if self.process is not None else []

    def kill(self) -> None:
        """SIGKILL the server and every per-connection process: the connections die as in a crash."""
        if self.process is None:
            return
        for pid in [*self.children(), self.process.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def settings(self, url: str, **overrides: Any) -> Settings:
        """Test settings for the database ``url`` reached through this server (fast retries and health checks)."""
        values: dict[str, Any] = {
            "DATABASE_URL": url, "DATALAYER_ENV": "test", "BCRYPT_ROUNDS": 4, "DB_RETRY_ATTEMPTS": 1,
            "SSH_HOST": "127.0.0.1", "SSH_PORT": self.port, "SSH_USER": "root", "SSH_KEY_PATH": str(self.client_key),
            "SSH_KNOWN_HOSTS": str(self.known_hosts), "SSH_MAX_RETRIES": 20, "SSH_RETRY_DELAY": 100,
            "SSH_HEALTH_CHECK_INTERVAL": 1000, "SSH_CONNECT_TIMEOUT": 3000,
        }
        values.update(overrides)
        return Settings(_env_file=None, **{key: value for key, value in values.items() if value is not None})
