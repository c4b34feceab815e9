"""Real `python app.py` processes: two replicas on one database, SIGKILL in the middle of
hundreds of deliveries, SIGTERM with work in hand."""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections import Counter

import aiohttp
from sqlalchemy import func, select

from pinkflow_bot.storage.database import create_engine, session_factory
from pinkflow_bot.storage.models import Ballot, Proposal
from tests import payloads
from tests.harness import APP_ID, WEBHOOK_SECRET
from tests.process import AppProcess, eventually

REPO = "octo-org/shop"
MARKER = "<!-- pinkflow:status -->"


def sha_of(number: int) -> str:
    return f"{number:04d}" + "facade" * 6


def env_for(database_url: str, fake, private_key: str, **extra: str) -> dict[str, str]:
    return {
        "APP_ID": str(APP_ID),
        "PRIVATE_KEY": private_key,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "DATABASE_URL": database_url,
        "GITHUB_API_URL": fake.url,
        "LOG_FORMAT": "json",
        **extra,
    }


def seed(fake, *, pulls: int, voters: int) -> list[str]:
    fake.add_installation(1, "octo-org")
    fake.add_repo(REPO, installation_id=1)
    fake.add_user("alice")
    logins = [f"voter-{i:03d}" for i in range(voters)]
    for login in logins:
        fake.add_user(login)
        fake.set_permission(REPO, login, "write")
    for number in range(1, pulls + 1):
        fake.add_pull(REPO, number, head_sha=sha_of(number), author="alice")
    return logins


async def settled(app: AppProcess, http: aiohttp.ClientSession, *, timeout: float = 120.0) -> None:
    async def empty() -> bool:
        async with http.get(f"{app.url}/api/health") as response:
            backlog = (await response.json()).get("backlog") or {}
        return backlog.get("pending_deliveries") == 0 and backlog.get("pending_effects") == 0

    await eventually(empty, timeout=timeout, interval=0.2, message="an empty backlog")


async def ballots_per_proposal(database_url: str) -> dict[int, int]:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            rows = await session.execute(
                select(Proposal.pr_number, func.count(Ballot.id)).join(Ballot).group_by(Proposal.pr_number)
            )
            return dict(rows.all())
    finally:
        await engine.dispose()


async def ballots_per_comment(database_url: str) -> Counter:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            return Counter(await session.scalars(select(Ballot.comment_id)))
    finally:
        await engine.dispose()


async def test_two_replicas_on_one_postgresql_count_every_vote_once_and_promote_once(
    tmp_path, fake_github, app_private_key, postgres_server
):
    database_url = await postgres_server.create_database()
    voters = seed(fake_github, pulls=1, voters=24)
    env = env_for(database_url, fake_github, app_private_key, WORKER_CONCURRENCY="4")
    one = AppProcess(env=env, log_path=tmp_path / "one.log")
    two = AppProcess(env=env, log_path=tmp_path / "two.log")
    await one.start()
    await two.start()
    replicas = itertools.cycle([one, two])
    try:
        async with aiohttp.ClientSession() as http:
            assert await one.send(http, payloads.preview_ready(repo=REPO, sha=sha_of(1), deployment_id=501), secret=WEBHOOK_SECRET) == 202
            await settled(one, http)
            votes = [payloads.posted_comment(fake_github, "/approve", repo=REPO, number=1, author=login) for login in voters]
            statuses = await asyncio.gather(
                *(next(replicas).send(http, delivery, secret=WEBHOOK_SECRET) for delivery in votes)
            )
            assert set(statuses) == {202}
            await settled(one, http)
            # Both replicas are asked to promote at once, twice each.
            promotes = [
                payloads.posted_comment(fake_github, "/promote", repo=REPO, number=1, author=login) for login in voters[:4]
            ]
            await asyncio.gather(*(next(replicas).send(http, delivery, secret=WEBHOOK_SECRET) for delivery in promotes))
            await settled(two, http)
            async with http.get(f"{two.url}/api/deployments/status", params={"deploymentId": "501"}) as response:
                status = (await response.json())["deployment"]
    finally:
        assert await one.stop() == 0
        assert await two.stop() == 0
    assert (status["votes"]["total"], status["votes"]["approveWeight"]) == (24, 24)
    assert status["status"] == "promoted"
    assert len(fake_github.calls_for("repos/create-deployment")) == 1
    assert await ballots_per_proposal(database_url) == {1: 24}
    assert len([c for c in fake_github.comments_on(REPO, 1) if MARKER in c["body"]]) == 1
    assert len(fake_github.check_runs_for(REPO, sha_of(1), name="Pinkflow governance")) == 1
    assert await ballots_per_comment(database_url) == Counter(d.payload["comment"]["id"] for d in votes)
    # Counted votes get no reaction; of the four /promote, one counted and three refused (confused).
    assert all(fake_github.reaction_contents(d.payload["comment"]["id"]) == [] for d in votes)
    answers = sorted(fake_github.reaction_contents(d.payload["comment"]["id"]) for d in promotes)
    assert answers == [[], ["confused"], ["confused"], ["confused"]]
    # Votes arrived at both replicas' intake; which worker handled each is up to the claims.
    assert "delivery handled" in one.log_text() + two.log_text()


async def test_a_crash_in_the_middle_of_hundreds_of_deliveries_loses_and_doubles_nothing(
    tmp_path, fake_github, app_private_key, database_url
):
    pulls, per_pull = 5, 60
    voters = seed(fake_github, pulls=pulls, voters=per_pull)
    fake_github.latency = 0.003
    # A short lease, so the work the killed process held is taken over within the test.
    env = env_for(database_url, fake_github, app_private_key, WORKER_LEASE="3")
    app = AppProcess(env=env, log_path=tmp_path / "app.log")
    await app.start()
    previews = [payloads.preview_ready(repo=REPO, sha=sha_of(n), deployment_id=700 + n) for n in range(1, pulls + 1)]
    votes = [
        payloads.posted_comment(fake_github, "/approve", repo=REPO, number=n, author=login)
        for login in voters
        for n in range(1, pulls + 1)
    ]
    acknowledged: set[str] = set()
    async with aiohttp.ClientSession() as http:
        for preview in previews:
            assert await app.send(http, preview, secret=WEBHOOK_SECRET) == 202
        await settled(app, http)

        queue: asyncio.Queue = asyncio.Queue()
        for delivery in votes:
            queue.put_nowait(delivery)

        async def sender() -> None:
            while not queue.empty():
                delivery = queue.get_nowait()
                try:
                    if await app.send(http, delivery, secret=WEBHOOK_SECRET) in (200, 202):
                        acknowledged.add(delivery.delivery_id)
                except aiohttp.ClientError:
                    pass  # no answer: GitHub would deliver it again

        senders = [asyncio.create_task(sender()) for _ in range(8)]
        await eventually(lambda: len(acknowledged) >= len(votes) // 2, timeout=60, message="half acknowledged")
        await app.stop(signal.SIGKILL)
        await asyncio.gather(*senders)
        assert 0 < len(acknowledged) < len(votes)

        # Back up; GitHub redelivers what got no answer, and (at least once) some of the rest too.
        app = AppProcess(env=env, log_path=tmp_path / "app.log")
        await app.start()
        resend = [d for d in votes if d.delivery_id not in acknowledged] + votes[:25]
        for delivery in resend:
            assert await app.send(http, delivery, secret=WEBHOOK_SECRET) in (200, 202)
        await settled(app, http)
        for number in range(1, pulls + 1):
            async with http.get(f"{app.url}/api/deployments/status", params={"deploymentId": str(700 + number)}) as response:
                votes_shown = (await response.json())["deployment"]["votes"]
            assert votes_shown["total"] == per_pull
        assert await app.stop() == 0

    # Every vote took effect exactly once: one ballot per comment, no duplicate output.
    assert await ballots_per_proposal(database_url) == {n: per_pull for n in range(1, pulls + 1)}
    for number in range(1, pulls + 1):
        assert len([c for c in fake_github.comments_on(REPO, number) if MARKER in c["body"]]) == 1
        assert len(fake_github.check_runs_for(REPO, sha_of(number), name="Pinkflow governance")) == 1
    assert await ballots_per_comment(database_url) == Counter(d.payload["comment"]["id"] for d in votes)
    # Every vote was counted (one not counted would get a reaction), and a counted vote gets none.
    for delivery in votes:
        assert fake_github.reaction_contents(delivery.payload["comment"]["id"]) == []
    assert fake_github.calls_for("reactions/create-for-issue-comment") == []


async def test_sigterm_finishes_the_work_in_hand_and_exits_0(tmp_path, fake_github, app_private_key):
    seed(fake_github, pulls=1, voters=1)
    fake_github.latency = 0.6  # every GitHub call is slow: work is in hand when the signal comes
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'pinkflow.db'}"
    env = env_for(database_url, fake_github, app_private_key, SHUTDOWN_GRACE="20")
    app = AppProcess(env=env, log_path=tmp_path / "app.log")
    await app.start()
    async with aiohttp.ClientSession() as http:
        assert await app.send(http, payloads.preview_ready(repo=REPO, sha=sha_of(1), deployment_id=801), secret=WEBHOOK_SECRET) == 202
        await eventually(lambda: fake_github.calls, timeout=10, message="work under way")
        started = asyncio.get_running_loop().time()
        assert await app.stop(signal.SIGTERM, timeout=30) == 0
        assert asyncio.get_running_loop().time() - started < 25
        # The delivery in hand was finished, not abandoned: its proposal is stored.
        engine = create_engine(database_url)
        async with session_factory(engine)() as session:
            assert await session.scalar(select(func.count()).select_from(Proposal)) == 1
        await engine.dispose()
        # What it had queued for GitHub goes out after the restart.
        fake_github.latency = 0
        app = AppProcess(env=env, log_path=tmp_path / "app.log")
        await app.start()
        await settled(app, http)
        assert await app.stop() == 0
    assert fake_github.check_runs_for(REPO, sha_of(1), name="Pinkflow governance")
    assert "stopping" in app.log_text()
