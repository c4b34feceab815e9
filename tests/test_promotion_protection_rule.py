"""Answering a custom deployment protection rule, against the fake GitHub."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from pinkflow_bot.github.auth import AppAuth
from pinkflow_bot.github.client import GitHubApp
from pinkflow_bot.promotion import PromotionRefused, PromotionUnavailable, review_deployment_protection_rule
from tests.fake_github import FakeGitHub

APP_ID = 4242
REPO = "acme/web"
REVIEW = "actions/review-custom-gates-for-run"


@pytest.fixture
async def gh(fake_github: FakeGitHub, app_private_key: str) -> AsyncIterator:
    fake_github.add_installation(1, "acme")
    fake_github.add_repo(REPO, installation_id=1)
    async with aiohttp.ClientSession() as session:
        app = GitHubApp(
            session=session, api_url=fake_github.url, auth=AppAuth(app_id=str(APP_ID), private_key=app_private_key)
        )
        yield await app.installation_client(1)


async def test_an_approval_lets_the_waiting_job_deploy(fake_github: FakeGitHub, gh):
    await review_deployment_protection_rule(
        gh,
        repo_full_name=REPO,
        run_id=4242424,
        environment_name="production",
        approved=True,
        comment="The vote passed: 3 of 3 weighted approval.",
    )
    assert fake_github.protection_reviews == [
        {
            "repository": REPO,
            "run_id": 4242424,
            "environment_name": "production",
            "state": "approved",
            "comment": "The vote passed: 3 of 3 weighted approval.",
        }
    ]


async def test_a_rejection_says_rejected(fake_github: FakeGitHub, gh):
    await review_deployment_protection_rule(
        gh, repo_full_name=REPO, run_id=7, environment_name="Production", approved=False, comment="Vote rejected."
    )
    (review,) = fake_github.protection_reviews
    assert (review["state"], review["environment_name"], review["comment"]) == (
        "rejected",
        "Production",
        "Vote rejected.",
    )


async def test_a_long_comment_is_cut_to_a_size_github_takes(fake_github: FakeGitHub, gh):
    await review_deployment_protection_rule(
        gh, repo_full_name=REPO, run_id=7, environment_name="production", approved=True, comment="x" * 5000
    )
    (review,) = fake_github.protection_reviews
    assert 0 < len(review["comment"]) <= 1024


async def test_a_run_github_does_not_know_is_refused(fake_github: FakeGitHub, gh):
    fake_github.fail(REVIEW, status=404, body={"message": "Not Found"})
    with pytest.raises(PromotionRefused, match="404"):
        await review_deployment_protection_rule(
            gh, repo_full_name=REPO, run_id=1, environment_name="production", approved=True, comment="ok"
        )
    assert fake_github.protection_reviews == []


async def test_a_review_github_will_not_take_is_refused(fake_github: FakeGitHub, gh):
    fake_github.fail(REVIEW, status=422, body={"message": "No pending deployment protection rule for this run"})
    with pytest.raises(PromotionRefused, match="No pending deployment protection rule"):
        await review_deployment_protection_rule(
            gh, repo_full_name=REPO, run_id=1, environment_name="production", approved=False, comment="no"
        )


@pytest.mark.parametrize(("status", "headers"), [(429, {"Retry-After": "3"}), (500, {}), (503, {})])
async def test_rate_limits_and_outages_are_retried(fake_github: FakeGitHub, gh, status, headers):
    fake_github.fail(REVIEW, status=status, headers=headers)
    with pytest.raises(PromotionUnavailable):
        await review_deployment_protection_rule(
            gh, repo_full_name=REPO, run_id=1, environment_name="production", approved=True, comment="ok"
        )
    assert fake_github.protection_reviews == []
