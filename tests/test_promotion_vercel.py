"""The `vercel` provider against a fake Vercel API: find the preview, promote it once."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

from pinkflow_bot.promotion import PromotionRefused, PromotionRequest, PromotionUnavailable, VercelProvider
from tests.fake_vercel import FakeVercel

TOKEN = "vercel-token-that-must-stay-secret"
TEAM = "team_acme"
HEAD_SHA = "9fceb02d0ae598e95dc970b74767f19372d61af8"
PREVIEW_HOST = "web-git-feature-acme.vercel.app"


def request_for(preview_url: str | None = f"https://{PREVIEW_HOST}", *, proposal_id: int = 17) -> PromotionRequest:
    return PromotionRequest(
        proposal_id=proposal_id,
        repo_full_name="acme/web",
        pr_number=7,
        head_sha=HEAD_SHA,
        preview_url=preview_url,
        preview_deployment_id=555,
        production_environment="Production – web",
        requested_by="alice",
        forced=False,
    )


@pytest.fixture
async def vercel() -> AsyncIterator[FakeVercel]:
    fake = FakeVercel(token=TOKEN, team_id=TEAM)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
def project(vercel: FakeVercel) -> dict:
    return vercel.add_project("web")


@pytest.fixture
def preview(vercel: FakeVercel, project: dict) -> dict:
    return vercel.add_deployment(project, url=PREVIEW_HOST, meta={"githubCommitSha": HEAD_SHA})


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def provider_for(session, vercel: FakeVercel, *, token: str = TOKEN, team_id: str | None = TEAM) -> VercelProvider:
    return VercelProvider(session, token=token, team_id=team_id, api_url=vercel.url)


async def test_a_preview_is_rebuilt_for_production_once(session, vercel: FakeVercel, project, preview):
    result = await provider_for(session, vercel).promote(request_for(), attempt=1)

    (production,) = vercel.production_deployments(project)
    assert result.reference == production["id"]
    assert result.url == f"https://{production['url']}"
    assert result.deployment_id is None
    # Found by the preview's hostname, then rebuilt from it, in the team's scope.
    (lookup,) = vercel.calls_to("get-deployment")
    assert lookup.path == f"/v13/deployments/{PREVIEW_HOST}"
    (create,) = vercel.calls_to("create-deployment")
    assert create.json["deploymentId"] == preview["id"]
    assert create.json["name"] == "web"
    assert create.json["project"] == project["id"]
    assert create.json["target"] == "production"
    assert all(call.query.get("teamId") == TEAM for call in vercel.calls)
    # The production deployment says where it came from, which a retry relies on.
    assert production["meta"]["pinkflowProposalId"] == "17"
    assert production["meta"]["pinkflowRepository"] == "acme/web"
    assert production["meta"]["githubCommitSha"] == HEAD_SHA
    assert vercel.calls_to("list-deployments") == [] and vercel.calls_to("promote") == []


async def test_a_lost_answer_then_a_retry_creates_no_second_production_deployment(
    session, vercel: FakeVercel, project, preview
):
    # Another proposal's production deployment must not be taken for this one's.
    vercel.add_deployment(
        project, url="web-older-acme.vercel.app", target="production", meta={"pinkflowProposalId": "16"}
    )
    vercel.fail("create-deployment", status=504, effect_applied=True)
    with pytest.raises(PromotionUnavailable, match="504"):
        await provider_for(session, vercel).promote(request_for(), attempt=1)
    created = [d for d in vercel.production_deployments(project) if d["meta"].get("pinkflowProposalId") == "17"]
    assert len(created) == 1

    result = await provider_for(session, vercel).promote(request_for(), attempt=2)

    assert result.reference == created[0]["id"]
    assert result.url == f"https://{created[0]['url']}"
    assert len(vercel.calls_to("create-deployment")) == 1
    (listing,) = vercel.calls_to("list-deployments")
    assert listing.query["projectId"] == project["id"] and listing.query["target"] == "production"
    assert len(vercel.production_deployments(project)) == 2


async def test_a_retry_after_a_failure_that_created_nothing_creates_one(session, vercel: FakeVercel, project, preview):
    vercel.fail("create-deployment", status=500)
    with pytest.raises(PromotionUnavailable):
        await provider_for(session, vercel).promote(request_for(), attempt=1)
    assert vercel.production_deployments(project) == []

    await provider_for(session, vercel).promote(request_for(), attempt=2)

    assert len(vercel.production_deployments(project)) == 1


async def test_a_staged_production_build_is_promoted_without_a_rebuild(session, vercel: FakeVercel, project):
    staged = vercel.add_deployment(
        project, url="web-staged-acme.vercel.app", target="production", ready_substate="STAGED"
    )
    result = await provider_for(session, vercel).promote(request_for("https://web-staged-acme.vercel.app"), attempt=1)

    assert result.reference == staged["id"]
    assert result.url == "https://web-staged-acme.vercel.app"
    (promote,) = vercel.calls_to("promote")
    assert promote.path == f"/v10/projects/{project['id']}/promote/{staged['id']}"
    assert vercel.calls_to("create-deployment") == []
    assert staged["readySubstate"] == "PROMOTED"
    assert project["targets"]["production"] == staged["id"]


async def test_a_staged_promotion_whose_answer_was_lost_is_not_sent_again(session, vercel: FakeVercel, project):
    staged = vercel.add_deployment(
        project, url="web-staged-acme.vercel.app", target="production", ready_substate="STAGED"
    )
    vercel.fail("promote", status=502, effect_applied=True)
    with pytest.raises(PromotionUnavailable):
        await provider_for(session, vercel).promote(request_for("https://web-staged-acme.vercel.app"), attempt=1)

    result = await provider_for(session, vercel).promote(request_for("https://web-staged-acme.vercel.app"), attempt=2)

    assert result.reference == staged["id"]
    assert len(vercel.calls_to("promote")) == 1


async def test_a_refused_token_is_named_and_never_shown(session, vercel: FakeVercel, project, preview, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PromotionRefused, match="VERCEL_TOKEN was refused") as raised:
        await provider_for(session, vercel, token="expired-token-value").promote(request_for(), attempt=1)
    assert "expired-token-value" not in str(raised.value)
    assert vercel.production_deployments(project) == []
    assert "expired-token-value" not in caplog.text
    assert TOKEN not in repr(provider_for(session, vercel))


async def test_the_token_is_not_logged_on_success(session, vercel: FakeVercel, project, preview, caplog):
    caplog.set_level(logging.DEBUG)
    await provider_for(session, vercel).promote(request_for(), attempt=1)
    assert TOKEN not in caplog.text


async def test_no_token_is_refused_without_calling_vercel(session, vercel: FakeVercel, preview):
    with pytest.raises(PromotionRefused, match="VERCEL_TOKEN is not set"):
        await provider_for(session, vercel, token="").promote(request_for(), attempt=1)
    assert vercel.calls == []


async def test_the_wrong_team_is_named(session, vercel: FakeVercel, preview):
    with pytest.raises(PromotionRefused, match="VERCEL_TEAM_ID"):
        await provider_for(session, vercel, team_id="team_other").promote(request_for(), attempt=1)


async def test_a_missing_team_is_named(session, vercel: FakeVercel, preview):
    with pytest.raises(PromotionRefused, match="404.*set VERCEL_TEAM_ID"):
        await provider_for(session, vercel, team_id=None).promote(request_for(), attempt=1)


async def test_a_preview_url_vercel_does_not_know_is_refused(session, vercel: FakeVercel, project, preview):
    with pytest.raises(PromotionRefused, match="web-unknown-acme.vercel.app.*404"):
        await provider_for(session, vercel).promote(request_for("https://web-unknown-acme.vercel.app/"), attempt=1)
    assert vercel.production_deployments(project) == []


async def test_a_proposal_without_a_preview_url_is_refused(session, vercel: FakeVercel):
    with pytest.raises(PromotionRefused, match="no preview URL"):
        await provider_for(session, vercel).promote(request_for(None), attempt=1)
    assert vercel.calls == []


@pytest.mark.parametrize(("status", "headers", "retry_after"), [(500, {}, None), (429, {"Retry-After": "12"}, 12.0)])
async def test_outages_and_rate_limits_are_unavailable(session, vercel, project, preview, status, headers, retry_after):
    vercel.fail("get-deployment", status=status, headers=headers)
    with pytest.raises(PromotionUnavailable, match=str(status)) as raised:
        await provider_for(session, vercel).promote(request_for(), attempt=1)
    assert raised.value.retry_after == retry_after
    assert vercel.production_deployments(project) == []


async def test_a_preview_still_building_is_tried_again_later(session, vercel: FakeVercel, project):
    vercel.add_deployment(project, url=PREVIEW_HOST, ready_state="BUILDING")
    with pytest.raises(PromotionUnavailable, match="not ready"):
        await provider_for(session, vercel).promote(request_for(), attempt=1)
    assert vercel.calls_to("create-deployment") == []


async def test_a_failed_preview_is_not_promoted(session, vercel: FakeVercel, project):
    vercel.add_deployment(project, url=PREVIEW_HOST, ready_state="ERROR")
    with pytest.raises(PromotionRefused, match="did not succeed"):
        await provider_for(session, vercel).promote(request_for(), attempt=1)
    assert vercel.calls_to("create-deployment") == []


@pytest.mark.parametrize("target", [None, "production"])
async def test_a_preview_url_that_now_serves_another_commit_is_not_promoted(session, vercel: FakeVercel, project, target):
    # A branch alias moved on to a newer push: that build was never voted on.
    newer = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    vercel.add_deployment(project, url=PREVIEW_HOST, target=target, meta={"githubCommitSha": newer})
    with pytest.raises(PromotionRefused, match=f"{PREVIEW_HOST} is of commit e69de29, not 9fceb02, which was voted on"):
        await provider_for(session, vercel).promote(request_for(), attempt=1)
    assert vercel.calls_to("create-deployment") == [] and vercel.calls_to("promote") == []


async def test_vercel_refusing_the_rebuild_says_why(session, vercel: FakeVercel, project, preview):
    vercel.fail(
        "create-deployment",
        status=400,
        body={"error": {"code": "bad_request", "message": "Project is paused"}},
    )
    with pytest.raises(PromotionRefused, match="400.*Project is paused"):
        await provider_for(session, vercel).promote(request_for(), attempt=1)


async def test_vercel_not_answering_in_time_is_unavailable(session, vercel: FakeVercel, preview):
    provider = VercelProvider(session, token=TOKEN, team_id=TEAM, api_url="http://127.0.0.1:9", timeout=1.0)
    with pytest.raises(PromotionUnavailable, match=r"^Vercel did not answer when asked to .* \(could not connect\)$"):
        await provider.promote(request_for(), attempt=1)
