"""Every command of DESIGN section 2 through the App under test, and what edits, deletions,
closed proposals and the rate limit do to them."""

from __future__ import annotations

import pytest

from tests import payloads
from tests.flow import (  # noqa: F401  (fixtures)
    NEW_SHA,
    MARKER,
    PR,
    REPO,
    app_fixture,
    audit,
    check_run,
    clock_fixture,
    make_app_fixture,
    open_proposal,
    reactions,
    set_rules,
    status,
    status_comment,
    vote_fixture,
    world_fixture,
)

PASS = ("/approve", "ann"), ("/approve", "max"), ("/approve", "dan")


async def passed(app, vote):
    await open_proposal(app)
    await app.deliver(*(vote(body, who) for body, who in PASS))


async def test_votes_carry_their_reasons(app, world, vote):
    await open_proposal(app)
    await app.deliver(
        vote("/approve looks right on mobile", "ann"), vote("/reject breaks the footer", "max"), vote("/abstain on leave", "dan")
    )
    comment = status_comment(world)
    for reason in ("looks right on mobile", "breaks the footer", "on leave"):
        assert reason in comment
    votes = (await status(app))["votes"]
    assert (votes["approvals"], votes["rejections"], votes["abstentions"]) == (1, 1, 1)


async def test_a_reason_with_a_nul_character_is_counted_and_shown_as_github_shows_it(app, world, vote):
    """GitHub passes NUL characters on in comment bodies; PostgreSQL's text cannot hold them.
    The vote and the hold count all the same, their reasons shown with U+FFFD in the NUL's
    place, as GitHub's own rendering of the comment shows it."""
    await open_proposal(app)
    await app.deliver(vote("/approve looks\x00 right", "ann"), vote("/hold wait\x00 for QA", "dan"))
    votes = (await status(app))["votes"]
    assert (votes["total"], votes["approvals"]) == (1, 1)
    comment = status_comment(world)
    assert "looks\ufffd right" in comment and "wait\ufffd for QA" in comment
    assert "\x00" not in comment
    assert check_run(world)["output"]["title"].startswith("Voting")


@pytest.mark.parametrize("withdraw", ["/retract", "/approve cancel", "/reject cancel", "/abstain cancel"])
async def test_retract_and_the_cancel_forms_withdraw_a_vote(app, world, vote, withdraw):
    await open_proposal(app)
    await app.deliver(vote("/approve", "ann"), vote("/reject", "max"))
    await app.deliver(vote(withdraw, "ann"))
    votes = (await status(app))["votes"]
    assert (votes["total"], votes["approvals"], votes["rejections"]) == (1, 0, 1)
    assert [e.actor for e in await audit(app, "retraction")] == ["ann"]


async def test_a_hold_blocks_promotion_whatever_the_tally_until_unhold(app, world, vote):
    await passed(app, vote)
    assert check_run(world)["conclusion"] == "success"
    await app.deliver(vote("/hold waiting for the QA sign-off", "dan"))
    run = check_run(world)
    assert run["status"] == "in_progress"  # nothing that waits for the check goes ahead
    assert world.check_run_actions[run["id"]] == []  # no Promote button
    assert "on hold by @dan" in status_comment(world)
    await app.deliver(vote("/promote", "ann"))
    assert world.calls_for("repos/create-deployment") == []
    assert "not promoted: on hold" in status_comment(world)
    await app.deliver(vote("/unhold", "max"))
    assert check_run(world)["conclusion"] == "success"
    await app.deliver(vote("/promote", "ann"))
    assert len(world.calls_for("repos/create-deployment")) == 1
    trail = [(e.actor, e.action) for e in await audit(app) if e.action in ("hold", "unhold")]
    assert trail == [("dan", "hold"), ("max", "unhold")]
    [hold] = await audit(app, "hold")
    assert hold.detail == "waiting for the QA sign-off"


async def test_a_hold_reason_is_shown_as_text_mentioning_nobody(app, world, vote):
    await passed(app, vote)
    await app.deliver(vote("/hold cc @octo-org/owners [Promote now](https://evil.example/x) <b>x</b>", "dan"))
    shown = status_comment(world) + check_run(world)["output"]["summary"]
    assert "cc @octo-org" not in shown and "[Promote now](https://evil.example/x)" not in shown and "<b>" not in shown
    assert "Promote now" in status_comment(world)  # the words stay, as text


async def test_a_counted_command_gets_no_reaction_and_a_comment_with_one_not_counted_gets_one_confused(app, world, vote):
    await open_proposal(app)
    approve = vote("/approve looks right on mobile", "ann")
    promote = vote("/promote", "max")  # before the pass: not counted
    mixed = vote("/reject breaks the footer\n/hold", "rita")  # read permission: neither counts
    partly = vote("/hold\n/promote", "dan")  # the hold counts, the promotion does not
    await app.deliver(approve, promote, mixed, partly)
    assert reactions(world, approve.payload["comment"]["id"]) == []
    assert reactions(world, promote.payload["comment"]["id"]) == ["confused"]
    assert reactions(world, mixed.payload["comment"]["id"]) == ["confused"]
    assert reactions(world, partly.payload["comment"]["id"]) == ["confused"]
    assert len(world.calls_for("reactions/create-for-issue-comment")) == 3
    # What was counted shows where the voters look: the status comment and the check run.
    comment = status_comment(world)
    assert "@ann" in comment and "looks right on mobile" in comment
    assert "on hold by @dan" in comment
    assert "| @ann | ✅ approve | 3 | looks right on mobile |" in check_run(world)["output"]["text"]
    assert (await status(app))["votes"]["total"] == 1


async def test_hold_and_unhold_need_write_permission(app, world, vote):
    await passed(app, vote)
    hold = vote("/hold", "tia")
    await app.deliver(hold)
    assert reactions(world, hold.payload["comment"]["id"]) == ["confused"]
    assert "not held: needs write permission or above (has triage)" in status_comment(world)
    assert check_run(world)["conclusion"] == "success"
    await app.deliver(vote("/hold", "dan"))
    unhold = vote("/unhold", "rita")
    await app.deliver(unhold)
    assert reactions(world, unhold.payload["comment"]["id"]) == ["confused"]
    assert check_run(world)["status"] == "in_progress"


async def test_a_hold_stops_auto_promotion_and_unhold_lets_it_go(app, world, vote):
    set_rules(world, "promote:\n  auto: true\n")
    await open_proposal(app)
    await app.deliver(vote("/hold", "dan"), *(vote(body, who) for body, who in PASS))
    assert world.calls_for("repos/create-deployment") == []
    await app.deliver(vote("/unhold", "dan"))
    assert len(world.calls_for("repos/create-deployment")) == 1


async def test_promote_force_needs_allow_force(app, world, vote):
    await open_proposal(app)
    force = vote("/promote --force", "ann")
    await app.deliver(force)
    assert world.calls_for("repos/create-deployment") == []
    assert reactions(world, force.payload["comment"]["id"]) == ["confused"]
    assert "forced promotion is not enabled for this repository" in status_comment(world)


async def test_promote_force_is_for_admins_where_allowed_and_is_audited(app, world, vote):
    set_rules(world, "promote:\n  allow_force: true\n")
    await open_proposal(app)
    await app.deliver(vote("/reject", "max"), vote("/promote --force", "dan"))
    assert world.calls_for("repos/create-deployment") == []
    assert "only admins may force a promotion (has write)" in status_comment(world)
    await app.deliver(vote("/promote --force hotfix for the outage", "ann"))
    [created] = world.calls_for("repos/create-deployment")
    assert created.json["payload"]["pinkflow"]["forced"] is True
    assert created.json["description"].startswith("Forced promotion by ann")
    assert (await status(app))["status"] == "promoted"
    [forced] = await audit(app, "forced promotion")
    assert forced.actor == "ann" and "hotfix for the outage" in forced.detail and "voting" in forced.detail


async def test_status_and_help_are_open_to_anyone(app, world, vote):
    await open_proposal(app)
    before = len(world.calls_for("checks/update")) + len(world.calls_for("checks/create"))
    status_command = vote("/status", "rita")
    help_command = vote("/help", "rita")
    await app.deliver(status_command, help_command)
    assert len(world.calls_for("checks/update")) + len(world.calls_for("checks/create")) > before
    # Counted: the check run and status comment answer it, not a reaction.
    assert reactions(world, status_command.payload["comment"]["id"]) == []
    assert reactions(world, help_command.payload["comment"]["id"]) == []
    replies = [c["body"] for c in world.comments_on(REPO, PR) if "/unhold" in c["body"]]
    assert len(replies) == 1 and "/promote --force" in replies[0]


# --- Edited and deleted comments -------------------------------------------------------------


def edited(world, comment: dict, body: str, *, editor: str | None = None):
    author = comment["user"]["login"]
    before = comment["body"]
    comment["body"] = body
    return payloads.comment_edited(
        body, before=before, repo=REPO, number=PR, author=author, comment_id=comment["id"], editor=editor,
        created_at=comment["created_at"],
    )


def posted(world, body: str, author: str):
    return world.add_comment(REPO, PR, author=author, body=body)


async def deliver_posted(app, comment: dict):
    await app.deliver(payloads.comment(comment["body"], repo=REPO, number=PR, author=comment["user"]["login"], comment_id=comment["id"]))


async def test_an_edited_comment_is_read_again_and_the_vote_follows_it(app, world):
    await open_proposal(app)
    comment = posted(world, "/approve", "ann")
    await deliver_posted(app, comment)
    await app.deliver(edited(world, comment, "/reject on second thought"))
    votes = (await status(app))["votes"]
    assert (votes["total"], votes["approvals"], votes["rejections"], votes["rejectWeight"]) == (1, 0, 1, 3)
    assert "on second thought" in status_comment(world)
    await app.deliver(edited(world, comment, "never mind"))
    assert (await status(app))["votes"]["total"] == 0
    retractions = await audit(app, "retraction")
    assert [e.actor for e in retractions] == ["ann", "ann"]


async def test_an_edit_that_adds_a_vote_counts_it(app, world):
    await open_proposal(app)
    comment = posted(world, "/aprove", "max")  # a typo: no command
    await deliver_posted(app, comment)
    await app.deliver(edited(world, comment, "/approve"))
    assert (await status(app))["votes"]["approvals"] == 1
    assert "| @max" in status_comment(world)
    assert reactions(world, comment["id"]) == []  # counted: shown in the status comment, no reaction


async def test_an_edit_by_anyone_but_the_author_is_ignored_and_audited_as_tampering(app, world):
    await open_proposal(app)
    comment = posted(world, "/approve", "dan")
    await deliver_posted(app, comment)
    await app.deliver(edited(world, comment, "/reject", editor="ann"))
    votes = (await status(app))["votes"]
    assert (votes["approvals"], votes["rejections"]) == (1, 0)
    [tampering] = await audit(app, "tampering")
    assert tampering.actor == "ann" and "dan" in tampering.detail
    assert "@ann edited a comment of @dan" in status_comment(world)


async def test_editing_an_older_comment_does_not_override_a_later_vote(app, world):
    await open_proposal(app)
    older = posted(world, "/approve", "ann")
    await deliver_posted(app, older)
    later = posted(world, "/reject", "ann")
    await deliver_posted(app, later)
    await app.deliver(edited(world, older, "/abstain"))
    votes = (await status(app))["votes"]
    assert (votes["approvals"], votes["rejections"], votes["abstentions"]) == (0, 1, 0)


async def test_editing_a_comment_from_before_a_push_casts_no_vote_on_the_new_commit(app, world, clock):
    await open_proposal(app)
    old = posted(world, "/approve", "ann")
    old["created_at"] = clock().strftime("%Y-%m-%dT%H:%M:%SZ")  # the App's time, not the fake's
    await deliver_posted(app, old)
    clock.advance(minutes=5)
    world.push(REPO, PR, head_sha=NEW_SHA)
    await app.deliver(payloads.pull_request("synchronize", repo=REPO, number=PR, head_sha=NEW_SHA, author="alice"))
    await open_proposal(app, sha=NEW_SHA, deployment_id=502)

    await app.deliver(edited(world, old, "/approve (typo fixed)"))
    assert (await status(app, deployment_id=502))["votes"]["total"] == 0
    assert reactions(world, old["id"]) == ["confused"]
    [ignored] = await audit(app, "edit ignored")
    assert NEW_SHA[:7] in ignored.detail
    # A comment written on the new commit, then edited, still counts.
    clock.advance(minutes=1)
    fresh = posted(world, "/aprove", "ann")
    fresh["created_at"] = clock().strftime("%Y-%m-%dT%H:%M:%SZ")
    await deliver_posted(app, fresh)
    await app.deliver(edited(world, fresh, "/approve"))
    assert (await status(app, deployment_id=502))["votes"]["approvals"] == 1


async def test_a_deleted_comment_withdraws_its_vote(app, world):
    await open_proposal(app)
    comment = posted(world, "/approve", "max")
    await deliver_posted(app, comment)
    assert (await status(app))["votes"]["total"] == 1
    await app.deliver(payloads.comment_deleted(repo=REPO, number=PR, author="max", comment_id=comment["id"], body="/approve"))
    assert (await status(app))["votes"]["total"] == 0
    assert [e.actor for e in await audit(app, "retraction")] == ["max"]


async def test_deleting_an_older_comment_leaves_the_later_vote(app, world):
    await open_proposal(app)
    older = posted(world, "/reject", "max")
    await deliver_posted(app, older)
    later = posted(world, "/approve", "max")
    await deliver_posted(app, later)
    await app.deliver(payloads.comment_deleted(repo=REPO, number=PR, author="max", comment_id=older["id"]))
    votes = (await status(app))["votes"]
    assert (votes["total"], votes["approvals"]) == (1, 1)


def status_comments(world) -> list[dict]:
    return [c for c in world.comments_on(REPO, PR) if MARKER in c["body"]]


async def test_a_deleted_status_comment_is_posted_again_by_the_next_vote(app, world, vote):
    await open_proposal(app)
    await app.deliver(vote("/approve", "ann"))
    [deleted] = status_comments(world)
    world.delete_comment(deleted["id"])
    await app.deliver(
        payloads.comment_deleted(
            repo=REPO, number=PR, author=world.bot_login, author_type="Bot", comment_id=deleted["id"],
            body=deleted["body"], deleted_by="max",
        )
    )
    await app.deliver(vote("/reject the footer overlaps", "max"))
    [comment] = status_comments(world)
    assert comment["id"] != deleted["id"]
    # The deletion was heard: the deleted comment was not asked for again.
    assert all(call.status != 404 for call in world.calls_for("issues/update-comment"))
    assert "| @ann" in comment["body"] and "| @max" in comment["body"] and "the footer overlaps" in comment["body"]


async def test_a_status_comment_deleted_without_a_webhook_is_posted_again_once(app, world, vote, clock):
    """The deletion's webhook was lost: the edit finds the comment gone and posts a new one;
    a retry after the new comment's answer was lost finds it instead of posting another."""
    await open_proposal(app)
    await app.deliver(vote("/approve", "ann"))
    [deleted] = status_comments(world)
    world.delete_comment(deleted["id"])
    world.fail("issues/create-comment", status=502, effect_applied=True)
    await app.deliver(vote("/reject the footer overlaps", "max"))
    clock.advance(seconds=10)
    await app.drain()
    [comment] = status_comments(world)
    assert "| @max" in comment["body"] and "the footer overlaps" in comment["body"]
    await app.deliver(vote("/approve", "dan"))
    [comment] = status_comments(world)
    assert "| @dan" in comment["body"] and "| @max" in comment["body"]


async def test_another_apps_comment_that_repeats_the_marker_is_not_taken_for_the_status_comment(app, world, vote):
    """Another App's comment that carries the marker (a workflow echoing the pull request's
    description, or a second Pinkflow App on the repository) is never edited: the App posts
    and keeps its own status comment, also after it was deleted."""
    body = MARKER + "\nThe description of this pull request, as a workflow repeats it."
    echoed = world.add_comment(REPO, PR, author="github-actions[bot]", body=body)
    await open_proposal(app)
    await app.deliver(vote("/approve", "ann"))
    [ours] = [c for c in status_comments(world) if c["user"]["login"] == world.bot_login]
    assert "| @ann" in ours["body"]
    world.delete_comment(ours["id"])
    await app.deliver(
        payloads.comment_deleted(
            repo=REPO, number=PR, author=world.bot_login, author_type="Bot", comment_id=ours["id"],
            body=ours["body"], deleted_by="max",
        )
    )
    await app.deliver(vote("/reject the footer overlaps", "max"))
    [ours] = [c for c in status_comments(world) if c["user"]["login"] == world.bot_login]
    assert "| @ann" in ours["body"] and "| @max" in ours["body"]
    assert world.comments[echoed["id"]]["body"] == body
    assert all(call.path.rsplit("/", 1)[-1] != str(echoed["id"]) for call in world.calls_for("issues/update-comment"))


# --- Closed proposals and the rate limit -----------------------------------------------------


async def test_a_command_on_a_closed_proposal_is_answered_confused_with_a_line_saying_why(app, world, vote):
    await open_proposal(app)
    world.close_pull(REPO, PR)
    await app.deliver(payloads.pull_request("closed", repo=REPO, number=PR, head_sha=world.pulls[(REPO, PR)]["head"]["sha"], author="alice", state="closed"))
    late = vote("/approve", "ann")
    hold = vote("/hold", "dan")
    await app.deliver(late, hold)
    assert reactions(world, late.payload["comment"]["id"]) == ["confused"]
    assert reactions(world, hold.payload["comment"]["id"]) == ["confused"]
    comment = status_comment(world)
    assert "@ann: `/approve` not run: the proposal is cancelled" in comment
    assert "@dan: `/hold` not run: the proposal is cancelled" in comment


async def test_a_hold_on_a_rejected_proposal_says_why(app, world, vote, clock):
    await open_proposal(app)
    await app.deliver(vote("/reject", "ann"), vote("/reject", "max"), vote("/reject", "dan"))
    clock.advance(hours=25)
    await app.runtime.service.close_due_proposals()
    await app.drain()
    hold = vote("/hold", "dan")
    await app.deliver(hold)
    assert reactions(world, hold.payload["comment"]["id"]) == ["confused"]
    assert "not held: the proposal is rejected" in status_comment(world)


async def test_commands_are_rate_limited_per_person_and_repository(make_app, world, vote, clock):
    app = await make_app(RATE_LIMIT_MAX_REQUESTS="3", RATE_LIMIT_WINDOW="60000")
    await open_proposal(app)
    await app.deliver(vote("/approve", "dan"), vote("/retract", "dan"), vote("/approve", "dan"))
    too_many = vote("/reject\n/status", "dan")  # the 4th and 5th command in the window
    await app.deliver(too_many)
    assert reactions(world, too_many.payload["comment"]["id"]) == ["confused"]
    votes = (await status(app))["votes"]
    assert (votes["approvals"], votes["rejections"]) == (1, 0)  # nothing of it applied
    assert "@dan: not run: at most 3 commands per 1m in this repository" in status_comment(world)
    # Others are not held back by dan's commands.
    await app.deliver(vote("/approve", "max"))
    assert (await status(app))["votes"]["approvals"] == 2
    clock.advance(seconds=61)
    await app.deliver(vote("/reject", "dan"))
    votes = (await status(app))["votes"]
    assert (votes["approvals"], votes["rejections"]) == (1, 1)


async def test_two_replicas_counting_one_persons_commands_at_once_do_not_both_see_room(make_app, clock):
    """The command limit holds across replicas and pull requests: the second count waits
    for the first transaction and sees its command."""
    import asyncio

    from pinkflow_bot.storage.database import write_transaction

    app = await make_app(RATE_LIMIT_MAX_REQUESTS="1", RATE_LIMIT_WINDOW="15m")
    service, sessions = app.runtime.service, app.runtime.sessions
    first_counted = asyncio.Event()
    release = asyncio.Event()

    async def count(*, hold: bool) -> str | None:
        async with write_transaction(sessions) as session:
            refusal = await service._rate_limited(session, REPO, "ann", 1, now=clock())
            if hold:
                first_counted.set()
                await release.wait()  # this replica's transaction is still open
            return refusal

    first = asyncio.create_task(count(hold=True))
    await first_counted.wait()
    second = asyncio.create_task(count(hold=False))
    await asyncio.sleep(0.3)
    assert not second.done()  # waiting for the first count's transaction
    release.set()
    assert await first is None
    assert "at most 1 commands" in (await second or "")
