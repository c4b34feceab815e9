"""Missed webhooks: `/status` and the check run's Re-run rebuild the proposal from GitHub."""

from __future__ import annotations

import pytest

from tests import payloads
from tests.harness import Clock, app_under_test

REPO = "octo-org/shop"
PR = 21
SHA = "1e5c4b7f0f7a3b0d1c2e3f405162738495a6b7c8"
NEW_SHA = "2f6d5c8e1a8b4c1e2d3f40516273849506b7c8d9"
MARKER = "<!-- pinkflow:status -->"


@pytest.fixture
def world(fake_github):
    fake_github.add_installation(1, "octo-org")
    fake_github.add_repo(REPO, installation_id=1)
    for login, role in [("ann", "admin"), ("max", "maintain"), ("dan", "write"), ("alice", "write")]:
        fake_github.add_user(login)
        fake_github.set_permission(REPO, login, role)
    fake_github.add_pull(REPO, PR, head_sha=SHA, author="alice")
    return fake_github


@pytest.fixture
async def app(tmp_path, world, app_private_key, database_url):
    # The proposal opens "now"; comments the fake GitHub stamps with the real time come after it.
    clock = Clock(start=None)
    clock.now = clock.now.replace(year=2020)
    async with app_under_test(
        tmp_path, github_url=world.url, private_key=app_private_key, database_url=database_url, clock=clock
    ) as app:
        yield app


def delivered(world, body: str, author: str):
    return payloads.posted_comment(world, body, repo=REPO, number=PR, author=author)


def never_delivered(world, body: str, author: str) -> dict:
    """A comment GitHub shows, whose webhook never reached the App."""
    return world.add_comment(REPO, PR, author=author, body=body)


async def votes(app) -> dict:
    response = await app.client.get("/api/deployments/status", params={"deploymentId": "900"})
    assert response.status == 200
    return (await response.json())["deployment"]["votes"]


def newest_run(world, sha: str) -> dict:
    return max(world.check_runs_for(REPO, sha, name="Pinkflow governance"), key=lambda run: run["id"])


async def test_status_counts_votes_whose_webhooks_were_lost(app, world):
    await app.deliver(payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=900))
    lost = never_delivered(world, "/approve looks right", "ann")
    await app.deliver(delivered(world, "/approve", "max"))
    assert (await votes(app))["total"] == 1
    await app.deliver(delivered(world, "/status", "dan"))
    tally = await votes(app)
    assert (tally["total"], tally["approveWeight"]) == (2, 5)
    # The recovered vote shows in the status comment, with no reaction on its comment.
    [comment] = [c for c in world.comments_on(REPO, PR) if MARKER in c["body"]]
    assert "| @ann " in comment["body"] and "looks right" in comment["body"]
    assert world.reaction_contents(lost["id"]) == []
    assert world.calls_for("reactions/create-for-issue-comment") == []
    # A second /status changes nothing: the recovered vote is not counted twice.
    await app.deliver(delivered(world, "/status", "dan"))
    assert (await votes(app))["total"] == 2
    [comment] = [c for c in world.comments_on(REPO, PR) if MARKER in c["body"]]
    assert comment["body"].count("| @ann ") == 1


async def test_a_recovered_older_vote_does_not_override_a_newer_one(app, world):
    await app.deliver(payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=900))
    never_delivered(world, "/approve", "ann")
    await app.deliver(delivered(world, "/reject changed my mind", "ann"), delivered(world, "/status", "dan"))
    tally = await votes(app)
    assert (tally["approvals"], tally["rejections"]) == (0, 1)


async def test_status_opens_a_proposal_whose_preview_success_was_missed(app, world):
    deployment = world.add_deployment(REPO, sha=SHA, environment="Preview – shop")
    world.add_deployment_status(deployment["id"], state="success", environment_url="https://shop-pr-21.example.dev")
    await app.deliver(delivered(world, "/status", "dan"))
    assert newest_run(world, SHA)["status"] == "in_progress"
    [comment] = [c for c in world.comments_on(REPO, PR) if MARKER in c["body"]]
    assert "https://shop-pr-21.example.dev" in comment["body"]


async def test_rerun_notices_a_push_whose_webhook_was_lost(app, world):
    await app.deliver(payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=900))
    run = newest_run(world, SHA)
    world.push(REPO, PR, head_sha=NEW_SHA)
    rerun = payloads.example("check_run/rerequested.json")
    rerun["repository"]["full_name"] = REPO
    rerun["installation"] = {"id": 1, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ=="}
    rerun["check_run"].update(id=run["id"], name="Pinkflow governance", head_sha=SHA, external_id=run["external_id"])
    await app.deliver(payloads.delivery("check_run", rerun))
    old = newest_run(world, SHA)
    assert (old["status"], old["conclusion"]) == ("completed", "neutral")
    assert NEW_SHA in old["output"]["summary"] + old["output"]["title"] + old["output"].get("text", "")


async def test_status_does_not_read_a_vote_from_a_comment_edited_after_it_was_written(app, world):
    """GitHub's list does not say who edited a comment: an admin turning someone's words
    into a command must not cast a vote in their name."""
    await app.deliver(payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=900))
    words = never_delivered(world, "looks fine to me", "dan")
    words.update(body="/approve", updated_at="2099-01-01T00:00:00Z")  # edited, by someone
    await app.deliver(delivered(world, "/status", "max"))
    assert (await votes(app))["total"] == 0


async def test_a_recovered_vote_weighs_what_it_would_have_by_webhook_team_weights_included(app, world):
    world.set_file(REPO, ".github/pinkflow.yml", 'voters:\n  teams: {"octo-org/release": 5}\n')
    world.add_team_member("octo-org", "release", "dan")
    await app.deliver(payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=900))
    never_delivered(world, "/approve", "dan")
    await app.deliver(delivered(world, "/status", "max"))
    assert (await votes(app))["approveWeight"] == 5  # write (1), release team (5): the higher


async def test_a_rebuild_that_read_github_before_a_push_was_heard_leaves_the_newer_head_alone(app, world):
    from pinkflow_bot.services import PullRequestFacts

    await app.deliver(payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=900))
    read_at = app.runtime.clock()  # the rebuild reads the pull request: head SHA
    app.runtime.clock.advance(seconds=1)
    world.push(REPO, PR, head_sha=NEW_SHA)
    await app.deliver(
        payloads.pull_request("synchronize", repo=REPO, number=PR, head_sha=NEW_SHA, author="alice"),
        payloads.preview_ready(repo=REPO, sha=NEW_SHA, deployment_id=901),
    )
    await app.runtime.service.apply_rebuild(
        installation_id=1, repo_full_name=REPO, pull=PullRequestFacts(number=PR, head_sha=SHA, author="alice"),
        pull_state="open", comments=(), read_at=read_at,
    )
    response = await app.client.get("/api/deployments/status", params={"deploymentId": "901"})
    assert (await response.json())["deployment"]["status"] == "voting"
