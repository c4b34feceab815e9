"""What the flow tests of the issue's features share: one repository with its people, the
App under test made with extra settings, and ways to read what GitHub now shows.

Import the fixtures into a test module (`from tests.flow import app_fixture, world_fixture,
...`); each test that takes `app` runs on SQLite and on PostgreSQL through `database_url`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from pinkflow_bot.storage.models import AuditEvent, Proposal
from tests import payloads
from tests.harness import Clock, app_under_test

REPO = "octo-org/shop"
PR = 31
SHA = "9fceb02d0ae598e95dc970b74767f19372d61af8"
NEW_SHA = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
MARKER = "<!-- pinkflow:status -->"
CONFIG = ".github/pinkflow.yml"
PEOPLE = [("ann", "admin"), ("max", "maintain"), ("dan", "write"), ("tia", "triage"), ("rita", "read"), ("alice", "write")]


@pytest.fixture(name="clock")
def clock_fixture():
    return Clock()


@pytest.fixture(name="world")
def world_fixture(fake_github):
    fake_github.add_installation(1, "octo-org")
    fake_github.add_repo(REPO, installation_id=1)
    for login, role in PEOPLE:
        fake_github.add_user(login)
        fake_github.set_permission(REPO, login, role)
    fake_github.add_pull(REPO, PR, head_sha=SHA, author="alice")
    return fake_github


@pytest.fixture(name="make_app")
async def make_app_fixture(tmp_path, world, app_private_key, clock, database_url):
    """`await make_app(SETTING="value", ...)`: the App under test with extra settings."""
    async with AsyncExitStack() as stack:

        async def make(**overrides: str):
            return await stack.enter_async_context(
                app_under_test(
                    tmp_path, github_url=world.url, private_key=app_private_key, clock=clock, database_url=database_url,
                    **overrides,
                )
            )

        yield make


@pytest.fixture(name="app")
async def app_fixture(make_app):
    return await make_app()


@pytest.fixture(name="vote")
def vote_fixture(world):
    """A comment that exists at the fake GitHub, by `author`, as a delivery."""

    def said(body: str, author: str, **kwargs):
        return payloads.posted_comment(world, body, repo=REPO, number=PR, author=author, **kwargs)

    return said


def set_rules(fake, text: str, *, repo: str = REPO) -> None:
    """`.github/pinkflow.yml` on the repository's default branch."""
    fake.set_file(repo, CONFIG, text)


async def open_proposal(app, *, sha: str = SHA, deployment_id: int = 501, url: str = "https://preview-abc.example.dev"):
    await app.deliver(payloads.preview_ready(repo=REPO, sha=sha, deployment_id=deployment_id, url=url))


def check_run(fake, sha: str = SHA) -> dict:
    """The check run GitHub shows for the commit: the newest of that name."""
    runs = fake.check_runs_for(REPO, sha, name="Pinkflow governance")
    assert runs, f"no check run on {sha[:7]}"
    return max(runs, key=lambda r: r["id"])


def status_comment(fake) -> str:
    [comment] = [c for c in fake.comments_on(REPO, PR) if MARKER in c["body"]]
    return comment["body"]


async def status(app, deployment_id: int = 501) -> dict:
    response = await app.client.get("/api/deployments/status", params={"deploymentId": str(deployment_id)})
    assert response.status == 200, await response.text()
    return (await response.json())["deployment"]


async def proposals(app) -> list[Proposal]:
    async with app.runtime.sessions() as session:
        return list(await session.scalars(select(Proposal).order_by(Proposal.id)))


async def audit(app, action: str | None = None) -> list[AuditEvent]:
    """The audit trail of every proposal, oldest first; only `action` when given."""
    async with app.runtime.sessions() as session:
        query = select(AuditEvent).order_by(AuditEvent.id)
        if action is not None:
            query = query.where(AuditEvent.action == action)
        return list(await session.scalars(query))


def reactions(fake, comment_id: int) -> list[str]:
    return fake.reaction_contents(comment_id)


# --- a promotion webhook's receiver ----------------------------------------------------------

PROMOTION_SECRET = "promotion-webhook-secret-for-the-flow"  # the App's PROMOTION_WEBHOOK_SECRET


class Receiver:
    """A deploy hook: checks the signature, answers as told (a status, or a status and a
    body), remembers what it received."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int | tuple[int, bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(PROMOTION_SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Pinkflow-Signature-256", "")):
            return web.Response(status=401, text="bad signature")
        self.received.append((dict(request.headers), body))
        answer = self.answers.pop(0) if self.answers else 202
        status, text = answer if isinstance(answer, tuple) else (answer, b"ok")
        return web.Response(status=status, body=text, content_type="text/plain")


@pytest.fixture(name="receiver")
async def receiver_fixture() -> AsyncIterator[tuple[Receiver, str]]:
    """A promotion webhook's receiver on a loopback port, and its URL."""
    hook = Receiver()
    application = web.Application()
    application.router.add_post("/deploy", hook.handle)
    server = TestServer(application, host="127.0.0.1")
    await server.start_server()
    try:
        yield hook, str(server.make_url("/deploy"))
    finally:
        await server.close()
