"""A proposal's whole life: superseded by a push, cancelled by a close, closed by its deadline,
and its production deployment followed to the end; the audit trail of it in the check run."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests import payloads
from tests.flow import (  # noqa: F401  (fixtures)
    NEW_SHA,
    PR,
    REPO,
    SHA,
    app_fixture,
    check_run,
    clock_fixture,
    make_app_fixture,
    open_proposal,
    status,
    status_comment,
    vote_fixture,
    world_fixture,
)

PASS = ("/approve", "ann"), ("/approve", "max"), ("/approve", "dan")


async def test_a_push_supersedes_the_proposal_naming_the_new_commit(app, world, vote):
    await open_proposal(app)
    world.push(REPO, PR, head_sha=NEW_SHA)
    await app.deliver(payloads.pull_request("synchronize", repo=REPO, number=PR, head_sha=NEW_SHA, author="alice"))
    run = check_run(world)
    assert (run["status"], run["conclusion"]) == ("completed", "neutral")
    assert run["output"]["title"] == f"Superseded by {NEW_SHA[:7]}"
    assert NEW_SHA in run["output"]["summary"]
    # A vote on the old commit now says why it does nothing.
    late = vote("/approve", "ann")
    await app.deliver(late)
    assert world.reaction_contents(late.payload["comment"]["id"]) == ["confused"]
    assert f"superseded by {NEW_SHA[:7]}" in status_comment(world)


async def test_a_closed_pull_request_cancels_and_the_deadline_closes(app, world, vote, clock):
    await open_proposal(app)
    world.close_pull(REPO, PR)
    await app.deliver(payloads.pull_request("closed", repo=REPO, number=PR, head_sha=SHA, author="alice", state="closed"))
    assert check_run(world)["conclusion"] == "cancelled"
    assert (await status(app))["status"] == "cancelled"
    # A cancelled proposal is not closed again by its deadline.
    clock.advance(hours=25)
    assert await app.runtime.service.close_due_proposals() == 0


async def test_a_reopened_pull_request_opens_its_vote_again_and_keeps_its_votes(app, world, vote, clock):
    await open_proposal(app)
    await app.deliver(vote("/approve", "ann"))
    world.close_pull(REPO, PR)
    await app.deliver(payloads.pull_request("closed", repo=REPO, number=PR, head_sha=SHA, author="alice", state="closed"))
    first = await status(app)
    assert first["status"] == "cancelled"

    clock.advance(hours=30)  # past the first voting period
    world.reopen_pull(REPO, PR)
    await app.deliver(payloads.pull_request("reopened", repo=REPO, number=PR, head_sha=SHA, author="alice"))
    reopened = await status(app)
    assert reopened["status"] == "voting"
    opened, closes = (datetime.fromisoformat(reopened[key]) for key in ("created_at", "closes_at"))
    assert opened - datetime.fromisoformat(first["created_at"]) == timedelta(hours=30)
    assert closes - opened == timedelta(hours=24)  # a full voting period from the reopening
    assert reopened["votes"]["approvals"] == 1  # ann's vote on this very commit
    await app.deliver(vote("/approve", "max"), vote("/approve", "dan"))
    assert (await status(app))["status"] == "passed"
    run = check_run(world)
    assert (run["status"], run["conclusion"]) == ("completed", "success")


async def test_a_push_back_to_an_earlier_commit_opens_that_commits_vote_again(app, world, vote):
    await open_proposal(app)
    world.push(REPO, PR, head_sha=NEW_SHA)
    await app.deliver(payloads.pull_request("synchronize", repo=REPO, number=PR, head_sha=NEW_SHA, author="alice"))
    await open_proposal(app, sha=NEW_SHA, deployment_id=502)
    world.push(REPO, PR, head_sha=SHA)  # force-pushed back
    await app.deliver(payloads.pull_request("synchronize", repo=REPO, number=PR, head_sha=SHA, author="alice"))

    assert (await status(app, deployment_id=502))["status"] == "superseded"
    assert (await status(app))["status"] == "voting"
    await app.deliver(*(vote(body, who) for body, who in PASS))
    assert (await status(app))["status"] == "passed"
    assert check_run(world, SHA)["conclusion"] == "success"


async def production(app, *, deployment_id: int, state: str, url: str = "", environment: str = "production"):
    await app.deliver(
        payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=deployment_id, environment=environment, state=state, url=url)
    )


async def test_the_production_deployment_is_followed_in_the_comment_and_check_run(app, world, vote):
    await open_proposal(app)
    await app.deliver(*(vote(body, who) for body, who in PASS), vote("/promote", "dan"))
    [deployment] = world.deployments_of(REPO)
    assert "deployment created" in status_comment(world)
    await production(app, deployment_id=deployment["id"], state="in_progress")
    assert "deploying" in status_comment(world)
    assert (await status(app))["promotion"]["state"] == "in_progress"
    await production(app, deployment_id=deployment["id"], state="success", url="https://shop.example.com")
    comment = status_comment(world)
    assert "deployed" in comment and "<https://shop.example.com>" in comment
    assert "https://shop.example.com" in check_run(world)["output"]["summary"]
    # A late `in_progress` and GitHub's `inactive` (a later deployment replaced it) change nothing.
    await production(app, deployment_id=deployment["id"], state="in_progress")
    await production(app, deployment_id=deployment["id"], state="inactive")
    assert (await status(app))["promotion"]["state"] == "success"


async def test_a_failed_production_deployment_is_shown(app, world, vote):
    await open_proposal(app)
    await app.deliver(*(vote(body, who) for body, who in PASS), vote("/promote", "dan"))
    [deployment] = world.deployments_of(REPO)
    await production(app, deployment_id=deployment["id"], state="failure")
    assert "the deployment failed" in status_comment(world)
    assert (await status(app))["promotion"]["state"] == "failure"


async def test_a_production_deployment_of_no_promotion_is_not_followed(app, world, vote):
    await open_proposal(app)
    await app.deliver(*(vote(body, who) for body, who in PASS))
    await production(app, deployment_id=4444, state="success", url="https://elsewhere.example.com")
    assert "elsewhere" not in status_comment(world)
    assert (await status(app))["promotion"] is None


async def test_the_check_run_text_holds_the_audit_trail_newest_first(app, world, vote):
    await open_proposal(app)
    comment = world.add_comment(REPO, PR, author="dan", body="/approve")
    await app.deliver(
        payloads.comment(comment["body"], repo=REPO, number=PR, author="dan", comment_id=comment["id"]),
        vote("/hold not before Monday", "max"),
        payloads.comment_edited("/reject", before="/approve", repo=REPO, number=PR, author="dan", comment_id=comment["id"], editor="ann"),
        vote("/reject too risky", "ann"),
    )
    text = check_run(world)["output"]["text"]
    trail = text.split("Audit trail", 1)[1]
    lines = [line for line in trail.splitlines() if line.startswith("- ")]
    actions = [line.split(" · ")[2].split(":")[0] for line in lines]
    assert actions == ["vote", "tampering", "hold", "vote", "opened"]
    assert " · ann · vote: reject (weight 3): too risky" in lines[0]
    assert " · ann · tampering: edited comment" in lines[1]
    assert lines[-1].startswith("- 2026-11-02 09:00:00 UTC · pinkflow · opened")


async def test_a_push_right_after_opening_leaves_one_status_comment(make_app, world):
    """The first comment of two proposals of one pull request, written at the same time by
    the worker's concurrent loops, is posted once: the status comment is the pull request's."""
    import asyncio
    import time

    from tests.flow import MARKER, set_rules

    set_rules(world, "open_on: pull_request\n")
    world.latency = 0.2  # GitHub answering slowly, so both proposals' syncs overlap
    app = await make_app()
    app.runtime.start_worker()
    await app.send(payloads.pull_request("opened", repo=REPO, number=PR, head_sha=SHA, author="alice"))
    world.push(REPO, PR, head_sha=NEW_SHA)
    await app.send(payloads.pull_request("synchronize", repo=REPO, number=PR, head_sha=NEW_SHA, author="alice"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        if [c for c in world.comments_on(REPO, PR) if MARKER in c["body"] and NEW_SHA[:7] in c["body"]]:
            break
    await asyncio.sleep(1.5)  # long enough for a second post, seven slow answers, to land
    status_comments = [c for c in world.comments_on(REPO, PR) if MARKER in c["body"]]
    assert len(status_comments) == 1, [c["body"][:120] for c in status_comments]
    assert NEW_SHA[:7] in status_comments[0]["body"]


async def test_a_late_event_for_a_commit_the_pull_request_has_left_changes_nothing(app, world, vote):
    """GitHub does not deliver in order: the pull request is read as it is now."""
    await open_proposal(app)
    world.push(REPO, PR, head_sha=NEW_SHA)
    await app.deliver(payloads.pull_request("synchronize", repo=REPO, number=PR, head_sha=NEW_SHA, author="alice"))
    await open_proposal(app, sha=NEW_SHA, deployment_id=502)
    late = payloads.pull_request("synchronize", repo=REPO, number=PR, head_sha=SHA, author="alice")
    await app.deliver(late)
    assert (await status(app, deployment_id=502))["status"] == "voting"
    assert (await status(app))["status"] == "superseded"


def _written(delivery, at: datetime):
    """The comment as GitHub tells of it: written at `at`."""
    delivery.payload["comment"]["created_at"] = delivery.payload["comment"]["updated_at"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return delivery


async def test_a_vote_commented_just_before_the_end_counts_though_taken_up_after_it(app, world, vote, clock):
    await open_proposal(app)
    await app.deliver(vote("/approve", "ann"), vote("/approve", "max"))
    clock.advance(hours=24, seconds=-2)
    # dan votes two seconds before the end; GitHub delivers it at once, the worker is behind.
    response = await app.send(_written(vote("/approve", "dan"), clock.now))
    assert response.status == 202
    clock.advance(seconds=5)
    # The deadline has passed, but a vote made in time still waits: the sweeper does not close yet.
    await app.runtime.service.close_due_proposals()
    assert (await status(app))["status"] == "voting"
    await app.drain()
    decided = await status(app)
    assert (decided["status"], decided["votes"]["approvals"]) == ("passed", 3)
    assert check_run(world)["conclusion"] == "success"


async def test_a_vote_commented_before_the_end_and_delivered_after_it_counts(app, world, vote, clock):
    await open_proposal(app)
    await app.deliver(vote("/approve", "ann"), vote("/approve", "max"))
    clock.advance(hours=24, seconds=-1)
    in_time = _written(vote("/approve", "dan"), clock.now)
    clock.advance(seconds=3)  # GitHub's delivery reaches the App after the end
    await app.deliver(in_time)
    assert world.reaction_contents(in_time.payload["comment"]["id"]) == []
    decided = await status(app)
    assert (decided["status"], decided["votes"]["approvals"]) == ("passed", 3)


async def test_a_vote_commented_after_the_end_is_not_counted(app, world, vote, clock):
    await open_proposal(app)
    await app.deliver(vote("/approve", "ann"), vote("/approve", "max"))
    clock.advance(hours=24, seconds=1)
    late = _written(vote("/approve", "dan"), clock.now)
    await app.deliver(late)
    assert world.reaction_contents(late.payload["comment"]["id"]) == ["confused"]
    decided = await status(app)
    assert (decided["status"], decided["votes"]["approvals"]) == ("expired", 2)


async def test_an_edit_made_before_the_end_and_taken_up_after_it_changes_the_vote(app, world, vote, clock):
    await open_proposal(app)
    first = vote("/reject", "dan")
    await app.deliver(vote("/approve", "ann"), vote("/approve", "max"), first)
    clock.advance(hours=24, seconds=-1)
    edit = payloads.comment_edited(
        "/approve", before="/reject", repo=REPO, number=PR, author="dan", comment_id=first.payload["comment"]["id"]
    )
    edit.payload["comment"]["updated_at"] = clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    clock.advance(seconds=3)
    await app.deliver(edit)
    decided = await status(app)
    assert (decided["status"], decided["votes"]["approvals"], decided["votes"]["rejections"]) == ("passed", 3, 0)


async def test_the_end_waits_for_votes_commented_in_time_only_so_long(app, world, vote, clock):
    await open_proposal(app)
    await app.deliver(vote("/approve", "ann"), vote("/approve", "max"))
    clock.advance(hours=24, seconds=-2)
    waiting = _written(vote("/approve", "dan"), clock.now)
    assert (await app.send(waiting)).status == 202
    # Ten minutes after the end the proposal closes, whatever still waits in the inbox.
    clock.advance(minutes=10, seconds=3)
    assert await app.runtime.service.close_due_proposals() == 1
    assert (await status(app))["status"] == "expired"
    await app.drain()
    assert (await status(app))["votes"]["approvals"] == 2
    assert world.reaction_contents(waiting.payload["comment"]["id"]) == ["confused"]
