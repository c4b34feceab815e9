"""Text the App stores and shows that comes from outside it: what a promotion webhook's
receiver, Vercel or GitHub answered, the names in a deployment, the keys of a rules file.
A NUL (PostgreSQL's text cannot hold it) or a lone surrogate (JSON's "\\ud800": no UTF-8
has it, so neither database takes it) never stops a delivery or an effect: it is shown as
U+FFFD, as GitHub shows a NUL in a comment."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from pinkflow_bot.storage.models import Effect
from tests import payloads
from tests.fake_vercel import FakeVercel
from tests.flow import (  # noqa: F401  (fixtures)
    PROMOTION_SECRET as SECRET,
    receiver_fixture,
    PR,
    REPO,
    SHA,
    app_fixture,
    audit,
    check_run,
    clock_fixture,
    make_app_fixture,
    open_proposal,
    proposals,
    set_rules,
    status,
    status_comment,
    vote_fixture,
    world_fixture,
)

PASS = ("/approve", "ann"), ("/approve", "max"), ("/approve", "dan")


async def passed(app, vote, **preview) -> None:
    await open_proposal(app, **preview)
    await app.deliver(*(vote(body, who) for body, who in PASS))


async def retry_due(app, clock) -> None:
    clock.advance(minutes=10)
    await app.drain()


async def shown_everywhere(app, world) -> dict[str, str]:
    """The status comment, the check run, the proposal's page and its JSON, as people see them."""
    run = check_run(world)
    proposal_id = (await status(app))["proposal_id"]
    page = await app.client.get(f"/proposals/{proposal_id}")
    api = await app.client.get(f"/api/proposals/{proposal_id}")
    assert (page.status, api.status) == (200, 200)
    return {
        "comment": status_comment(world).replace("\\", ""),  # as GitHub renders the escaped text
        "title": run["output"]["title"],
        "check run": run["output"]["summary"].replace("\\", ""),
        "page": await page.text(),
        "api": (await api.json())["proposal"]["promotion"]["error"] or "",
    }


async def effects_stuck(app) -> list[Effect]:
    """Effects whose outcome could not be recorded: still held, or given up without a word."""
    async with app.runtime.sessions() as session:
        return list(await session.scalars(select(Effect).where(Effect.status == "processing")))


# --- a promotion webhook's receiver ----------------------------------------------------------




async def webhook_app(make_app, world, receiver):
    _hook, url = receiver
    set_rules(world, f"promote:\n  provider: webhook\n  webhook_url: {url}\n")
    return await make_app(PROMOTION_WEBHOOK_SECRET=SECRET)


async def test_a_receiver_failing_with_a_nul_in_its_answer_is_shown_and_tried_again(make_app, world, vote, clock, receiver):
    hook, _url = receiver
    app = await webhook_app(make_app, world, receiver)
    await passed(app, vote)
    hook.answers = [(500, b"upstream\x00 timed out")]
    await app.deliver(vote("/promote", "dan"))

    assert await effects_stuck(app) == []
    shown = await shown_everywhere(app, world)
    said = "the promotion webhook answered 500: upstream\ufffd timed out"
    assert f"The last try failed: {said}. Trying again" in shown["comment"]
    assert said in shown["check run"] and said in shown["page"] and said in shown["api"]

    await retry_due(app, clock)
    assert len(hook.received) == 2
    assert (await status(app))["status"] == "promoted"


async def test_a_receiver_refusing_with_a_nul_in_its_answer_is_shown_as_refused(make_app, world, vote, receiver):
    hook, _url = receiver
    app = await webhook_app(make_app, world, receiver)
    await passed(app, vote)
    hook.answers = [(403, b"\x00\x00denied for\x00production")]
    await app.deliver(vote("/promote", "dan"))

    assert await effects_stuck(app) == []
    said = "the promotion webhook refused the promotion (403): \ufffd\ufffddenied for\ufffdproduction"
    shown = await shown_everywhere(app, world)
    assert f"failed. Error: {said}" in shown["comment"]
    assert said in shown["page"] and shown["api"] == said
    assert shown["title"] == "Passed; the promotion failed, try again with Promote"
    [failure] = await audit(app, "promotion failed")
    assert failure.detail == said


# --- Vercel and GitHub -------------------------------------------------------------------------

VERCEL_TOKEN = "vercel-token-for-the-flow"
VERCEL_PREVIEW = "shop-git-feature-octo.vercel.app"


@pytest.fixture
async def vercel() -> AsyncIterator[FakeVercel]:
    fake = FakeVercel(token=VERCEL_TOKEN, team_id="team_octo")
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


async def test_vercel_answering_with_a_lone_surrogate_and_a_nul_is_shown_and_tried_again(make_app, world, vote, vercel, clock):
    set_rules(world, "promote:\n  provider: vercel\n")
    project = vercel.add_project("shop")
    vercel.add_deployment(project, url=VERCEL_PREVIEW, meta={"githubCommitSha": SHA})
    app = await make_app(VERCEL_TOKEN=VERCEL_TOKEN, VERCEL_TEAM_ID="team_octo", VERCEL_API_URL=vercel.url)
    await passed(app, vote, url=f"https://{VERCEL_PREVIEW}")
    # Sent as JSON escapes, "\ud800" and "\u0000", which Python's JSON reader takes as they are.
    vercel.fail("create-deployment", status=503, body={"error": {"code": "internal", "message": "builder \ud800 down\x00"}})
    await app.deliver(vote("/promote", "dan"))

    assert await effects_stuck(app) == []
    shown = await shown_everywhere(app, world)
    said = "Vercel answered 503 when asked to create the production deployment: builder \ufffd down\ufffd"
    assert f"The last try failed: {said}. Trying again" in shown["comment"]
    assert said in shown["page"] and said in shown["api"]

    await retry_due(app, clock)
    assert (await status(app))["status"] == "promoted"
    assert len(vercel.production_deployments(project)) == 1


async def test_github_refusing_the_deployment_in_words_with_a_nul_is_shown_as_refused(app, world, vote):
    await passed(app, vote)
    world.fail(
        "repos/create-deployment", status=422,
        body={"message": "Conflict merging main into\x00 \ud83d", "documentation_url": "https://docs.github.com/rest"},
    )
    await app.deliver(vote("/promote", "dan"))

    assert await effects_stuck(app) == []
    shown = await shown_everywhere(app, world)
    said = "GitHub refused to create the production deployment (422): Conflict merging main into\ufffd \ufffd"
    assert f"failed. Error: {said}" in shown["comment"]
    assert shown["api"] == said
    for where, text in shown.items():
        assert "\x00" not in text and "\ud83d" not in text, where


# --- names in a deployment, keys of a rules file ---------------------------------------------


async def test_a_preview_whose_environment_and_url_hold_a_nul_opens_its_vote(app, world):
    await app.deliver(
        payloads.preview_ready(
            repo=REPO, sha=SHA, deployment_id=501, environment="Preview\x00 – shop", url="https://preview-abc.example.dev/\x00"
        )
    )
    [proposal] = await proposals(app)
    assert (proposal.state, proposal.environment) == ("voting", "Preview\ufffd – shop")
    assert proposal.preview_url == "https://preview-abc.example.dev/\ufffd"
    assert "Voting:" in check_run(world)["output"]["title"]
    assert (await status(app))["deploy_url"] == "https://preview-abc.example.dev/\ufffd"


async def test_a_rules_file_whose_keys_hold_a_lone_surrogate_and_a_nul_shows_its_problems(app, world):
    # YAML's double-quoted escapes reach the App as those characters.
    set_rules(world, 'voters:\n  users: {"ann\\ud800": 2}\n"thresh\\0old": 60\n')
    await open_proposal(app)

    [proposal] = await proposals(app)
    assert proposal.state == "voting"
    summary = check_run(world)["output"]["summary"].replace("\\", "")
    assert "line 2, voters.users.ann\ufffd: is not a GitHub login" in summary
    assert 'line 3, thresh\ufffdold: unknown key; did you mean "threshold"?' in summary
    page = await app.client.get(f"/proposals/{proposal.id}")
    assert page.status == 200 and "thresh\ufffdold" in await page.text()
    [invalid] = await audit(app, "invalid configuration")
    assert "ann\ufffd" in invalid.detail and "thresh\ufffdold" in invalid.detail
