"""What the benchmarks share: the App's key, the fake GitHub, servers and processes, figures."""

from __future__ import annotations

import asyncio
import os
import platform
import secrets
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from aiohttp import web  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from bench.loadgen import loopback_target, percentile  # noqa: E402
from tests.fake_github import Call, FakeGitHub  # noqa: E402
from tests.postgres import SUPERUSER, ThrowawayPostgres  # noqa: E402
from tests.process import AppProcess, free_port, wait_until_healthy  # noqa: E402

APP_ID = 4242
WEBHOOK_SECRET = "bench-" + secrets.token_hex(16)
PYTHON = sys.executable


def app_key() -> tuple[str, bytes]:
    """A fresh App key pair: (private PEM text for PRIVATE_KEY, public PEM for the fake GitHub)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


class DurablePostgres(ThrowawayPostgres):
    """The suite's throwaway server, but durable as in production: fsync, synchronous
    commit and full-page writes on, so an acknowledged delivery survives a power cut."""

    def start(self) -> "DurablePostgres":
        if self._user:
            import pwd

            entry = pwd.getpwnam(self._user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8")
        options = (
            f"-p {self.port} -h 127.0.0.1 -k {self.folder} -c max_connections=200 "
            "-c shared_buffers=512MB -c fsync=on -c synchronous_commit=on -c full_page_writes=on"
        )
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "server.log"), "-w", "start")
        return self

    def version(self) -> str:
        return subprocess.run([str(self.bin / "postgres"), "--version"], capture_output=True, text=True).stdout.strip()


class ObservedGitHub(FakeGitHub):
    """The fake GitHub, telling listeners of each call with the moment its request arrived."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.listeners: list[Callable[[Call, float], None]] = []
        # (operation id, seconds the fake spent answering), one per call: its own share of a latency.
        self.answer_times: list[tuple[str | None, float]] = []

    async def _respond(self, request: web.Request) -> web.StreamResponse:
        arrived = time.perf_counter()
        response = await super()._respond(request)
        call = self.calls[-1]
        self.answer_times.append((call.operation_id, time.perf_counter() - arrived))
        for listener in list(self.listeners):
            listener(call, arrived)
        return response


def app_env(*, database_url: str, github_url: str, private_key: str, **extra: str) -> dict[str, str]:
    return {
        "APP_ID": str(APP_ID),
        "PRIVATE_KEY": private_key.strip().replace("\n", "\\n"),
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "DATABASE_URL": database_url,
        "GITHUB_API_URL": github_url,
        "PUBLIC_URL": "http://127.0.0.1",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "info",
        # The API's per-client limit would otherwise refuse a benchmark's requests.
        "RATE_LIMIT_MAX_REQUESTS": "100000000",
        **extra,
    }


async def start_app(folder: Path, env: dict[str, str], *command: str) -> AppProcess:
    folder.mkdir(parents=True, exist_ok=True)
    app = AppProcess(env=env, log_path=folder / "app.log", command=command)
    await app.start(ready_timeout=120)
    return app


class ServerProcess:
    """A server script of bench/ (the bare HMAC server) as its
    own process, like the App."""

    def __init__(self, script: str, **env: str) -> None:
        self.script = script
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            PYTHON, str(REPO_ROOT / "bench" / self.script), "--port", str(self.port),
            env={**os.environ, "WEBHOOK_SECRET": WEBHOOK_SECRET, **self.env},
        )
        await wait_until_healthy(self.url, self.process, timeout=30, interval=0.05, describe=lambda: f"bench/{self.script}")

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await asyncio.wait_for(self.process.wait(), timeout=30)


def rss_kib(pid: int) -> int:
    """Resident memory of a process (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time every core of the machine has spent on anything but idling, so far: the
    generator, the server, the database and the kernel's share of the traffic alike."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "?"
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory} RAM, Linux {platform.release()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )


__all__ = [
    "APP_ID", "WEBHOOK_SECRET", "AppProcess", "ServerProcess", "DurablePostgres", "ObservedGitHub", "app_env",
    "app_key", "cpu_seconds", "loopback_target", "machine", "ms", "percentile", "rss_kib", "start_app",
]
