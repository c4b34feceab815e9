"""Durable processing in process: GitHub faults, bursts, deadlines across replicas, health."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from pinkflow_bot.storage import inbox, outbox
from pinkflow_bot.storage.models import AuditEvent, Ballot, Effect
from tests import payloads
from tests.harness import Clock, app_under_test

REPO = "octo-org/shop"
VOTERS = {"ann": "admin", "max": "maintain", "dan": "write"}


def sha_of(number: int) -> str:
    return f"{number:02d}" + "c0ffee" * 6 + "ab"


@pytest.fixture
def world(fake_github):
    fake_github.add_installation(1, "octo-org")
    fake_github.add_repo(REPO, installation_id=1)
    for login, role in {**VOTERS, "alice": "write"}.items():
        fake_github.add_user(login)
        fake_github.set_permission(REPO, login, role)
    return fake_github


async def settled(app, *, timeout: float = 90.0) -> None:
    """Waits until every delivery is handled and every effect delivered (or given up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with app.runtime.sessions() as session:
            waiting, _, _ = await inbox.backlog(session)
            effects_waiting, _ = await outbox.backlog(session)
        if waiting == 0 and effects_waiting == 0:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not settled: {waiting} deliveries and {effects_waiting} effects still waiting")


async def send_all(app, deliveries) -> None:
    for delivery in deliveries:
        response = await app.send(delivery)
        assert response.status == 202, await response.text()


async def open_proposals(app, world, numbers) -> None:
    await send_all(app, [payloads.preview_ready(repo=REPO, sha=sha_of(n), deployment_id=1000 + n) for n in numbers])
    await settled(app)


def newest_run(world, number: int) -> dict:
    runs = world.check_runs_for(REPO, sha_of(number), name="Pinkflow governance")
    assert len(runs) == 1, f"pull request {number} has {len(runs)} check runs"
    return runs[0]


async def ballots_per_comment(app) -> Counter:
    """How many ballots each comment cast."""
    async with app.runtime.sessions() as session:
        return Counter(await session.scalars(select(Ballot.comment_id)))


def status_comment(world, number: int) -> str:
    comments = [c for c in world.comments_on(REPO, number) if "<!-- pinkflow:status -->" in c["body"]]
    assert len(comments) == 1, f"pull request {number} has {len(comments)} status comments"
    return comments[0]["body"]


async def test_every_proposal_converges_while_github_fails_a_fifth_of_all_calls(tmp_path, world, app_private_key, database_url):
    plans = {
        1: [("ann", "/approve"), ("max", "/approve"), ("dan", "/approve")],  # passes
        2: [("ann", "/reject"), ("max", "/approve"), ("dan", "/approve")],  # 50 %: still voting
        3: [("dan", "/approve")],  # no quorum yet
        4: [("ann", "/approve"), ("max", "/approve"), ("dan", "/reject"), ("dan", "/promote")],  # promoted
    }
    for number in plans:
        world.add_pull(REPO, number, head_sha=sha_of(number), author="alice")
    async with app_under_test(
        tmp_path, github_url=world.url, private_key=app_private_key, database_url=database_url, GITHUB_TIMEOUT="0.5"
    ) as app:
        world.fault_rate = 0.2  # 500, 502, 429 with Retry-After, 403 primary and secondary rate limits
        world.lost_answer_rate = 0.05  # done at GitHub, answer lost
        world.slow_rate = 0.02  # answered after the App's timeout
        world.slow_delay = 1.0
        world.latency = 0.005
        app.runtime.start_worker()
        await open_proposals(app, world, plans)
        comments = {
            number: [payloads.posted_comment(world, body, repo=REPO, number=number, author=who) for who, body in plan]
            for number, plan in plans.items()
        }
        await send_all(app, [d for ds in comments.values() for d in ds])
        await settled(app)
        faulted = [call for call in world.calls if call.status >= 400]
        assert len(faulted) >= 3  # the faults really happened (about a quarter of some 60 calls)

        expected = {1: ("completed", "success"), 2: ("in_progress", None), 3: ("in_progress", None), 4: ("completed", "success")}
        for number, (status, conclusion) in expected.items():
            run = newest_run(world, number)
            assert (run["status"], run["conclusion"]) == (status, conclusion), number
        assert "Promoted" in newest_run(world, 4)["output"]["title"]
        assert "3 votes" in status_comment(world, 2) and "50%" in status_comment(world, 2)
        assert "1 of 3 votes" in status_comment(world, 3)
        for number in plans:
            status_comment(world, number)  # exactly one each
        production = [d for d in world.deployments.values() if d["environment"] == "production"]
        assert [d["sha"] for d in production] == [sha_of(4)]
        # Every vote counted once: one ballot per voting comment, whatever GitHub did to the calls.
        voting = [d.payload["comment"]["id"] for ds in comments.values() for d in ds if d.payload["comment"]["body"] != "/promote"]
        assert await ballots_per_comment(app) == Counter(voting)
        # Every command was counted (a refused one would get a reaction), and a counted one gets none.
        for deliveries in comments.values():
            for delivery in deliveries:
                assert world.reaction_contents(delivery.payload["comment"]["id"]) == []
        assert world.calls_for("reactions/create-for-issue-comment") == []
        async with app.runtime.sessions() as session:
            failed = await session.scalar(select(func.count()).select_from(Effect).where(Effect.status == "failed"))
        assert failed == 0


async def test_a_burst_of_fifty_votes_becomes_a_few_check_run_edits(tmp_path, world, app_private_key, database_url):
    world.add_pull(REPO, 5, head_sha=sha_of(5), author="alice")
    voters = [f"voter-{i:02d}" for i in range(50)]
    for login in voters:
        world.add_user(login)
        world.set_permission(REPO, login, "write")
    async with app_under_test(tmp_path, github_url=world.url, private_key=app_private_key, database_url=database_url) as app:
        app.runtime.start_worker()
        await open_proposals(app, world, [5])
        before = len(world.calls_for("checks/update")) + len(world.calls_for("checks/create"))
        burst = [payloads.posted_comment(world, "/approve", repo=REPO, number=5, author=login) for login in voters]
        started = time.monotonic()
        await send_all(app, burst)
        await settled(app)
        elapsed = time.monotonic() - started
        edits = len(world.calls_for("checks/update")) + len(world.calls_for("checks/create")) - before
        comment_edits = len(world.calls_for("issues/update-comment"))
        # At most one edit of each output per gathering interval, however slow the machine.
        most = 3 + elapsed / outbox.CONVERGE_INTERVAL.total_seconds()
        assert edits <= min(25, most), (edits, elapsed)
        assert comment_edits <= min(25, most), (comment_edits, elapsed)
        assert "50 votes" in newest_run(world, 5)["output"]["title"] + newest_run(world, 5)["output"]["summary"]
        assert await ballots_per_comment(app) == Counter(d.payload["comment"]["id"] for d in burst)
        assert world.calls_for("reactions/create-for-issue-comment") == []  # counted votes get no reaction


async def test_a_period_that_ended_while_the_app_was_down_is_closed_once_by_two_replicas(
    tmp_path, world, app_private_key, database_url
):
    world.add_pull(REPO, 6, head_sha=sha_of(6), author="alice")
    clock = Clock()
    async with app_under_test(
        tmp_path, github_url=world.url, private_key=app_private_key, database_url=database_url, clock=clock
    ) as first:
        await first.deliver(payloads.preview_ready(repo=REPO, sha=sha_of(6), deployment_id=1006))
        await first.deliver(payloads.posted_comment(world, "/approve", repo=REPO, number=6, author="dan"))
    # Down for a day and more; two replicas come back at once.
    clock.advance(hours=30)
    async with app_under_test(
        tmp_path, github_url=world.url, private_key=app_private_key, database_url=database_url, clock=clock
    ) as one, app_under_test(
        tmp_path, github_url=world.url, private_key=app_private_key, database_url=database_url, clock=clock
    ) as two:
        closed = await asyncio.gather(one.runtime.service.close_due_proposals(), two.runtime.service.close_due_proposals())
        assert sorted(closed) == [0, 1]
        await one.drain()
        await two.drain()
        async with one.runtime.sessions() as session:
            decisions = await session.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.action.like("decision:%"))
            )
        assert decisions == 1
        run = newest_run(world, 6)
        assert (run["status"], run["conclusion"]) == ("completed", "timed_out")


async def test_the_sweeper_closes_overdue_periods_as_soon_as_the_worker_starts(tmp_path, world, app_private_key, database_url):
    world.add_pull(REPO, 7, head_sha=sha_of(7), author="alice")
    clock = Clock()
    async with app_under_test(
        tmp_path, github_url=world.url, private_key=app_private_key, database_url=database_url, clock=clock
    ) as first:
        await first.deliver(payloads.preview_ready(repo=REPO, sha=sha_of(7), deployment_id=1007))
    clock.advance(days=3)
    async with app_under_test(
        tmp_path, github_url=world.url, private_key=app_private_key, database_url=database_url, clock=clock
    ) as later:
        later.runtime.start_worker()
        deadline = time.monotonic() + 15
        while newest_run(world, 7)["status"] != "completed" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert newest_run(world, 7)["conclusion"] == "timed_out"


async def test_health_shows_the_backlog(tmp_path, app_private_key, database_url):
    async with app_under_test(
        tmp_path, github_url="http://127.0.0.1:9", private_key=app_private_key, database_url=database_url
    ) as app:
        await app.send(payloads.comment("/approve", repo=REPO, number=8, author="ann"))
        await asyncio.sleep(0.05)
        body = await (await app.client.get("/api/health")).json()
        backlog = body["backlog"]
        assert backlog["pending_deliveries"] == 1
        assert backlog["oldest_pending_delivery_age_s"] >= 0.05
        assert backlog["pending_effects"] == 0


async def test_health_shows_whether_github_accepts_the_app_without_making_it_unready(
    tmp_path, fake_github, app_private_key, database_url
):
    """GitHub's trouble is shown, but intake stays ready: deliveries must still be stored."""
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    cases = [
        (fake_github.url, app_private_key, "ok"),
        (fake_github.url, other_key, "refused: GitHub answered 401"),
        ("http://127.0.0.1:9", app_private_key, "unreachable"),
    ]
    for number, (github_url, key, expected) in enumerate(cases):
        async with app_under_test(
            tmp_path / str(number), github_url=github_url, private_key=key, database_url=database_url
        ) as app:
            app.runtime.start_worker()
            for _ in range(2):  # the second answer comes from the cache: GitHub is asked once
                response = await app.client.get("/api/health")
                body = await response.json()
                assert (response.status, body["status"]) == (200, "ok"), body
                assert body["github"].startswith(expected), body
    assert len(fake_github.calls_for("apps/get-authenticated")) == 2
    fake_github.errors.clear()  # the refused JWT is recorded as a bad request, on purpose


@pytest.mark.parametrize(
    "unreachable",
    ["sqlite+aiosqlite:////nonexistent-folder/pinkflow.db", "postgresql+asyncpg://nobody@127.0.0.1:9/pinkflow"],
    ids=["sqlite", "postgresql"],
)
async def test_health_answers_503_when_the_database_is_unreachable(tmp_path, app_private_key, unreachable):
    from aiohttp.test_utils import TestClient, TestServer

    from pinkflow_bot.runtime import Runtime
    from pinkflow_bot.web.app import create_app
    from tests.harness import app_settings

    settings = app_settings(database_url=unreachable, github_url="http://127.0.0.1:9", private_key=app_private_key)
    runtime = await Runtime.create(settings, run_migrations=False)
    async with TestClient(TestServer(create_app(runtime))) as client:
        response = await client.get("/api/health")
        assert response.status == 503
        assert (await response.json())["database"].startswith("unreachable")
    await runtime.close()


async def test_when_github_refuses_both_outputs_for_good_they_stop_asking_each_other(
    tmp_path, world, app_private_key, database_url
):
    world.add_pull(REPO, 9, head_sha=sha_of(9), author="alice")
    async with app_under_test(tmp_path, github_url=world.url, private_key=app_private_key, database_url=database_url) as app:
        world.fail("checks/create", status=422, times=1000)
        world.fail("issues/create-comment", status=422, times=1000)
        await app.deliver(payloads.preview_ready(repo=REPO, sha=sha_of(9), deployment_id=1009))
        await app.deliver(payloads.posted_comment(world, "/status", repo=REPO, number=9, author="dan"))
        refused = len(world.calls_for("checks/create")) + len(world.calls_for("issues/create-comment"))
        assert refused <= 8
        async with app.runtime.sessions() as session:
            waiting, failed = await outbox.backlog(session)
        assert waiting == 0 and failed >= 2
        world.errors.clear()  # the 422s were asked for
