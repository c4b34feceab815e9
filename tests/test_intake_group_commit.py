"""Intake under concurrency: deliveries arriving together share a commit, and a 2xx still
means the delivery is stored; a failed commit acknowledges none of its deliveries."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timezone

import pytest

from pinkflow_bot.storage import inbox
from pinkflow_bot.storage.database import create_engine, migrate
from tests import payloads
from tests.harness import app_under_test
from tests.process import eventually
from tests.test_intake import REPO, stored_deliveries


@pytest.fixture
async def app(tmp_path, app_private_key, database_url):
    async with app_under_test(
        tmp_path, github_url="http://127.0.0.1:9", private_key=app_private_key, database_url=database_url
    ) as app:
        yield app


async def commits_so_far(app) -> tuple[float, float]:
    """(intake commits, deliveries they stored), from the App's own /metrics."""
    text = await (await app.client.get("/metrics")).text()
    count = re.search(r"^pinkflow_intake_batch_deliveries_count (\S+)$", text, re.M)
    total = re.search(r"^pinkflow_intake_batch_deliveries_sum (\S+)$", text, re.M)
    return float(count.group(1)), float(total.group(1))


async def test_concurrent_deliveries_are_all_stored_with_fewer_commits_than_deliveries(app):
    commits_before, stored_before = await commits_so_far(app)
    deliveries = [payloads.comment(f"/approve {n}", repo=REPO, number=n % 5 + 1, author=f"voter{n}") for n in range(60)]

    responses = await asyncio.gather(*(app.send(delivery) for delivery in deliveries))

    assert [response.status for response in responses] == [202] * 60
    stored = await stored_deliveries(app)
    assert sorted(row.delivery_id for row in stored) == sorted(d.delivery_id for d in deliveries)
    assert {row.delivery_id: json.loads(row.body) for row in stored} == {d.delivery_id: d.payload for d in deliveries}
    commits_after, stored_after = await commits_so_far(app)
    assert stored_after - stored_before == 60
    assert commits_after - commits_before < 60


async def test_one_delivery_id_sent_twice_at_once_is_stored_once(app):
    delivery = payloads.comment("/approve", repo=REPO, number=3, author="maria")
    others = [payloads.comment("/reject", repo=REPO, number=4, author=f"v{n}") for n in range(8)]

    responses = await asyncio.gather(*(app.send(d) for d in [delivery, *others, delivery]))

    statuses = [response.status for response in responses]
    assert sorted((statuses[0], statuses[-1])) == [200, 202]
    assert statuses[1:-1] == [202] * 8
    assert len(await stored_deliveries(app)) == 9


async def test_a_failed_commit_acknowledges_none_of_its_deliveries_and_a_redelivery_succeeds(app, monkeypatch):
    writer = app.runtime.deliveries
    real_insert = writer._insert
    failures = []

    async def failing_insert(connection, rows):
        failures.append(len(rows))
        raise OSError("disk I/O error")

    monkeypatch.setattr(writer, "_insert", failing_insert)
    deliveries = [payloads.comment("/approve", repo=REPO, number=3, author=f"v{n}") for n in range(5)]
    responses = await asyncio.gather(*(app.send(d) for d in deliveries))

    assert [response.status for response in responses] == [503] * 5
    errors = [(await response.json())["error"] for response in responses]
    assert all("redeliver" in error for error in errors)
    assert sum(failures) == 5
    assert await stored_deliveries(app) == []

    monkeypatch.setattr(writer, "_insert", real_insert)
    redelivered = await asyncio.gather(*(app.send(d) for d in deliveries))
    assert [response.status for response in redelivered] == [202] * 5
    assert len(await stored_deliveries(app)) == 5


async def test_deliveries_waiting_at_shutdown_are_committed_and_later_ones_refused(app):
    writer = app.runtime.deliveries
    delivery = payloads.comment("/approve", repo=REPO, number=3, author="maria")
    sending = asyncio.ensure_future(app.send(delivery))
    await asyncio.sleep(0)  # the request is in flight while the App shuts down
    while not sending.done() and not writer._waiting and writer._task is None:
        await asyncio.sleep(0.001)
    await writer.close()
    assert (await sending).status == 202
    assert [row.delivery_id for row in await stored_deliveries(app)] == [delivery.delivery_id]

    late = await app.send(payloads.comment("/reject", repo=REPO, number=3, author="lee"))
    assert late.status == 503


async def test_on_sqlite_deliveries_reach_the_database_file_without_intake_copying_the_log(tmp_path):
    """Intake's commits only append to SQLite's write-ahead log; a checkpointer of its own
    copies them into the database file shortly after, so the log stays short."""
    path = tmp_path / "intake.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    writer = inbox.DeliveryWriter(engine)
    try:
        file_before = path.stat().st_size
        body = json.dumps({"action": "created", "padding": "x" * 10_000})
        rows = [
            inbox.delivery_row(delivery_id=f"d{n}", event="issue_comment", action="created", installation_id=1,
                               serial_key=f"{REPO.lower()}#{n % 7}", body=body, received_at=datetime.now(timezone.utc))
            for n in range(200)
        ]
        assert all(await asyncio.gather(*(writer.store(row) for row in rows)))
        async with engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            # 2 MB is under SQLite's own threshold (1,000 pages): only the checkpointer moves it.
            await eventually(lambda: path.stat().st_size > file_before + 200 * 10_000, message="the rows in the database file")
            assert await driver.execute_fetchall("PRAGMA wal_autocheckpoint") == [(1000,)]  # other connections: as usual
        driver = (await writer._connection.get_raw_connection()).driver_connection
        assert await driver.execute_fetchall("PRAGMA wal_autocheckpoint") == [(0,)]  # intake's commits never copy
    finally:
        await writer.close()
        await engine.dispose()
