"""Wires settings, storage, GitHub, services and the worker into one running App."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from .github.auth import AppAuth
from .github.client import GitHubApp
from .handlers import router
from .services import GovernanceService, utcnow
from .settings import Settings
from .storage.database import create_engine, migrate, session_factory
from .storage.inbox import DeliveryWriter
from .worker import Worker

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    service: GovernanceService
    deliveries: DeliveryWriter
    http: aiohttp.ClientSession | None = None
    github: GitHubApp | None = None
    worker: Worker | None = None
    clock: Callable[[], datetime] = utcnow
    runs_worker: bool = True  # False for `app.py web`: deliveries wait for a worker process
    _worker_task: asyncio.Task | None = field(default=None, repr=False)

    @classmethod
    async def create(
        cls,
        settings: Settings,
        *,
        with_worker: bool = True,
        run_migrations: bool = True,
        clock: Callable[[], datetime] = utcnow,
    ) -> "Runtime":
        engine = create_engine(settings.database_url)
        if run_migrations:
            await migrate(engine)
        sessions = session_factory(engine)
        service = GovernanceService(sessions=sessions, settings=settings, clock=clock)
        runtime = cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            service=service,
            deliveries=DeliveryWriter(engine),
            clock=clock,
            runs_worker=with_worker,
        )
        if settings.configured:
            runtime._connect(settings, with_worker=with_worker)
        return runtime

    def _connect(self, settings: Settings, *, with_worker: bool) -> None:
        """The GitHub client, and the worker that uses it, for configured credentials."""
        if self.http is None:
            self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.github_timeout))
        auth = AppAuth(app_id=settings.app_id, private_key=settings.private_key)
        self.github = GitHubApp(session=self.http, api_url=settings.github_api_url, auth=auth)
        if with_worker:
            self.worker = Worker(
                sessions=self.sessions,
                service=self.service,
                github=self.github,
                router=router,
                concurrency=settings.worker_concurrency,
                lease=timedelta(seconds=settings.worker_lease),
                clock=self.clock,
                http=self.http,
            )

    def start_worker(self) -> None:
        if self.worker is not None and self._worker_task is None:
            self._worker_task = asyncio.create_task(self.worker.run(), name="pinkflow-worker")

    @property
    def worker_alive(self) -> bool:
        return self._worker_task is not None and not self._worker_task.done()

    def notify_worker(self) -> None:
        if self.worker is not None:
            self.worker.notify()

    async def close(self, *, grace_seconds: float = 20.0) -> None:
        """Stops claiming new work, lets work in hand finish within the grace period, then closes."""
        await self.deliveries.close()
        if self.worker is not None and self._worker_task is not None:
            self.worker.stop()
            try:
                await asyncio.wait_for(asyncio.shield(self._worker_task), timeout=grace_seconds)
            except asyncio.TimeoutError:
                log.warning("worker did not stop in time; its leases will lapse and another run takes over")
                self._worker_task.cancel()
            except Exception:
                log.exception("worker stopped with an error")
        if self.http is not None:
            await self.http.close()
        await self.engine.dispose()

    async def apply_credentials(self, settings: Settings) -> None:
        """Takes up credentials registered while running (the setup flow), without a restart.

        Builds the GitHub client, and the worker where this process runs one, as `create`
        does; the web app reads `settings` at request time, so intake accepts deliveries at once.
        """
        if not settings.configured:
            raise ValueError("apply_credentials needs APP_ID, PRIVATE_KEY and WEBHOOK_SECRET")
        if self.github is not None:
            raise RuntimeError("this App already has credentials; restart it to change them")
        self._connect(settings, with_worker=self.runs_worker)
        self.settings = settings
        self.start_worker()
