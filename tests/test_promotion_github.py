"""The `github` provider against the fake GitHub: one production deployment per proposal."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from pinkflow_bot.github.auth import AppAuth
from pinkflow_bot.github.client import GitHubApp
from pinkflow_bot.promotion import (
    GitHubDeploymentProvider,
    PromotionRefused,
    PromotionRequest,
    PromotionUnavailable,
)
from tests.fake_github import FakeGitHub

APP_ID = 4242  # the App the `fake_github` fixture knows
REPO = "acme/web"
HEAD_SHA = "9fceb02d0ae598e95dc970b74767f19372d61af8"
CREATE = "repos/create-deployment"
LIST = "repos/list-deployments"

REQUEST = PromotionRequest(
    proposal_id=17,
    repo_full_name=REPO,
    pr_number=7,
    head_sha=HEAD_SHA,
    preview_url="https://web-git-feature-acme.vercel.app",
    preview_deployment_id=555,
    production_environment="production",
    requested_by="alice",
    forced=False,
)


@pytest.fixture
def world(fake_github: FakeGitHub) -> FakeGitHub:
    fake_github.add_installation(1, "acme")
    fake_github.add_repo(REPO, installation_id=1)
    fake_github.add_pull(REPO, 7, head_sha=HEAD_SHA, author="bob")
    return fake_github


@pytest.fixture
async def provider(world: FakeGitHub, app_private_key: str) -> AsyncIterator[GitHubDeploymentProvider]:
    async with aiohttp.ClientSession() as session:
        app = GitHubApp(
            session=session, api_url=world.url, auth=AppAuth(app_id=str(APP_ID), private_key=app_private_key)
        )
        yield GitHubDeploymentProvider(await app.installation_client(1))


def production_deployments(world: FakeGitHub) -> list[dict]:
    return [d for d in world.deployments_of(REPO) if d["environment"] == "production"]


async def test_one_production_deployment_of_the_voted_commit(world: FakeGitHub, provider):
    result = await provider.promote(REQUEST, attempt=1)

    (deployment,) = production_deployments(world)
    assert result.deployment_id == deployment["id"]
    assert deployment["sha"] == HEAD_SHA and deployment["ref"] == HEAD_SHA
    assert deployment["production_environment"] is True
    assert deployment["creator"]["login"] == world.bot_login
    (call,) = world.calls_for(CREATE)
    assert call.json == {
        "ref": HEAD_SHA,
        "environment": "production",
        "auto_merge": False,
        "required_contexts": [],
        "production_environment": True,
        "description": "Promoted by vote (pinkflow proposal 17)",
        "payload": {
            "pinkflow": {
                "proposal_id": 17,
                "pull_request": 7,
                "preview_url": "https://web-git-feature-acme.vercel.app",
                "requested_by": "alice",
                "forced": False,
            }
        },
    }
    assert world.calls_for(LIST) == []  # a first attempt has nothing to look for


async def test_a_forced_promotion_says_so_and_goes_to_the_configured_environment(world: FakeGitHub, provider):
    request = PromotionRequest(**{**REQUEST.__dict__, "forced": True, "production_environment": "Production – web"})
    await provider.promote(request, attempt=1)
    (deployment,) = world.deployments_of(REPO)
    assert deployment["environment"] == "Production – web"
    assert deployment["description"] == "Forced promotion by alice (pinkflow proposal 17)"
    assert deployment["payload"]["pinkflow"]["forced"] is True


async def test_a_lost_answer_then_a_retry_creates_no_second_deployment(world: FakeGitHub, provider):
    # GitHub creates the deployment, then the answer is lost (a 502 reaches the App).
    world.fail(CREATE, status=502, effect_applied=True)
    with pytest.raises(PromotionUnavailable):
        await provider.promote(REQUEST, attempt=1)
    (created,) = production_deployments(world)

    result = await provider.promote(REQUEST, attempt=2)

    assert result.deployment_id == created["id"]
    assert production_deployments(world) == [created]
    assert len(world.calls_for(CREATE)) == 1
    (lookup,) = world.calls_for(LIST)
    assert lookup.query["sha"] == HEAD_SHA and lookup.query["environment"] == "production"


async def test_a_retry_after_a_failure_that_created_nothing_creates_one(world: FakeGitHub, provider):
    # Another proposal's deployment of the same commit must not be mistaken for this one's.
    world.add_deployment(REPO, sha=HEAD_SHA, environment="production", payload={"pinkflow": {"proposal_id": 16}})
    world.fail(CREATE, status=502)
    with pytest.raises(PromotionUnavailable):
        await provider.promote(REQUEST, attempt=1)
    assert len(production_deployments(world)) == 1

    result = await provider.promote(REQUEST, attempt=2)

    assert len(production_deployments(world)) == 2
    assert world.deployments[result.deployment_id]["payload"]["pinkflow"]["proposal_id"] == 17


async def test_a_validation_failure_is_refused_with_githubs_reason(world: FakeGitHub, provider):
    world.fail(
        CREATE,
        status=422,
        body={
            "message": "Conflict: Commit status checks failed for main.",
            "documentation_url": "https://docs.github.com",
        },
    )
    with pytest.raises(PromotionRefused, match="422.*Commit status checks failed"):
        await provider.promote(REQUEST, attempt=1)
    assert production_deployments(world) == []


async def test_a_missing_permission_is_refused(world: FakeGitHub, provider):
    world.fail(CREATE, status=403, body={"message": "Resource not accessible by integration"})
    with pytest.raises(PromotionRefused, match="Resource not accessible by integration"):
        await provider.promote(REQUEST, attempt=1)


async def test_a_bad_gateway_is_worth_retrying(world: FakeGitHub, provider):
    world.fail(CREATE, status=502)
    with pytest.raises(PromotionUnavailable, match="502") as raised:
        await provider.promote(REQUEST, attempt=1)
    assert raised.value.retry_after is None
    assert production_deployments(world) == []


async def test_a_secondary_rate_limit_is_retried_after_the_wait_github_asks_for(world: FakeGitHub, provider):
    world.fail(CREATE, status=403, headers={"Retry-After": "30"})
    with pytest.raises(PromotionUnavailable) as raised:
        await provider.promote(REQUEST, attempt=1)
    assert raised.value.retry_after == 30


async def test_too_many_requests_is_retried(world: FakeGitHub, provider):
    world.fail(CREATE, status=429, headers={"Retry-After": "5"})
    with pytest.raises(PromotionUnavailable) as raised:
        await provider.promote(REQUEST, attempt=1)
    assert raised.value.retry_after == 5


async def test_the_lookup_failing_on_a_retry_creates_nothing(world: FakeGitHub, provider):
    world.fail(LIST, status=500)
    with pytest.raises(PromotionUnavailable):
        await provider.promote(REQUEST, attempt=2)
    assert world.calls_for(CREATE) == []
