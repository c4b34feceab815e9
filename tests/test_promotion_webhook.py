"""The `webhook` provider against a local receiver that checks signatures as a real one would."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from pinkflow_bot.promotion import PromotionRefused, PromotionRequest, PromotionUnavailable, WebhookProvider

SECRET = "s3cret-shared-with-the-receiver"

REQUEST = PromotionRequest(
    proposal_id=17,
    repo_full_name="acme/web",
    pr_number=7,
    head_sha="9fceb02d0ae598e95dc970b74767f19372d61af8",
    preview_url="https://web-git-feature-acme.vercel.app",
    preview_deployment_id=555,
    production_environment="production",
    requested_by="alice",
    forced=False,
    details_url="https://pinkflow.example.com/proposals/17",
)


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A deploy hook: verifies the signature in constant time, promotes each delivery id once."""

    secret: str
    deliveries: list[Delivery] = field(default_factory=list)
    promoted: list[str] = field(default_factory=list)  # delivery ids acted on
    answers: list[tuple[int, dict[str, str], str]] = field(default_factory=list)  # given before acting
    delay: float = 0.0
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Pinkflow-Signature-256", "")):
            return web.json_response({"error": "bad signature"}, status=401)
        self.deliveries.append(Delivery(dict(request.headers), body))
        if self.answers:
            status, headers, text = self.answers.pop(0)
            return web.Response(status=status, headers=headers, text=text)
        delivery = request.headers["X-Pinkflow-Delivery"]
        if delivery not in self.promoted:
            self.promoted.append(delivery)
        await asyncio.sleep(self.delay)  # acted on, but the answer may come too late
        return web.json_response({"ok": True}, status=202)


async def moved(request: web.Request) -> web.StreamResponse:
    raise web.HTTPTemporaryRedirect("/hooks/pinkflow")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver(secret=SECRET)
    app = web.Application()
    app.router.add_post("/hooks/pinkflow", hook.handle)
    app.router.add_post("/moved", moved)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    hook.url = f"http://127.0.0.1:{port}/hooks/pinkflow"
    try:
        yield hook
    finally:
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def provider_for(session, url: str, *, secret: str = SECRET, timeout: float = 10.0) -> WebhookProvider:
    return WebhookProvider(session, url=url, secret=secret, timeout=timeout)


async def test_one_signed_promotion_reaches_the_receiver(session, receiver: Receiver):
    result = await provider_for(session, receiver.url).promote(REQUEST, attempt=1)

    assert result.reference == "proposal-17"
    assert result.deployment_id is None
    assert receiver.promoted == ["proposal-17"]
    (delivery,) = receiver.deliveries
    assert delivery.headers["X-Pinkflow-Event"] == "promote"
    assert delivery.headers["X-Pinkflow-Delivery"] == "proposal-17"
    assert delivery.headers["Content-Type"] == "application/json"
    assert json.loads(delivery.body) == {
        "event": "promote",
        "delivery": "proposal-17",
        "proposal_id": 17,
        "repo_full_name": "acme/web",
        "pr_number": 7,
        "head_sha": "9fceb02d0ae598e95dc970b74767f19372d61af8",
        "preview_url": "https://web-git-feature-acme.vercel.app",
        "preview_deployment_id": 555,
        "production_environment": "production",
        "requested_by": "alice",
        "forced": False,
        "html_url": "https://pinkflow.example.com/proposals/17",
    }


async def test_a_receiver_with_another_secret_refuses_and_so_does_the_promotion(session, receiver: Receiver):
    with pytest.raises(PromotionRefused, match="401"):
        await provider_for(session, receiver.url, secret="not-the-shared-secret").promote(REQUEST, attempt=1)
    assert receiver.promoted == []


async def test_a_retry_after_a_lost_answer_carries_the_same_delivery_id_and_bytes(session, receiver: Receiver):
    receiver.delay = 0.4  # the receiver acts, but answers after the provider stopped waiting
    with pytest.raises(PromotionUnavailable, match=r"^the promotion webhook did not answer \(no answer in time\)$"):
        await provider_for(session, receiver.url, timeout=0.1).promote(REQUEST, attempt=1)
    receiver.delay = 0.0

    result = await provider_for(session, receiver.url).promote(REQUEST, attempt=2)

    assert result.reference == "proposal-17"
    first, second = receiver.deliveries
    assert first.headers["X-Pinkflow-Delivery"] == second.headers["X-Pinkflow-Delivery"] == "proposal-17"
    assert first.body == second.body
    assert first.headers["X-Pinkflow-Signature-256"] == second.headers["X-Pinkflow-Signature-256"]
    assert receiver.promoted == ["proposal-17"]  # the receiver deduped: production was promoted once


async def test_a_busy_receiver_is_tried_again_when_it_asks(session, receiver: Receiver):
    receiver.answers.append((503, {"Retry-After": "20"}, "deploy queue full"))
    with pytest.raises(PromotionUnavailable, match="503: deploy queue full") as raised:
        await provider_for(session, receiver.url).promote(REQUEST, attempt=1)
    assert raised.value.retry_after == 20
    assert receiver.promoted == []

    await provider_for(session, receiver.url).promote(REQUEST, attempt=2)
    assert receiver.promoted == ["proposal-17"]


@pytest.mark.parametrize("status", [408, 429, 500, 502])
async def test_answers_that_may_change_are_unavailable(session, receiver: Receiver, status):
    receiver.answers.append((status, {}, ""))
    with pytest.raises(PromotionUnavailable, match=str(status)):
        await provider_for(session, receiver.url).promote(REQUEST, attempt=1)


@pytest.mark.parametrize("status", [400, 404, 410, 422])
async def test_a_receiver_that_says_no_refuses_the_promotion(session, receiver: Receiver, status):
    receiver.answers.append((status, {}, "unknown environment: production"))
    with pytest.raises(PromotionRefused, match=f"{status}.*unknown environment: production"):
        await provider_for(session, receiver.url).promote(REQUEST, attempt=1)


async def test_a_redirect_is_not_followed(session, receiver: Receiver):
    moved = receiver.url.replace("/hooks/pinkflow", "/moved")
    with pytest.raises(PromotionRefused, match="redirect"):
        await provider_for(session, moved).promote(REQUEST, attempt=1)
    assert receiver.deliveries == []


async def test_without_a_secret_nothing_is_sent(session, receiver: Receiver):
    with pytest.raises(PromotionRefused, match="PROMOTION_WEBHOOK_SECRET"):
        await provider_for(session, receiver.url, secret="").promote(REQUEST, attempt=1)
    assert receiver.deliveries == []


async def test_a_url_that_would_send_the_promotion_in_clear_is_refused(session):
    with pytest.raises(PromotionRefused, match="https"):
        await provider_for(session, "http://deploy.example.com/hook").promote(REQUEST, attempt=1)


async def test_a_receiver_that_is_down_is_tried_again_later(session):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(PromotionUnavailable):
        await provider_for(session, f"http://127.0.0.1:{port}/hook").promote(REQUEST, attempt=1)


def test_the_secret_is_not_in_the_providers_repr():
    provider = WebhookProvider(None, url="https://deploy.example.com/hook", secret=SECRET)  # type: ignore[arg-type]
    assert SECRET not in repr(provider)
