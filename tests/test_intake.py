"""Webhook intake: what GitHub (or anyone else) gets back, and what is stored."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from pinkflow_bot.storage.database import create_engine, session_factory
from pinkflow_bot.storage.models import Delivery as StoredDelivery
from tests import payloads
from tests.harness import WEBHOOK_SECRET, app_under_test

REPO = "octo-org/shop"
SHA = "a" * 40


@pytest.fixture
async def app(tmp_path, app_private_key, database_url):
    # Intake never calls GitHub: an address where nothing listens proves it.
    async with app_under_test(
        tmp_path, github_url="http://127.0.0.1:9", private_key=app_private_key, database_url=database_url,
        MAX_BODY_BYTES="20000",
    ) as app:
        yield app


async def stored_deliveries(app) -> list[StoredDelivery]:
    # A separate engine: what it sees was committed, not merely flushed in the request's session.
    engine = create_engine(app.runtime.settings.database_url)
    try:
        async with session_factory(engine)() as session:
            return list(await session.scalars(select(StoredDelivery)))
    finally:
        await engine.dispose()


async def test_a_signed_delivery_is_stored_and_committed_before_the_answer(app):
    delivery = payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=11)
    response = await app.send(delivery)
    assert response.status == 202
    [stored] = await stored_deliveries(app)
    assert stored.delivery_id == delivery.delivery_id
    assert stored.event == "deployment_status"
    assert stored.status == "pending"
    assert json.loads(stored.body) == delivery.payload


async def test_a_redelivered_id_is_acknowledged_and_stored_once(app):
    delivery = payloads.comment("/approve", repo=REPO, number=3, author="maria")
    first = await app.send(delivery)
    again = await app.send(delivery)
    assert (first.status, again.status) == (202, 200)
    assert (await again.json())["duplicate"] is True
    assert len(await stored_deliveries(app)) == 1


@pytest.mark.parametrize(
    "change_headers",
    [
        pytest.param(lambda h: h.pop("X-Hub-Signature-256"), id="missing signature"),
        pytest.param(lambda h: h.update({"X-Hub-Signature-256": "sha256=" + "0" * 64}), id="wrong signature"),
        pytest.param(lambda h: h.update({"X-Hub-Signature-256": "sha256=zz"}), id="garbled signature"),
        pytest.param(
            lambda h: (h.pop("X-Hub-Signature-256"), h.update({"X-Hub-Signature": "sha1=" + "0" * 40})),
            id="only the SHA-1 header",
        ),
    ],
)
async def test_an_unsigned_or_badly_signed_delivery_gets_401_and_is_not_stored(app, change_headers):
    delivery = payloads.comment("/approve", repo=REPO, number=3, author="maria")
    body = delivery.body()
    headers = delivery.headers(WEBHOOK_SECRET, body)
    change_headers(headers)
    response = await app.client.post("/api/github/webhooks", data=body, headers=headers)
    assert response.status == 401
    assert "error" in await response.json()
    assert await stored_deliveries(app) == []


async def test_a_body_signed_with_another_secret_gets_401(app):
    response = await app.send(payloads.ping(), secret="someone-elses-secret")
    assert response.status == 401


@pytest.mark.parametrize(
    "body, content_type, status",
    [
        (b'{"action": "created", ', "application/json", 400),
        (b"[1, 2, 3]", "application/json", 400),
        (b"\xff\xfe not utf-8", "application/json", 400),
        (b"", "application/json", 400),
        (b"payload=%7B%7D", "application/x-www-form-urlencoded", 415),
    ],
    ids=["truncated", "not an object", "not utf-8", "empty", "form encoded"],
)
async def test_a_malformed_body_gets_a_clear_4xx(app, body, content_type, status):
    headers = {
        "X-GitHub-Event": "issue_comment",
        "X-GitHub-Delivery": "d-malformed",
        "X-Hub-Signature-256": payloads.sign(WEBHOOK_SECRET, body),
        "Content-Type": content_type,
    }
    response = await app.client.post("/api/github/webhooks", data=body, headers=headers)
    assert response.status == status
    assert "error" in await response.json()
    assert await stored_deliveries(app) == []


async def test_missing_event_or_delivery_headers_get_400(app):
    delivery = payloads.ping()
    body = delivery.body()
    for missing in ("X-GitHub-Event", "X-GitHub-Delivery"):
        headers = delivery.headers(WEBHOOK_SECRET, body)
        headers.pop(missing)
        response = await app.client.post("/api/github/webhooks", data=body, headers=headers)
        assert response.status == 400, missing


async def test_an_oversized_body_gets_413_and_is_not_stored(app):
    delivery = payloads.comment("/approve " + "x" * 30_000, repo=REPO, number=3, author="maria")
    response = await app.send(delivery)
    assert response.status == 413
    assert await stored_deliveries(app) == []


async def test_ping_is_answered_and_not_stored(app):
    response = await app.send(payloads.ping())
    assert response.status == 200
    assert (await response.json())["ok"] is True
    assert await stored_deliveries(app) == []


async def test_without_a_webhook_secret_every_delivery_is_refused(tmp_path, app_private_key):
    async with app_under_test(
        tmp_path, github_url="http://127.0.0.1:9", private_key=app_private_key, WEBHOOK_SECRET=""
    ) as app:
        response = await app.send(payloads.ping())
        assert response.status == 401


async def test_health_is_ready_only_with_the_database_answering_and_the_worker_running(app):
    response = await app.client.get("/api/health")
    assert response.status == 503
    assert (await response.json())["worker"] == "stopped"
    app.runtime.start_worker()
    response = await app.client.get("/api/health")
    assert response.status == 200
    body = await response.json()
    assert (body["status"], body["database"], body["worker"]) == ("ok", "ok", "running")
