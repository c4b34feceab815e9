"""The real `python app.py` (web and worker) against the fake GitHub, with a repository,
its people and pull requests: what the decision and API-call benchmarks drive."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from pathlib import Path

import aiohttp

from bench.common import WEBHOOK_SECRET, AppProcess, ObservedGitHub, app_env, start_app
from tests import payloads
from tests.process import eventually

REPO = "octo-org/shop"
AUTHOR = "alice"


class GovernanceWorld:
    def __init__(self, github: ObservedGitHub, app: AppProcess, http: aiohttp.ClientSession) -> None:
        self.github = github
        self.app = app
        self.http = http
        self._deployment_ids = itertools.count(500_000)
        self.preview_deployments: dict[int, int] = {}  # pull request number: its preview's deployment id

    @classmethod
    async def start(
        cls,
        folder: Path,
        github: ObservedGitHub,
        *,
        private_key: str,
        database_url: str,
        people: dict[str, str],
        **env: str,
    ) -> "GovernanceWorld":
        github.add_installation(1, "octo-org")
        github.add_repo(REPO, installation_id=1)
        for login, role in {AUTHOR: "write", **people}.items():
            github.add_user(login)
            github.set_permission(REPO, login, role)
        app = await start_app(folder, app_env(database_url=database_url, github_url=github.url, private_key=private_key, **env))
        return cls(github, app, aiohttp.ClientSession())

    async def close(self) -> None:
        await self.http.close()
        await self.app.stop()

    async def send(self, delivery: payloads.Delivery) -> int:
        status = await self.app.send(self.http, delivery, secret=WEBHOOK_SECRET)
        if status not in (200, 202):
            raise AssertionError(f"intake answered {status}")
        return status

    def comment(self, number: int, author: str, body: str) -> payloads.Delivery:
        return payloads.posted_comment(self.github, body, repo=REPO, number=number, author=author)

    async def open_proposal(self, number: int) -> str:
        """A pull request whose preview succeeded; waits for the check run; returns its head SHA."""
        sha = hashlib.sha1(f"{REPO}#{number}".encode()).hexdigest()
        self.github.add_pull(REPO, number, head_sha=sha, author=AUTHOR)
        self.preview_deployments[number] = next(self._deployment_ids)
        await self.send(payloads.preview_ready(repo=REPO, sha=sha, deployment_id=self.preview_deployments[number]))
        await self.until(lambda: self.github.check_runs_for(REPO, sha), what=f"the check run of #{number}")
        return sha

    async def tally(self, number: int) -> dict:
        """The proposal's votes as the App's status API shows them."""
        params = {"deploymentId": str(self.preview_deployments[number])}
        async with self.http.get(f"{self.app.url}/api/deployments/status", params=params) as response:
            return (await response.json())["deployment"]["votes"]

    async def backlog(self) -> tuple[int, int]:
        async with self.http.get(f"{self.app.url}/api/health") as response:
            backlog = (await response.json())["backlog"]
        return backlog["pending_deliveries"], backlog["pending_effects"]

    async def idle(self, *, settle: float = 0.0, timeout: float = 60.0) -> None:
        """Until no delivery or effect is waiting, then `settle` seconds more with no call to GitHub."""
        await self.until(self._nothing_waiting, what="an idle App", timeout=timeout)
        if settle:
            while True:
                seen = len(self.github.calls)
                await asyncio.sleep(settle)
                if len(self.github.calls) == seen and await self._nothing_waiting():
                    return

    async def _nothing_waiting(self) -> bool:
        return await self.backlog() == (0, 0)

    @staticmethod
    async def until(condition, *, what: str, timeout: float = 30.0):
        return await eventually(condition, timeout=timeout, interval=0.02, message=what)
