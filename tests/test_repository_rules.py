""".github/pinkflow.yml: where it is read from, how it is kept, how it fails, and every key at work."""

from __future__ import annotations

import pytest

from tests import payloads
from tests.flow import (  # noqa: F401  (fixtures)
    CONFIG,
    NEW_SHA,
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
    reactions,
    set_rules,
    status,
    status_comment,
    vote_fixture,
    world_fixture,
)

CONTENTS = "repos/get-content"


def contents_calls(fake, repo: str = REPO) -> list:
    return [call for call in fake.calls_for(CONTENTS) if call.path.startswith(f"/repos/{repo}/contents/")]


# --- Where the rules come from ---------------------------------------------------------------


async def test_rules_are_read_from_the_default_branch_never_the_pull_requests(app, world, vote):
    set_rules(world, "threshold: 50\nmin_votes: 1\n")
    # The pull request's own branch says otherwise: it must not rewrite the rules it is voted under.
    world.set_file(REPO, CONFIG, "threshold: 100\nmin_votes: 5\n", ref="feature")
    await open_proposal(app)
    [call] = contents_calls(world)
    assert call.path == f"/repos/{REPO}/contents/{CONFIG}" and call.query == {"ref": "main"}
    await app.deliver(vote("/approve", "dan"))
    votes = (await status(app))["votes"]
    assert (votes["threshold"], votes["minVotes"], votes["isApproved"]) == (50, 1, True)


async def test_the_owners_github_repository_is_the_fallback(app, world, vote):
    world.add_repo("octo-org/.github", installation_id=1)
    set_rules(world, "min_votes: 1\nthreshold: 60\n", repo="octo-org/.github")
    await open_proposal(app)
    await app.deliver(vote("/approve", "dan"))
    votes = (await status(app))["votes"]
    assert (votes["threshold"], votes["minVotes"], votes["isApproved"]) == (60, 1, True)


async def test_problems_of_the_owners_file_name_the_owners_repository(app, world):
    world.add_repo("octo-org/.github", installation_id=1)
    set_rules(world, BROKEN, repo="octo-org/.github")
    await open_proposal(app)
    summary = check_run(world)["output"]["summary"]
    assert "octo-org/.github" in summary and "line 1, threshold" in summary
    assert "octo-org/.github" in status_comment(world)


async def test_a_push_that_fixes_the_owners_file_opens_the_vote_in_the_repositories_using_it(app, world, vote):
    world.add_repo("octo-org/.github", installation_id=1)
    set_rules(world, BROKEN, repo="octo-org/.github")
    await open_proposal(app)
    await app.deliver(vote("/approve", "dan"))
    assert check_run(world)["conclusion"] == "failure"
    set_rules(world, "min_votes: 1\n", repo="octo-org/.github")
    await app.deliver(payloads.push(repo="octo-org/.github", modified=(CONFIG,)))
    # The vote commented while the file was broken is read again and counts: the vote passes.
    assert (await status(app))["votes"]["isApproved"] is True
    assert (check_run(world)["status"], check_run(world)["conclusion"]) == ("completed", "success")
    assert "invalid .github/pinkflow.yml" not in status_comment(world)
    assert [e.action for e in await audit(app, "configuration fixed")] == ["configuration fixed"]


async def test_the_repositorys_own_file_wins_over_the_owners(app, world, vote):
    world.add_repo("octo-org/.github", installation_id=1)
    set_rules(world, "min_votes: 1\n", repo="octo-org/.github")
    set_rules(world, "min_votes: 2\n")
    await open_proposal(app)
    await app.deliver(vote("/approve", "dan"))
    assert (await status(app))["votes"]["isApproved"] is False
    assert contents_calls(world, "octo-org/.github") == []


async def test_without_a_file_the_installation_defaults_from_the_environment_apply(make_app, world, vote):
    app = await make_app(
        DAO_APPROVAL_THRESHOLD="60", DAO_MIN_VOTES="2", DAO_VOTING_PERIOD="7200000", ENABLE_AUTO_DEPLOYMENT="true"
    )
    await open_proposal(app)
    proposal = (await status(app))
    assert (proposal["votes"]["threshold"], proposal["votes"]["minVotes"]) == (60, 2)
    assert proposal["closes_at"].startswith("2026-11-02T11:00")  # 7,200,000 ms
    await app.deliver(vote("/approve", "dan"), vote("/approve", "ann"))
    # ENABLE_AUTO_DEPLOYMENT: promoted as soon as the vote passed, without a /promote.
    assert len(world.calls_for("repos/create-deployment")) == 1
    assert (await status(app))["status"] == "promoted"


# --- Failing closed --------------------------------------------------------------------------

BROKEN = """\
threshold: 150
voters:
  weights: {admin: many}
promote:
  allow_force: true
"""


async def test_an_invalid_file_fails_the_check_run_saying_what_and_where(app, world, vote):
    set_rules(world, BROKEN)
    await open_proposal(app)
    run = check_run(world)
    assert (run["status"], run["conclusion"]) == ("completed", "failure")
    summary = run["output"]["summary"]
    assert "line 1, threshold: must be a whole percentage from 0 to 100" in summary
    assert "line 3, voters.weights.admin" in summary
    assert "invalid .github/pinkflow.yml" in status_comment(world)
    # Nothing counts and nothing is promoted, not even by force, until the file is fixed.
    approve = vote("/approve", "ann")
    force = vote("/promote --force", "ann")
    await app.deliver(approve, force)
    assert (await status(app))["votes"]["total"] == 0
    assert reactions(world, approve.payload["comment"]["id"]) == ["confused"]
    assert reactions(world, force.payload["comment"]["id"]) == ["confused"]
    assert world.calls_for("repos/create-deployment") == []
    assert [event.action for event in await audit(app, "invalid configuration")] == ["invalid configuration"]


async def test_a_period_too_long_for_any_clock_is_a_problem_in_the_file(app, world):
    # Read as milliseconds it is still far beyond what a time can hold: the file is still only invalid.
    set_rules(world, "voting_period: 99999999999999999999999\n")
    await open_proposal(app)
    run = check_run(world)
    assert (run["status"], run["conclusion"]) == ("completed", "failure")
    assert run["output"]["summary"].endswith("line 1, voting\\_period: must be at most 365d")


async def test_an_empty_list_of_preview_patterns_is_a_problem_not_a_silence(app, world):
    # No pattern matches no deployment: without this problem, no vote would ever open and nobody would know why.
    set_rules(world, "min_votes: 1\nenvironments:\n  preview: []\n")
    await open_proposal(app)
    run = check_run(world)
    assert (run["status"], run["conclusion"]) == ("completed", "failure")
    assert "line 3, environments.preview: must list at least one pattern" in run["output"]["summary"]


async def test_a_push_that_fixes_the_file_opens_the_vote(app, world, vote, clock):
    set_rules(world, BROKEN)
    await open_proposal(app)
    set_rules(world, "min_votes: 1\n")
    clock.advance(hours=1)
    await app.deliver(payloads.push(repo=REPO, modified=(CONFIG,)))
    run = check_run(world)
    assert run["status"] == "in_progress"  # a new run: GitHub does not reopen a completed one
    await app.deliver(vote("/approve", "dan"))
    assert (await status(app))["votes"]["isApproved"] is True
    # The voting period runs from the fix: nobody could vote before it.
    assert (await status(app))["closes_at"].startswith("2026-11-03T10:00")
    assert [e.action for e in await audit(app, "configuration fixed")] == ["configuration fixed"]


async def test_votes_cast_while_the_file_is_broken_count_once_a_push_fixes_it(app, world, vote):
    """What the status comment tells voters under a broken file, and that it comes true."""
    set_rules(world, BROKEN)
    await open_proposal(app)
    await app.deliver(vote("/approve", "dan"), vote("/approve", "max"))
    comment = status_comment(world)
    assert "No votes yet" not in comment
    assert "once the file is fixed on the default branch, the App reads this pull request's comments again" in comment
    assert "@dan: not counted yet: .github/pinkflow.yml on the default branch is invalid; the vote counts once the file is fixed" in comment
    assert (await status(app))["votes"]["total"] == 0
    set_rules(world, "min_votes: 2\nthreshold: 50\n")
    await app.deliver(payloads.push(repo=REPO, modified=(CONFIG,)))
    votes = (await status(app))["votes"]
    assert (votes["total"], votes["isApproved"]) == (2, True)
    assert [e.action for e in await audit(app, "recovered vote")] == ["recovered vote", "recovered vote"]
    # /status afterwards reads the same comments again and counts nothing twice.
    await app.deliver(vote("/status", "rita"))
    assert (await status(app))["votes"]["total"] == 2


async def test_status_takes_up_a_file_fixed_without_a_push_being_seen(app, world, vote):
    set_rules(world, BROKEN)
    await open_proposal(app)
    set_rules(world, "min_votes: 1\n")
    await app.deliver(vote("/status", "rita"))
    assert check_run(world)["status"] == "in_progress"
    await app.deliver(vote("/approve", "dan"))
    assert (await status(app))["votes"]["isApproved"] is True


async def test_votes_counted_once_status_takes_up_the_fixed_file_carry_its_team_weights(app, world, vote):
    set_rules(world, BROKEN)
    world.add_team_member("octo-org", "release", "dan")
    await open_proposal(app)
    await app.deliver(vote("/approve", "dan"), vote("/approve", "max"))
    set_rules(world, 'min_votes: 2\nvoters:\n  teams: {"octo-org/release": 4}\n')
    await app.deliver(vote("/status", "rita"))
    votes = (await status(app))["votes"]
    # dan: write 1, but the fixed file's release team weighs 4; max: maintain 2.
    assert (votes["total"], votes["approveWeight"]) == (2, 4 + 2)
    assert "| @dan | ✅ approve | 4 |" in status_comment(world)


async def test_a_file_broken_past_the_voting_period_keeps_the_vote_open_until_it_is_fixed(app, world, vote, clock):
    set_rules(world, BROKEN)
    await open_proposal(app)
    clock.advance(hours=30)  # past the 24 h voting period, still broken
    assert await app.runtime.service.close_due_proposals() == 0
    assert (await status(app))["status"] == "voting"
    assert check_run(world)["conclusion"] == "failure"  # still saying what is wrong

    set_rules(world, "min_votes: 1\n")
    await app.deliver(vote("/status", "rita"))
    await app.deliver(vote("/approve", "dan"))
    assert (await status(app))["status"] == "passed"
    assert "Voting ended before its deadline" not in status_comment(world)


# --- Kept, and refreshed by a push -----------------------------------------------------------


async def test_the_file_is_read_once_and_again_after_a_push_to_the_default_branch_touching_it(app, world, vote):
    set_rules(world, "min_votes: 3\n")
    world.add_pull(REPO, PR + 1, head_sha=NEW_SHA, author="alice")
    await open_proposal(app)
    await app.deliver(payloads.preview_ready(repo=REPO, sha=NEW_SHA, deployment_id=777))
    assert len(contents_calls(world)) == 1
    set_rules(world, "min_votes: 1\n")
    # Pushes that do not touch the file, or to another branch, change nothing.
    await app.deliver(
        payloads.push(repo=REPO, modified=("README.md",)),
        payloads.push(repo=REPO, ref="refs/heads/feature", modified=(CONFIG,)),
    )
    assert len(contents_calls(world)) == 1
    await app.deliver(payloads.push(repo=REPO, modified=(CONFIG,)))
    assert len(contents_calls(world)) == 2
    third_sha = "0" * 39 + "3"
    world.add_pull(REPO, PR + 2, head_sha=third_sha, author="alice")
    await app.deliver(payloads.preview_ready(repo=REPO, sha=third_sha, deployment_id=778))
    minimum = {p.head_sha: p.rules["min_votes"] for p in await proposals(app)}
    assert minimum == {SHA: 3, NEW_SHA: 3, third_sha: 1}


async def test_a_change_of_the_file_does_not_move_the_goalposts_of_an_open_vote(app, world, vote):
    set_rules(world, "min_votes: 3\n")
    await open_proposal(app)
    set_rules(world, "min_votes: 1\n")
    await app.deliver(payloads.push(repo=REPO, modified=(CONFIG,)), vote("/approve", "dan"))
    votes = (await status(app))["votes"]
    assert (votes["minVotes"], votes["isApproved"]) == (3, False)


# --- Every key ------------------------------------------------------------------------------


async def test_voting_period_and_min_voting_time(app, world, vote, clock):
    set_rules(world, "voting_period: 2h\nmin_voting_time: 30m\nmin_votes: 1\n")
    await open_proposal(app)
    assert (await status(app))["closes_at"].startswith("2026-11-02T11:00")
    await app.deliver(vote("/approve", "dan"), vote("/promote", "dan"))
    assert world.calls_for("repos/create-deployment") == []
    assert "must stay open for at least 30m" in status_comment(world)
    clock.advance(minutes=30)
    await app.deliver(vote("/promote", "dan"))
    assert len(world.calls_for("repos/create-deployment")) == 1


async def test_auto_promotion_waits_out_min_voting_time_then_goes_ahead_on_its_own(app, world, vote, clock):
    set_rules(world, "voting_period: 2h\nmin_voting_time: 1h\nmin_votes: 1\npromote:\n  auto: true\n")
    await open_proposal(app)
    await app.deliver(vote("/approve", "dan"))  # passes after 0 minutes
    assert world.calls_for("repos/create-deployment") == []
    assert world.check_run_actions[check_run(world)["id"]] == []  # no Promote button yet

    clock.advance(minutes=59)
    assert await app.runtime.service.close_due_proposals() == 0  # nothing changed by time yet
    clock.advance(minutes=1)
    assert await app.runtime.service.close_due_proposals() == 1
    await app.drain()
    assert len(world.calls_for("repos/create-deployment")) == 1
    assert (await status(app))["status"] == "promoted"


@pytest.mark.parametrize("auto", [True, False])
async def test_a_min_voting_time_longer_than_the_period_is_waited_out_after_the_vote_closes(app, world, vote, clock, auto):
    set_rules(world, f"voting_period: 1h\nmin_voting_time: 2h\nmin_votes: 1\npromote:\n  auto: {str(auto).lower()}\n")
    await open_proposal(app)
    await app.deliver(vote("/approve", "dan"))
    clock.advance(hours=1)
    assert await app.runtime.service.close_due_proposals() == 1  # closes as passed, not promotable yet
    await app.drain()
    assert world.check_run_actions[check_run(world)["id"]] == []
    waits = "the minimum voting time (2h from the vote's opening) ends in 1h"
    assert "Voting closed at 2026-11-02 10:00 UTC." in status_comment(world)
    assert f"Promotion waits: {waits}." in status_comment(world)
    assert check_run(world)["output"]["title"].endswith(f"; promotion waits: {waits}")
    if not auto:
        await app.deliver(vote("/promote", "dan"))
        assert f"@dan: not promoted: {waits}" in status_comment(world)
    assert "must stay open" not in status_comment(world) + check_run(world)["output"]["summary"]

    clock.advance(hours=1)
    assert await app.runtime.service.close_due_proposals() == 1
    await app.drain()
    if auto:
        assert len(world.calls_for("repos/create-deployment")) == 1
        assert (await status(app))["status"] == "promoted"
    else:
        assert [action["identifier"] for action in world.check_run_actions[check_run(world)["id"]]] == ["promote"]
        assert "It can be promoted to production with the Promote button" in status_comment(world)
    assert await app.runtime.service.close_due_proposals() == 0


async def test_a_passed_vote_closes_at_the_end_of_its_period(app, world, vote, clock):
    set_rules(world, "voting_period: 2h\nmin_votes: 1\n")
    await open_proposal(app)
    await app.deliver(vote("/approve", "dan"))
    assert "Voting closes in" in status_comment(world)
    clock.advance(hours=2)
    assert await app.runtime.service.close_due_proposals() == 1
    await app.drain()
    assert "Voting closes in" not in status_comment(world)
    decisions = await audit(app, "decision: passed")  # as it passed, and as it closed
    assert len(decisions) == 2 and max(decision.at for decision in decisions) == clock()
    assert await app.runtime.service.close_due_proposals() == 0  # decided: never looked at again


async def test_open_on_pull_request_puts_the_head_to_a_vote_without_a_preview(app, world):
    set_rules(world, "open_on: pull_request\n")
    await app.deliver(payloads.pull_request("opened", repo=REPO, number=PR, head_sha=SHA, author="alice"))
    assert check_run(world)["status"] == "in_progress"
    # The preview arriving later joins the same proposal.
    await open_proposal(app, url="https://shop-pr-31.example.dev")
    [proposal] = await proposals(app)
    assert proposal.preview_url == "https://shop-pr-31.example.dev"


async def test_open_on_deployment_does_not_open_on_a_pull_request_event(app, world):
    await app.deliver(payloads.pull_request("opened", repo=REPO, number=PR, head_sha=SHA, author="alice"))
    assert world.check_runs_for(REPO, SHA) == []


async def test_environment_patterns_decide_previews_and_production(app, world, vote):
    set_rules(world, 'environments:\n  preview: ["review-*"]\n  production: live\nmin_votes: 1\n')
    await app.deliver(payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=501, environment="Preview"))
    assert world.check_runs_for(REPO, SHA) == []
    await app.deliver(payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=502, environment="Review-shop"))
    assert check_run(world)["status"] == "in_progress"
    await app.deliver(vote("/approve", "dan"), vote("/promote", "dan"))
    [created] = world.calls_for("repos/create-deployment")
    assert created.json["environment"] == "live"


async def test_min_permission_weights_and_user_weights(app, world, vote):
    set_rules(
        world,
        "min_votes: 1\nthreshold: 100\nvoters:\n  min_permission: read\n  weights: {admin: 10, read: 2}\n  users: {dan: 7}\n",
    )
    await open_proposal(app)
    await app.deliver(vote("/approve", "rita"), vote("/approve", "ann"), vote("/approve", "dan"))
    votes = (await status(app))["votes"]
    assert (votes["total"], votes["approveWeight"]) == (3, 2 + 10 + 7)


async def test_team_weights_come_from_membership_and_the_highest_weight_applies(app, world, vote):
    set_rules(world, 'voters:\n  min_permission: triage\n  teams: {"octo-org/release": 4, "octo-org/docs": 1}\n')
    world.add_team_member("octo-org", "release", "tia")
    world.add_team_member("octo-org", "docs", "ann")
    world.add_team_member("octo-org", "release", "dan", state="pending")  # invited, not a member yet
    await open_proposal(app)
    await app.deliver(vote("/approve", "tia"), vote("/approve", "ann"), vote("/approve", "dan"))
    votes = (await status(app))["votes"]
    # tia: triage 1, release 4 -> 4; ann: admin 3, docs 1 -> 3; dan: write 1 (the invitation counts for nothing).
    assert votes["approveWeight"] == 4 + 3 + 1
    assert world.calls_for("teams/get-membership-for-user-in-org")


async def test_a_team_whose_members_github_does_not_show_leaves_the_vote_counted_by_role_and_says_why(app, world, vote):
    set_rules(world, 'min_votes: 1\nvoters:\n  teams: {"octo-org/release": 4}\n')
    world.add_team_member("octo-org", "release", "dan")
    await open_proposal(app)
    # An installation without the members: read permission is refused the membership.
    world.fail(
        "teams/get-membership-for-user-in-org", status=403, body={"message": "Resource not accessible by integration"}
    )
    approve = vote("/approve", "dan")
    await app.deliver(approve)
    votes = (await status(app))["votes"]
    assert (votes["total"], votes["approveWeight"]) == (1, 1)
    assert reactions(world, approve.payload["comment"]["id"]) == []
    assert (
        "@dan: counted with weight 1; the weight of octo-org/release was not applied: GitHub did not show the App "
        "whether @dan is a member (the App needs the organization's members: read permission)"
    ) in status_comment(world)


async def test_allow_author_lets_the_author_vote(app, world, vote):
    set_rules(world, "voters:\n  allow_author: true\nmin_votes: 1\n")
    await open_proposal(app)
    await app.deliver(vote("/approve", "alice"))
    assert (await status(app))["votes"]["isApproved"] is True


async def test_the_author_does_not_vote_by_default(app, world, vote):
    await open_proposal(app)
    await app.deliver(vote("/approve", "alice"))
    assert (await status(app))["votes"]["total"] == 0
    assert "@alice: not counted: authors do not vote on their own pull request (`voters.allow_author` in .github/pinkflow.yml)" in status_comment(world)


async def test_auto_promotion_and_promote_permission(app, world, vote):
    set_rules(world, "min_votes: 2\npromote:\n  auto: true\n  permission: admin\n")
    await open_proposal(app)
    await app.deliver(vote("/approve", "dan"), vote("/promote", "dan"))
    assert "promoting needs admin permission or above, has write (`promote.permission` in .github/pinkflow.yml)" in status_comment(world)
    await app.deliver(vote("/approve", "max"))
    [created] = world.calls_for("repos/create-deployment")
    assert created.json["payload"]["pinkflow"]["requested_by"] == "pinkflow"
    assert (await status(app))["status"] == "promoted"


@pytest.mark.parametrize("reset", [True, False])
async def test_reset_on_push(app, world, vote, reset):
    set_rules(world, f"reset_on_push: {'true' if reset else 'false'}\n")
    await open_proposal(app)
    await app.deliver(vote("/approve keeps working", "ann"), vote("/reject", "dan"))
    world.push(REPO, PR, head_sha=NEW_SHA)
    await app.deliver(payloads.pull_request("synchronize", repo=REPO, number=PR, head_sha=NEW_SHA, author="alice"))
    await open_proposal(app, sha=NEW_SHA, deployment_id=502)
    votes = (await status(app, 502))["votes"]
    if reset:
        assert votes["total"] == 0
        assert await audit(app, "vote carried over") == []
    else:
        assert (votes["approvals"], votes["rejections"], votes["approveWeight"]) == (1, 1, 3)
        carried = await audit(app, "vote carried over")
        assert sorted(e.actor for e in carried) == ["ann", "dan"]
        assert all(SHA[:7] in e.detail for e in carried)
        assert "keeps working" in status_comment(world)
