"""Preview health: the App GETs the preview URL + `preview_health.path`, shows the status and
the time in the status comment, and with `required: true` promotes nothing while it fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from pinkflow_bot.preview_health import address_refusal, check_preview, health_url
from tests.flow import (  # noqa: F401  (fixtures)
    app_fixture,
    check_run,
    clock_fixture,
    make_app_fixture,
    open_proposal,
    set_rules,
    status,
    status_comment,
    vote_fixture,
    world_fixture,
)

PASS = ("/approve", "ann"), ("/approve", "max"), ("/approve", "dan")


class Preview:
    """A preview deployment on this machine that answers as told."""

    def __init__(self) -> None:
        self.status = 200
        self.paths: list[str] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        if request.path == "/away":
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")
        if request.path == "/around":
            raise web.HTTPFound("/healthz")
        if request.path == "/slow":
            await asyncio.sleep(2)
        return web.Response(status=self.status, text="preview")


@pytest.fixture
async def preview() -> AsyncIterator[Preview]:
    site = Preview()
    application = web.Application()
    application.router.add_route("GET", "/{tail:.*}", site.handle)
    server = TestServer(application, host="127.0.0.1")
    await server.start_server()
    site.url = str(server.make_url("/pr-31/"))
    try:
        yield site
    finally:
        await server.close()


async def test_the_preview_is_checked_and_its_status_and_time_are_shown(app, world, preview):
    set_rules(world, "preview_health:\n  path: /healthz\n")
    await open_proposal(app, url=preview.url)
    assert preview.paths == ["/healthz"]
    comment = status_comment(world)
    assert "Preview health: answers 200 in " in comment and " ms." in comment


async def test_a_failing_preview_blocks_promotion_when_required_until_it_answers(app, world, vote, preview):
    set_rules(world, "preview_health:\n  path: /healthz\n  required: true\n")
    preview.status = 503
    await open_proposal(app, url=preview.url)
    await app.deliver(*(vote(body, who) for body, who in PASS), vote("/promote", "dan"))
    assert world.calls_for("repos/create-deployment") == []
    comment = status_comment(world)
    assert "Preview health: answers 503" in comment and "Promotion needs it to answer without error." in comment
    assert "the preview must answer without error first (its health is failing)" in comment
    assert world.check_run_actions[check_run(world)["id"]] == []  # no Promote button
    preview.status = 200
    await app.deliver(vote("/status", "rita"))  # checks the preview again
    assert preview.paths == ["/healthz", "/healthz"]
    await app.deliver(vote("/promote", "dan"))
    assert len(world.calls_for("repos/create-deployment")) == 1


async def test_a_failing_preview_is_only_shown_when_not_required(app, world, vote, preview):
    preview.status = 500
    await open_proposal(app, url=preview.url)
    await app.deliver(*(vote(body, who) for body, who in PASS), vote("/promote", "dan"))
    assert "Preview health: answers 500" in status_comment(world)
    assert len(world.calls_for("repos/create-deployment")) == 1


async def test_a_healthy_preview_lets_auto_promotion_go(app, world, vote, preview):
    set_rules(world, "preview_health:\n  required: true\npromote:\n  auto: true\n")
    await open_proposal(app, url=preview.url)
    await app.deliver(*(vote(body, who) for body, who in PASS))
    assert len(world.calls_for("repos/create-deployment")) == 1


async def test_a_preview_inside_the_network_is_not_checked_and_blocks_when_required(app, world, vote):
    set_rules(world, "preview_health:\n  required: true\n")
    await open_proposal(app, url="http://10.20.30.40/pr-31/")
    await app.deliver(*(vote(body, who) for body, who in PASS), vote("/promote", "dan"))
    comment = status_comment(world)
    assert "not checked: 10.20.30.40 is not a public address" in comment
    assert world.calls_for("repos/create-deployment") == []


class NotHttp:
    """A preview URL whose port answers, but not in HTTP: another service, or a server
    whose headers are too large to read."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(self.answer)
        await writer.drain()
        writer.close()


@pytest.fixture(
    params=[b"SSH-2.0-OpenSSH_9.6\r\n", b"HTTP/1.1 200 OK\r\nX-Trace: " + b"a" * 10_000 + b"\r\n\r\n"],
    ids=["ssh", "huge-header"],
)
async def not_http(request) -> AsyncIterator[NotHttp]:
    site = NotHttp(request.param)
    server = await asyncio.start_server(site.handle, "127.0.0.1", 0)
    site.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/pr-31/"
    try:
        yield site
    finally:
        server.close()
        await server.wait_closed()


async def test_a_preview_that_does_not_answer_in_http_is_shown_in_words(app, world, not_http):
    await open_proposal(app, url=not_http.url)
    comment = status_comment(world)
    assert "Preview health: no answer: its answer was not valid HTTP." in comment
    assert "ClientResponseError" not in comment
    proposal_id = (await status(app))["proposal_id"]
    page = await (await app.client.get(f"/proposals/{proposal_id}")).text()
    assert "no answer: its answer was not valid HTTP." in page and "ClientResponseError" not in page


# --- The check itself ------------------------------------------------------------------------


async def test_redirects_are_followed_on_the_same_host_only(preview):
    around = await check_preview(preview.url, path="/around", allow_loopback=True)
    assert (around.status, around.error) == (200, None)
    away = await check_preview(preview.url, path="/away", allow_loopback=True)
    assert away.status == 302 and "another host" in away.error
    assert "/latest/meta-data/" not in preview.paths


async def test_a_preview_that_does_not_answer_in_time_is_reported(preview):
    result = await check_preview(preview.url, path="/slow", timeout=0.3, allow_loopback=True)
    assert result.status is None and result.error == "no answer within 0.3 s"


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://127.0.0.1:1/", "no answer: could not connect"),
        ("https://storefront-preview.invalid/", "no answer: its host name was not found"),  # RFC 2606: never resolves
    ],
)
async def test_a_preview_that_cannot_be_reached_is_reported_in_words(url, said):
    result = await check_preview(url, allow_loopback=True)
    assert (result.status, result.error) == (None, said)


@pytest.mark.parametrize(
    ("address", "allow_loopback", "refused"),
    [
        ("93.184.216.34", False, False),
        ("2606:2800:220:1:248:1893:25c8:1946", False, False),
        ("127.0.0.1", False, True),
        ("127.0.0.1", True, False),
        ("::1", False, True),
        ("10.0.0.8", True, True),
        ("172.16.5.4", False, True),
        ("192.168.1.1", False, True),
        ("169.254.169.254", False, True),  # cloud metadata
        ("fe80::1", False, True),
        ("::ffff:10.0.0.1", False, True),
        ("100.64.0.1", False, True),  # carrier-grade NAT
        ("0.0.0.0", False, True),
    ],
)
def test_which_addresses_the_check_may_reach(address, allow_loopback, refused):
    assert (address_refusal(address, allow_loopback=allow_loopback) is not None) is refused


def test_the_path_replaces_the_previews_own():
    assert health_url("https://shop-pr-31.example.dev/some/page?x=1", "/api/health") == "https://shop-pr-31.example.dev/api/health"
