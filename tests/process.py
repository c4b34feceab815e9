"""The real `python app.py` process, started and stopped by a test."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp

from tests.payloads import Delivery
from tests.paths import REPO_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Every process a test started; whatever a failing test left running is killed after it.
_STARTED: list[asyncio.subprocess.Process] = []


def kill_leftover_processes() -> None:
    while _STARTED:
        process = _STARTED.pop()
        if process.returncode is None:
            process.kill()


async def wait_until_healthy(
    url: str, process: asyncio.subprocess.Process, *, timeout: float, describe=lambda: "", interval: float = 0.1
) -> None:
    """Until `url`/api/health answers 200; fails at once if the process exits."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"the process serving {url} exited with {process.returncode}:\n{describe()}")
            try:
                async with session.get(f"{url}/api/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(interval)
    raise TimeoutError(f"{url} did not become healthy:\n{describe()}")


class AppProcess:
    """One `python app.py` with its own environment; its log lines go to a file the test reads."""

    def __init__(
        self, *, env: dict[str, str], log_path: Path, command: tuple[str, ...] = (), port_setting: str = "PORT"
    ) -> None:
        # `port_setting`: the setting of the port it answers on (METRICS_PORT for a worker alone).
        self.port = int(env.get(port_setting) or free_port())
        self.env = {**os.environ, **env, port_setting: str(self.port), "HOST": "127.0.0.1"}
        self.log_path = log_path
        self.command = command
        self.process: asyncio.subprocess.Process | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    async def start(self, *, ready_timeout: float = 30.0) -> None:
        log_file = self.log_path.open("ab")
        # Run from the log's folder, so a developer's own `.env` or database is never picked up.
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, str(REPO_ROOT / "app.py"), *self.command,
            cwd=self.log_path.parent, env=self.env, stdout=log_file, stderr=log_file,
        )
        log_file.close()
        _STARTED.append(self.process)
        await wait_until_healthy(
            self.url, self.process, timeout=ready_timeout, describe=lambda: self.log_path.read_text()[-4000:]
        )

    async def stop(self, sig: int = signal.SIGTERM, *, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(sig)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout=timeout)
        except asyncio.TimeoutError:
            self.process.kill()
            return await self.process.wait()

    async def send(self, session: aiohttp.ClientSession, delivery: Delivery, *, secret: str) -> int:
        body = delivery.body()
        async with session.post(
            f"{self.url}/api/github/webhooks", data=body, headers=delivery.headers(secret, body)
        ) as response:
            await response.read()
            return response.status

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


async def eventually(condition, *, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"):
    """Polls until `condition()` is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        await asyncio.sleep(interval)
