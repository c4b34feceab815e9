"""The App under test, in process: real settings, database, GitHub client and worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from pinkflow_bot.runtime import Runtime
from pinkflow_bot.settings import Settings
from pinkflow_bot.web.app import create_app
from tests.payloads import Delivery

WEBHOOK_SECRET = "test-webhook-secret-7f3a"
APP_ID = 4242


def app_settings(*, database_url: str, github_url: str, private_key: str, **overrides: str) -> Settings:
    values = {
        "APP_ID": str(APP_ID),
        "PRIVATE_KEY": private_key,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "DATABASE_URL": database_url,
        "GITHUB_API_URL": github_url,
        "PUBLIC_URL": "http://pinkflow.test",
        "LOG_FORMAT": "text",
        # The tests' previews are served on 127.0.0.1.
        "PREVIEW_HEALTH_ALLOW_LOOPBACK": "true",
    }
    values.update(overrides)
    return Settings.from_mapping(values)


class Clock:
    """A clock the test moves by hand, for voting periods and deadlines."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class AppUnderTest:
    def __init__(self, runtime: Runtime, client: TestClient) -> None:
        self.runtime = runtime
        self.client = client

    async def send(self, delivery: Delivery, *, secret: str = WEBHOOK_SECRET) -> Any:
        body = delivery.body()
        return await self.client.post("/api/github/webhooks", data=body, headers=delivery.headers(secret, body))

    async def deliver(self, *deliveries: Delivery) -> None:
        """Sends each delivery, expects it accepted, and lets the worker finish everything."""
        for delivery in deliveries:
            response = await self.send(delivery)
            assert response.status in (200, 202), await response.text()
        await self.drain()

    async def drain(self) -> None:
        assert self.runtime.worker is not None
        await self.runtime.worker.drain()


@asynccontextmanager
async def app_under_test(
    tmp_path: Path,
    *,
    github_url: str,
    private_key: str,
    database_url: str | None = None,
    clock=None,
    **overrides: str,
) -> AsyncIterator[AppUnderTest]:
    settings = app_settings(
        database_url=database_url or f"sqlite+aiosqlite:///{tmp_path / 'pinkflow.db'}",
        github_url=github_url,
        private_key=private_key,
        **overrides,
    )
    runtime = await Runtime.create(settings, **({"clock": clock} if clock else {}))
    client = TestClient(TestServer(create_app(runtime)))
    await client.start_server()
    try:
        yield AppUnderTest(runtime, client)
    finally:
        await client.close()
        await runtime.close()
