"""Proposals made the way GitHub makes them, for the tests of the pages and the proposals API.

Three repositories of one installation: two public, one private. Proposals are opened by
preview deployments and voted on by comments, delivered to the App under test.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from pinkflow_bot.storage.models import Proposal
from tests import payloads
from tests.harness import AppUnderTest, Clock

SHOP = "octo-org/shop"
DOCS = "octo-org/docs"
VAULT = "octo-org/vault"  # private
PEOPLE = {"ann": "admin", "max": "maintain", "dan": "write", "tia": "triage", "alice": "write"}
SCRIPT_REASON = "<script>alert(1)</script>"


def recent_clock() -> Clock:
    """A clock a minute behind the real time, so pages that use the real time show a running vote."""
    return Clock(datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1))


def seed_world(fake) -> None:
    fake.add_installation(1, "octo-org")
    fake.add_repo(SHOP, installation_id=1)
    fake.add_repo(DOCS, installation_id=1)
    fake.add_repo(VAULT, installation_id=1, private=True)
    for login, role in PEOPLE.items():
        fake.add_user(login)
        for repo in (SHOP, DOCS, VAULT):
            fake.set_permission(repo, login, role)


@dataclass
class World:
    app: AppUnderTest
    fake: object

    async def open(self, repo: str, number: int, *, sha: str | None = None, url: str | None = None) -> int:
        """A pull request whose preview deployment succeeded; the id of the proposal it opened."""
        sha = sha or hashlib.sha1(f"{repo}#{number}".encode()).hexdigest()
        self.fake.add_pull(repo, number, head_sha=sha, author="alice")
        deployment_id = int(hashlib.sha1(f"{repo}#{number}@{sha}".encode()).hexdigest()[:8], 16)
        extra = {"url": url} if url is not None else {}
        await self.app.deliver(
            payloads.preview_ready(repo=repo, sha=sha, deployment_id=deployment_id, private=repo == VAULT, **extra)
        )
        async with self.app.runtime.sessions() as session:
            proposal_id = await session.scalar(
                select(Proposal.id).where(
                    Proposal.repo_full_name == repo, Proposal.pr_number == number, Proposal.head_sha == sha
                )
            )
        assert proposal_id is not None, f"no proposal opened for {repo}#{number}"
        return proposal_id

    async def say(self, repo: str, number: int, *said: tuple[str, str]) -> None:
        """Comments (body, author) on the pull request, delivered in order."""
        await self.app.deliver(
            *(payloads.posted_comment(self.fake, body, repo=repo, number=number, author=author) for body, author in said)
        )

    async def proposal(self, proposal_id: int) -> Proposal:
        async with self.app.runtime.sessions() as session:
            return await session.get(Proposal, proposal_id)
