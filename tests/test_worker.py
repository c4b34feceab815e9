"""The worker's inbox: oldest first, one at a time per pull request, nothing lost to a crash."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest
from gidgethub import routing
from sqlalchemy import select, update

from pinkflow_bot.effects import MAX_EFFECT_ATTEMPTS, EffectRunner
from pinkflow_bot.services import GovernanceService
from pinkflow_bot.settings import Settings
from pinkflow_bot.storage import inbox
from pinkflow_bot.storage.database import create_engine, migrate, session_factory
from pinkflow_bot.storage.models import Delivery, Effect
from pinkflow_bot.worker import Worker
from tests import payloads
from tests.harness import Clock

LEASE = timedelta(minutes=5)


@pytest.fixture
async def sessions(database_url):
    engine = create_engine(database_url)
    await migrate(engine)
    yield session_factory(engine)
    await engine.dispose()


async def store(sessions, delivery: payloads.Delivery, *, at: datetime) -> None:
    async with sessions() as session, session.begin():
        await inbox.store_delivery(
            session,
            delivery_id=delivery.delivery_id,
            event=delivery.event,
            action=delivery.payload.get("action"),
            installation_id=None,
            serial_key=inbox.serial_key_for(delivery.event, delivery.payload),
            body=json.dumps(delivery.payload),
            received_at=at,
        )


async def claim(sessions, now: datetime) -> Delivery | None:
    async with sessions() as session, session.begin():
        return await inbox.claim_next_delivery(session, now=now, lease=LEASE)


async def finish(sessions, delivery: Delivery, now: datetime) -> None:
    async with sessions() as session, session.begin():
        await inbox.finish_delivery(session, seq=delivery.seq, attempt=delivery.attempts, now=now)


def comment_on(number: int, body: str = "/approve") -> payloads.Delivery:
    return payloads.comment(body, repo="octo/shop", number=number, author="ann")


async def test_oldest_first_and_one_at_a_time_per_pull_request(sessions):
    now = datetime(2026, 11, 2, tzinfo=timezone.utc)
    first, second, other = comment_on(1), comment_on(1, "/reject"), comment_on(2)
    for delivery in (first, second, other):
        await store(sessions, delivery, at=now)
    a = await claim(sessions, now)
    b = await claim(sessions, now)
    assert (a.delivery_id, b.delivery_id) == (first.delivery_id, other.delivery_id)
    # The second comment on pull request 1 waits while the first is in hand.
    assert await claim(sessions, now) is None
    await finish(sessions, a, now)
    c = await claim(sessions, now)
    assert c.delivery_id == second.delivery_id


async def test_a_delivery_held_by_a_crashed_worker_is_claimed_again_when_its_lease_lapses(sessions):
    now = datetime(2026, 11, 2, tzinfo=timezone.utc)
    await store(sessions, comment_on(1), at=now)
    taken = await claim(sessions, now)
    assert await claim(sessions, now + LEASE - timedelta(seconds=1)) is None
    again = await claim(sessions, now + LEASE + timedelta(seconds=1))
    assert again.seq == taken.seq
    assert again.attempts == 2


@pytest.mark.parametrize(
    "event, payload, key",
    [
        ("issue_comment", {"repository": {"full_name": "Octo/Shop"}, "issue": {"number": 4}}, "octo/shop#4"),
        ("pull_request", {"repository": {"full_name": "octo/shop"}, "pull_request": {"number": 4}}, "octo/shop#4"),
        ("deployment_status", {"repository": {"full_name": "octo/shop"}, "deployment": {"sha": "abc"}}, "octo/shop@abc"),
        ("installation", {"installation": {"id": 9}}, "installation:9"),
        ("issue_comment", {"repository": "not an object", "issue": [1]}, "installation:none"),
    ],
)
def test_serial_keys(event, payload, key):
    assert inbox.serial_key_for(event, payload) == key


async def test_a_failing_handler_is_retried_then_parked_without_blocking_others(sessions):
    clock = Clock()
    calls: list[int] = []
    router = routing.Router()

    @router.register("issue_comment", action="created")
    async def broken(event, gh, ctx):
        calls.append(event.data["issue"]["number"])
        if event.data["issue"]["number"] == 1:
            raise RuntimeError("handler bug")

    settings = Settings.load({}, env_file=None)
    service = GovernanceService(sessions=sessions, settings=settings, clock=clock)
    worker = Worker(sessions=sessions, service=service, github=None, router=router, clock=clock)
    await store(sessions, comment_on(1), at=clock())
    await store(sessions, comment_on(2), at=clock())
    for _ in range(inbox.MAX_ATTEMPTS):
        while await worker.process_next_delivery():
            pass
        clock.advance(minutes=10)
    async with sessions() as session:
        rows = {d.serial_key: d for d in await session.scalars(select(Delivery))}
    statuses = sorted((row.serial_key, row.status, row.attempts) for row in rows.values())
    assert statuses == [("octo/shop#1", "failed", inbox.MAX_ATTEMPTS), ("octo/shop#2", "done", 1)]
    assert calls.count(1) == inbox.MAX_ATTEMPTS and calls.count(2) == 1
    assert "handler bug" in rows["octo/shop#1"].error


def worker_for(sessions, router: routing.Router, clock: Clock) -> Worker:
    service = GovernanceService(sessions=sessions, settings=Settings.load({}, env_file=None), clock=clock)
    return Worker(sessions=sessions, service=service, github=None, router=router, clock=clock, lease=LEASE)


async def test_a_late_failure_of_an_attempt_that_was_taken_over_changes_nothing(sessions):
    """Attempt 1 outlasts its lease; another worker takes the delivery over and finishes it;
    then attempt 1 fails. The delivery stays done: it is not run a third time, nor parked."""
    clock = Clock()
    attempts: list[int] = []
    router = routing.Router()
    replicas: list[Worker] = []

    @router.register("issue_comment", action="created")
    async def slow_then_broken(event, gh, ctx):
        attempts.append(ctx.delivery.attempt)
        if ctx.delivery.attempt == 1:
            clock.advance(seconds=LEASE.total_seconds() + 1)
            assert await replicas[1].process_next_delivery()  # the other worker's attempt 2
            raise RuntimeError("attempt 1 fails late")

    replicas.extend([worker_for(sessions, router, clock), worker_for(sessions, router, clock)])
    await store(sessions, comment_on(1), at=clock())
    assert await replicas[0].process_next_delivery()
    clock.advance(minutes=30)
    for replica in replicas:
        assert not await replica.process_next_delivery()
    async with sessions() as session:
        [row] = await session.scalars(select(Delivery))
    assert (row.status, row.attempts, row.error) == ("done", 2, None)
    assert attempts == [1, 2]


async def test_a_delivery_due_for_its_retry_holds_back_its_pull_request_while_it_is_claimed_again(sessions, database_url):
    now = datetime(2026, 11, 2, tzinfo=timezone.utc)
    first, second, other = comment_on(1), comment_on(1, "/reject"), comment_on(2)
    for delivery in (first, second, other):
        await store(sessions, delivery, at=now)
    a = await claim(sessions, now)
    async with sessions() as session, session.begin():
        await inbox.fail_delivery(session, seq=a.seq, attempt=a.attempts, now=now, error="502", retry_in=timedelta(minutes=1))
    assert (await claim(sessions, now)).delivery_id == other.delivery_id
    # The retry is due (its lease has lapsed). Two claimers at once, replicas or one worker's
    # loops: the first takes the retry and has not committed it yet when the second looks.
    due = now + timedelta(minutes=2)
    async with sessions() as session, session.begin():
        retried = await inbox.claim_next_delivery(session, now=due, lease=LEASE)
        assert (retried.delivery_id, retried.attempts) == (first.delivery_id, 2)
        if not database_url.startswith("sqlite"):  # SQLite has one writer: its claims never overlap
            assert await claim(sessions, due) is None
    assert await claim(sessions, due) is None
    await finish(sessions, retried, due)
    assert (await claim(sessions, due)).delivery_id == second.delivery_id


async def test_a_delivery_whose_every_attempt_outlasts_its_lease_is_parked_and_its_pull_request_goes_on(sessions):
    """No attempt of it ever commits (each is taken over, or its worker dies): only
    `fail_delivery` counted attempts, so it used to be claimed again for ever."""
    now = datetime(2026, 11, 2, tzinfo=timezone.utc)
    stuck, after = comment_on(1), comment_on(1, "/reject")
    await store(sessions, stuck, at=now)
    await store(sessions, after, at=now)
    # Waits for GitHub's rate limit use up no attempt.
    for attempt in (1, 2):
        taken = await claim(sessions, now)
        async with sessions() as session, session.begin():
            await inbox.fail_delivery(
                session, seq=taken.seq, attempt=attempt, now=now, error="403", retry_in=timedelta(minutes=1), rate_limited=True
            )
        now += timedelta(minutes=2)
    for attempt in range(3, inbox.MAX_ATTEMPTS + 3):
        taken = await claim(sessions, now)
        assert (taken.delivery_id, taken.attempts) == (stuck.delivery_id, attempt)
        now += LEASE + timedelta(seconds=1)
    assert (await claim(sessions, now)).delivery_id == after.delivery_id
    async with sessions() as session:
        parked = await session.scalar(select(Delivery).where(Delivery.delivery_id == stuck.delivery_id))
    assert (parked.status, parked.attempts, parked.lease_until) == ("failed", inbox.MAX_ATTEMPTS + 2, None)
    assert "attempts ran out of time" in parked.error


async def test_an_effect_whose_every_attempt_outlasted_its_lease_is_parked_instead_of_performed(sessions, caplog):
    clock = Clock()
    service = GovernanceService(sessions=sessions, settings=Settings.load({}, env_file=None), clock=clock)
    runner = EffectRunner(sessions=sessions, github=None, service=service, clock=clock, lease=LEASE)
    performed: list[int] = []

    async def react(effect: Effect) -> None:
        performed.append(effect.id)

    runner._react = react
    lapsed = clock() - timedelta(seconds=1)
    async with sessions() as session, session.begin():
        # As its last claim left it: every attempt it had was taken over, or its worker died.
        out_of_time = Effect(kind="react", payload={}, status="processing", attempts=MAX_EFFECT_ATTEMPTS,
                             rate_limit_waits=0, not_before=lapsed, lease_until=lapsed, created_at=lapsed)
        # As many claims, but three of them waited for GitHub's rate limit: it has attempts left.
        with_attempts_left = Effect(kind="react", payload={}, status="processing", attempts=MAX_EFFECT_ATTEMPTS,
                                    rate_limit_waits=3, not_before=lapsed, lease_until=lapsed, created_at=lapsed)
        session.add_all([out_of_time, with_attempts_left])
    assert await runner.run_due(coalesce=False) == 2
    assert performed == [with_attempts_left.id]
    async with sessions() as session:
        parked = await session.get(Effect, out_of_time.id)
        done = await session.get(Effect, with_attempts_left.id)
    assert (parked.status, parked.attempts, parked.lease_until) == ("failed", MAX_EFFECT_ATTEMPTS, None)
    assert "attempts ran out of time" in parked.last_error
    assert (done.status, done.attempts) == ("done", MAX_EFFECT_ATTEMPTS + 1)
    [shown] = [r for r in caplog.records if r.getMessage() == "effect failed for good"]
    assert "attempts ran out of time" in shown.error
    assert await runner.run_due(coalesce=False) == 0


SHORT_LEASE = timedelta(seconds=0.9)
SLOW = 2.5  # seconds of work: nearly three leases


async def test_a_slow_delivery_keeps_its_lease_and_is_not_taken_over(sessions):
    started = asyncio.Event()
    attempts: list[int] = []
    router = routing.Router()

    @router.register("issue_comment", action="created")
    async def slow(event, gh, ctx):
        attempts.append(ctx.delivery.attempt)
        started.set()
        await asyncio.sleep(SLOW)

    service = GovernanceService(sessions=sessions, settings=Settings.load({}, env_file=None))
    one, other = (Worker(sessions=sessions, service=service, github=None, router=router, lease=SHORT_LEASE) for _ in "ab")
    await store(sessions, comment_on(1), at=datetime.now(timezone.utc))
    working = asyncio.create_task(one.process_next_delivery())
    await started.wait()
    while not working.done():  # another replica keeps looking for work meanwhile
        assert not await other.process_next_delivery()
        await asyncio.sleep(0.05)
    assert working.result() is True
    async with sessions() as session:
        [row] = await session.scalars(select(Delivery))
    assert (row.status, row.attempts) == ("done", 1)
    assert attempts == [1]


async def test_a_slow_effect_keeps_its_lease_and_is_not_done_twice(sessions):
    service = GovernanceService(sessions=sessions, settings=Settings.load({}, env_file=None))
    one, other = (EffectRunner(sessions=sessions, github=None, service=service, lease=SHORT_LEASE) for _ in "ab")
    started = asyncio.Event()
    performed: list[int] = []

    async def slow_react(effect: Effect) -> None:  # a promotion waiting on its provider, say
        performed.append(effect.attempts)
        started.set()
        await asyncio.sleep(SLOW)

    one._react = other._react = slow_react
    due = datetime.now(timezone.utc) - timedelta(seconds=1)
    async with sessions() as session, session.begin():
        session.add(Effect(kind="react", payload={}, status="pending", attempts=0, rate_limit_waits=0, not_before=due, created_at=due))
    working = asyncio.create_task(one.run_due(coalesce=False))
    await started.wait()
    while not working.done():
        assert await other.run_due(coalesce=False) == 0
        await asyncio.sleep(0.05)
    assert working.result() == 1
    async with sessions() as session:
        [row] = await session.scalars(select(Effect))
    assert (row.status, row.attempts) == ("done", 1)
    assert performed == [1]


async def test_a_renewal_that_finds_the_delivery_taken_over_leaves_it_to_its_new_holder(sessions):
    taken_over_until = datetime(2030, 1, 1, tzinfo=timezone.utc)
    outcome: list[str] = []
    router = routing.Router()

    @router.register("issue_comment", action="created")
    async def slow(event, gh, ctx):
        await asyncio.sleep(SHORT_LEASE.total_seconds() / 2)
        async with sessions() as session, session.begin():  # as another worker's claim leaves it
            await session.execute(
                update(Delivery).where(Delivery.seq == ctx.delivery.seq).values(attempts=2, lease_until=taken_over_until)
            )
        await asyncio.sleep(SHORT_LEASE.total_seconds())  # renewals come and find it taken
        outcome.append("the work went on")

    service = GovernanceService(sessions=sessions, settings=Settings.load({}, env_file=None))
    worker = Worker(sessions=sessions, service=service, github=None, router=router, lease=SHORT_LEASE)
    await store(sessions, comment_on(1), at=datetime.now(timezone.utc))
    assert await worker.process_next_delivery()
    assert outcome == ["the work went on"]
    async with sessions() as session:
        [row] = await session.scalars(select(Delivery))
    # Its finish was refused (taken over), and no renewal moved the new holder's lease.
    assert (row.status, row.attempts, row.lease_until) == ("processing", 2, taken_over_until)


async def test_a_database_outage_reads_as_a_few_log_lines_and_its_end_is_said(tmp_path, caplog, monkeypatch):
    """The database is gone (its folder missing) while the worker runs: each loop logs its
    traceback once, not every half second, then one line now and then while it lasts; when
    the database is back, the loops say so and take up work again."""
    import logging

    from pinkflow_bot import worker as worker_module

    monkeypatch.setattr(worker_module, "REPEATED_ERROR_EVERY_SECONDS", 1.0)
    caplog.set_level(logging.INFO, logger="pinkflow_bot.worker")
    folder = tmp_path / "data"
    url = f"sqlite+aiosqlite:///{folder / 'pinkflow.db'}"
    engine = create_engine(url)
    sessions = session_factory(engine)
    handled: list[int] = []
    router = routing.Router()

    @router.register("issue_comment", action="created")
    async def count(event, gh, ctx):
        handled.append(event.data["issue"]["number"])

    worker = worker_for(sessions, router, Clock())
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(3)
        tracebacks = [r for r in caplog.records if r.exc_info]
        assert {r.getMessage() for r in tracebacks} <= {"delivery loop error", "effect loop error", "sweeper error"}
        assert 1 <= len(tracebacks) <= 3, [r.getMessage() for r in tracebacks]
        still = [r for r in caplog.records if r.getMessage() == "delivery loop error, still"]
        assert still and all(r.times_since_last_logged >= 1 for r in still)
        assert all(later.created - earlier.created >= 0.9 for earlier, later in zip(still, still[1:]))

        folder.mkdir()
        await migrate(engine)
        await store(sessions, comment_on(7), at=datetime.now(timezone.utc))
        worker.notify()
        said: list[str] = []
        for _ in range(150):
            said = [r.getMessage() for r in caplog.records]
            if handled and "delivery loop working again" in said:
                break
            await asyncio.sleep(0.1)
        assert handled == [7]
        assert "delivery loop working again" in said
    finally:
        worker.stop()
        await running
        await engine.dispose()


def test_an_error_repeating_with_new_statement_parameters_is_logged_once(caplog):
    """A failing statement's parameters (a time) differ on every try; it is the same error."""
    import logging

    from sqlalchemy.exc import OperationalError

    from pinkflow_bot.worker import LoopErrors

    caplog.set_level(logging.INFO, logger="pinkflow_bot.worker")
    errors = LoopErrors(clock=lambda: 0.0)
    for attempt in range(20):
        errors.failed("effect loop", OperationalError("UPDATE effects SET lease_until=?", (attempt,), OSError("disk I/O error")))
    assert [r.getMessage() for r in caplog.records] == ["effect loop error"]
