"""The whole governance flow in process: deliveries in, GitHub calls out, state in between."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pinkflow_bot.storage.models import Ballot
from tests import payloads
from tests.harness import Clock, app_under_test

REPO = "octo-org/shop"
PR = 12
SHA = "9fceb02d0ae598e95dc970b74767f19372d61af8"
NEW_SHA = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
MARKER = "<!-- pinkflow:status -->"


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def world(fake_github):
    fake_github.add_installation(1, "octo-org")
    fake_github.add_repo(REPO, installation_id=1)
    for login, role in [("ann", "admin"), ("max", "maintain"), ("dan", "write"), ("tia", "triage"), ("alice", "write")]:
        fake_github.add_user(login)
        fake_github.set_permission(REPO, login, role)
    fake_github.add_pull(REPO, PR, head_sha=SHA, author="alice")
    return fake_github


@pytest.fixture
async def app(tmp_path, world, app_private_key, clock, database_url):
    async with app_under_test(
        tmp_path, github_url=world.url, private_key=app_private_key, clock=clock, database_url=database_url
    ) as app:
        yield app


@pytest.fixture
def vote(world):
    def said(body: str, author: str, **kwargs):
        return payloads.posted_comment(world, body, repo=REPO, number=PR, author=author, **kwargs)

    return said


def the_check_run(fake, sha: str = SHA) -> dict:
    """The check run GitHub shows for the commit: the newest of that name."""
    runs = fake.check_runs_for(REPO, sha, name="Pinkflow governance")
    assert runs
    return max(runs, key=lambda r: r["id"])


def the_status_comment(fake) -> dict:
    [comment] = [c for c in fake.comments_on(REPO, PR) if MARKER in c["body"]]
    return comment


async def open_proposal(app, *, sha: str = SHA, deployment_id: int = 501):
    await app.deliver(payloads.preview_ready(repo=REPO, sha=sha, deployment_id=deployment_id))


async def seed_status(app, deployment_id: int = 501) -> dict:
    response = await app.client.get("/api/deployments/status", params={"deploymentId": str(deployment_id)})
    assert response.status == 200
    return (await response.json())["deployment"]


async def test_a_preview_success_opens_one_proposal_with_check_run_and_comment(app, world):
    await open_proposal(app)
    run = the_check_run(world)
    assert run["status"] == "in_progress"
    assert run["external_id"]
    comment = the_status_comment(world)
    assert "https://preview-abc.example.dev" in comment["body"]
    # A second success for the same preview (a redeploy) updates, it does not open another.
    await open_proposal(app)
    assert len(world.check_runs_for(REPO, SHA, name="Pinkflow governance")) == 1
    assert len([c for c in world.comments_on(REPO, PR) if MARKER in c["body"]]) == 1


async def test_the_check_run_links_to_the_proposal_page_signed_for_a_private_repository(app, world):
    await open_proposal(app)
    public_link = the_check_run(world)["details_url"]
    assert public_link.startswith("http://pinkflow.test/proposals/") and "sig=" not in public_link
    world.add_pull(REPO, PR + 1, head_sha=NEW_SHA, author="alice")
    await app.deliver(payloads.preview_ready(repo=REPO, sha=NEW_SHA, deployment_id=601, private=True))
    private_link = the_check_run(world, NEW_SHA)["details_url"]
    assert "?sig=" in private_link
    path = private_link.removeprefix("http://pinkflow.test")
    assert (await app.client.get(path)).status == 200
    assert (await app.client.get(path.split("?")[0])).status == 404


@pytest.mark.parametrize(
    "environment, opens",
    [("Preview", True), ("preview-pr-12", True), ("Preview – shop", True), ("PREVIEW", True), ("production", False), ("staging", False)],
)
async def test_only_preview_environments_open_proposals(app, world, environment, opens):
    await app.deliver(payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=77, environment=environment))
    assert bool(world.check_runs_for(REPO, SHA, name="Pinkflow governance")) is opens


async def test_a_failed_preview_or_one_for_no_open_pull_request_opens_nothing(app, world):
    await app.deliver(
        payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=78, state="failure"),
        payloads.preview_ready(repo=REPO, sha="b" * 40, deployment_id=79),
    )
    assert world.check_runs_for(REPO, SHA) == []
    assert world.comments_on(REPO, PR) == []


async def test_the_pull_request_is_found_from_stored_events_without_asking_github(app, world):
    await app.deliver(payloads.pull_request("opened", repo=REPO, number=PR, head_sha=SHA, author="alice"))
    await open_proposal(app)
    assert world.calls_for("repos/list-pull-requests-associated-with-commit") == []
    assert the_check_run(world)["status"] == "in_progress"


async def test_a_preview_of_a_pull_request_from_a_fork_opens_its_proposal(app, world):
    """GitHub does not find a fork's head commit by commit: the open pull requests are read."""
    fork_sha = "f" * 40
    world.add_pull(REPO, 77, head_sha=fork_sha, author="outsider", from_fork=True)
    await app.deliver(payloads.preview_ready(repo=REPO, sha=fork_sha, deployment_id=780))
    assert world.calls_for("repos/list-pull-requests-associated-with-commit")[0].status == 200
    assert the_check_run(world, fork_sha)["status"] == "in_progress"
    assert [c for c in world.comments_on(REPO, 77) if MARKER in c["body"]]


async def test_weights_follow_roles_and_the_latest_vote_counts(vote, app, world):
    await open_proposal(app)
    await app.deliver(
        vote("/reject", "ann"),  # admin, weight 3 ...
        vote("/approve changed my mind", "ann"),  # ... whose latest vote counts
        vote("/approve", "max"),  # maintain, 2
        vote("/reject", "tia"),  # triage: below write, not counted
        vote("/abstain on holiday", "dan"),  # write, counts toward quorum only
    )
    votes = (await seed_status(app))["votes"]
    assert votes["total"] == 3
    assert (votes["approvals"], votes["rejections"], votes["abstentions"]) == (2, 0, 1)
    assert (votes["approveWeight"], votes["rejectWeight"], votes["abstainWeight"]) == (5, 0, 1)
    assert votes["approvalRate"] == 100
    assert votes["isApproved"] is True
    run = the_check_run(world)
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    assert "changed my mind" in the_status_comment(world)["body"]


async def test_votes_on_a_freshly_opened_proposal_need_no_permission_look_up(vote, app, world):
    await open_proposal(app)
    assert len(world.calls_for("repos/list-collaborators")) == 1  # who may vote, read as it opened

    await app.deliver(vote("/approve", "ann"), vote("/approve", "max"), vote("/reject", "dan"), vote("/approve", "tia"))

    votes = (await seed_status(app))["votes"]
    assert (votes["approveWeight"], votes["rejectWeight"]) == (3 + 2, 1)  # roles as GitHub lists them; tia below write
    assert world.calls_for("repos/get-collaborator-permission-level") == []
    assert len(world.calls_for("repos/list-collaborators")) == 1


async def test_the_weight_is_fixed_when_the_vote_is_cast(vote, app, world):
    await open_proposal(app)
    await app.deliver(vote("/approve", "max"))
    world.set_permission(REPO, "max", "read")
    await app.deliver(vote("/approve", "ann"), vote("/approve", "dan"))
    votes = (await seed_status(app))["votes"]
    assert votes["approveWeight"] == 2 + 3 + 1


async def test_retract_withdraws_a_vote_and_the_pass_with_it(vote, app, world):
    await open_proposal(app)
    await app.deliver(vote("/approve", "ann"), vote("/approve", "max"), vote("/approve", "dan"))
    assert the_check_run(world)["conclusion"] == "success"
    await app.deliver(vote("/approve cancel", "dan"))
    votes = (await seed_status(app))["votes"]
    assert (votes["total"], votes["isApproved"]) == (2, False)
    # GitHub never reopens a completed check run: the vote goes on in a new one, without the button.
    runs = world.check_runs_for(REPO, SHA, name="Pinkflow governance")
    assert [r["status"] for r in runs].count("in_progress") == 1
    newest = max(runs, key=lambda r: r["id"])
    assert newest["status"] == "in_progress"
    assert world.check_run_actions[newest["id"]] == []


async def test_a_voter_whose_permission_was_lowered_since_may_still_retract(vote, app, world):
    await open_proposal(app)
    await app.deliver(vote("/approve", "ann"), vote("/approve", "dan"), vote("/approve", "max"))
    assert (await seed_status(app))["votes"]["isApproved"] is True
    world.set_permission(REPO, "dan", "read")
    # A minute later, as the App sees it: the roles it read are read again.
    app.runtime.github._permissions.clear()
    app.runtime.github._rosters.clear()
    retract = vote("/retract", "dan")
    await app.deliver(retract)
    votes = (await seed_status(app))["votes"]
    assert (votes["total"], votes["isApproved"]) == (2, False)
    assert world.reaction_contents(retract.payload["comment"]["id"]) == []
    # A vote needs the permission still; only one's own withdrawal does not.
    again = vote("/approve", "dan")
    await app.deliver(again)
    assert (await seed_status(app))["votes"]["total"] == 2
    assert world.reaction_contents(again.payload["comment"]["id"]) == ["confused"]


async def test_a_redelivered_vote_is_counted_once(vote, app, world):
    await open_proposal(app)
    delivery = vote("/approve", "ann")
    await app.deliver(delivery, delivery, delivery)
    assert (await seed_status(app))["votes"]["total"] == 1
    async with app.runtime.sessions() as session:
        ballots = list(await session.scalars(select(Ballot)))
    assert [(b.voter, b.choice, b.comment_id) for b in ballots] == [("ann", "approve", delivery.payload["comment"]["id"])]
    assert the_status_comment(world)["body"].count("| @ann ") == 1
    assert world.calls_for("reactions/create-for-issue-comment") == []  # counted: no reaction


async def test_promote_before_the_pass_is_refused_and_says_why(vote, app, world):
    await open_proposal(app)
    await app.deliver(vote("/approve", "ann"), vote("/promote", "ann"))
    assert world.calls_for("repos/create-deployment") == []
    assert "not promoted" in the_status_comment(world)["body"]


async def test_promote_needs_write_permission(vote, app, world):
    await open_proposal(app)
    await app.deliver(vote("/approve", "ann"), vote("/approve", "max"), vote("/approve", "dan"))
    await app.deliver(vote("/promote", "tia"))
    assert world.calls_for("repos/create-deployment") == []
    await app.deliver(vote("/promote", "dan"))
    [call] = world.calls_for("repos/create-deployment")
    assert call.json["payload"]["pinkflow"]["preview_url"] == "https://preview-abc.example.dev"
    assert (await seed_status(app))["status"] == "promoted"


async def test_the_promote_button_promotes_once(vote, app, world):
    await open_proposal(app)
    await app.deliver(vote("/approve", "ann"), vote("/approve", "max"), vote("/approve", "dan"))
    run = the_check_run(world)
    click = payloads.promote_clicked(repo=REPO, number=PR, check_run_id=run["id"], head_sha=SHA, clicker="max", external_id=run["external_id"])
    again = payloads.promote_clicked(repo=REPO, number=PR, check_run_id=run["id"], head_sha=SHA, clicker="ann", external_id=run["external_id"])
    await app.deliver(click, again)
    assert len(world.calls_for("repos/create-deployment")) == 1
    run = the_check_run(world)
    assert (run["conclusion"], world.check_run_actions[run["id"]]) == ("success", [])


async def test_a_push_supersedes_the_proposal_and_votes_do_not_carry_over(vote, app, world):
    await open_proposal(app)
    await app.deliver(vote("/approve", "ann"))
    world.push(REPO, PR, head_sha=NEW_SHA)
    await app.deliver(payloads.pull_request("synchronize", repo=REPO, number=PR, head_sha=NEW_SHA, author="alice"))
    old = the_check_run(world, SHA)
    assert (old["status"], old["conclusion"]) == ("completed", "neutral")
    await open_proposal(app, sha=NEW_SHA, deployment_id=502)
    assert the_check_run(world, NEW_SHA)["status"] == "in_progress"
    assert (await seed_status(app, 502))["votes"]["total"] == 0
    # Still one status comment on the pull request, now about the new commit.
    assert NEW_SHA[:7] in the_status_comment(world)["body"]


async def test_a_closed_pull_request_cancels_its_proposal(vote, app, world):
    await open_proposal(app)
    world.close_pull(REPO, PR)
    await app.deliver(payloads.pull_request("closed", repo=REPO, number=PR, head_sha=SHA, author="alice", state="closed"))
    run = the_check_run(world)
    assert (run["status"], run["conclusion"]) == ("completed", "cancelled")
    await app.deliver(vote("/approve", "ann"))
    assert (await seed_status(app))["votes"]["total"] == 0


async def test_a_voting_period_without_quorum_expires(vote, app, world, clock):
    await open_proposal(app)
    await app.deliver(vote("/approve", "ann"))
    clock.advance(hours=24, seconds=1)
    await app.runtime.service.close_due_proposals()
    await app.drain()
    run = the_check_run(world)
    assert (run["status"], run["conclusion"]) == ("completed", "timed_out")
    assert (await seed_status(app))["status"] == "expired"


async def test_a_voting_period_with_quorum_under_threshold_is_rejected(vote, app, world, clock):
    await open_proposal(app)
    await app.deliver(vote("/approve", "dan"), vote("/reject", "ann"), vote("/reject", "max"))
    clock.advance(hours=25)
    await app.runtime.service.close_due_proposals()
    await app.drain()
    assert the_check_run(world)["conclusion"] == "failure"
    assert (await seed_status(app))["status"] == "rejected"
    await app.deliver(vote("/approve", "ann"))
    assert (await seed_status(app))["votes"]["approvals"] == 1  # the late vote was not counted
    assert "voting has closed" in the_status_comment(world)["body"]


async def test_help_is_answered_with_the_command_list(vote, app, world):
    await open_proposal(app)
    await app.deliver(vote("/help", "tia"))
    replies = [c for c in world.comments_on(REPO, PR) if MARKER not in c["body"]]
    [reply] = [c for c in replies if "/approve" in c["body"]]
    assert "/reject" in reply["body"] and "/promote" in reply["body"]


async def test_comments_on_issues_that_are_not_pull_requests_are_ignored(app, world):
    await open_proposal(app)
    reactions_before = len(world.calls_for("reactions/create-for-issue-comment"))
    await app.deliver(payloads.posted_comment(world, "/approve", repo=REPO, number=PR, author="ann", on_pull_request=False))
    assert len(world.calls_for("reactions/create-for-issue-comment")) == reactions_before
    assert (await seed_status(app))["votes"]["total"] == 0


async def test_installation_defaults_from_the_environment(vote, tmp_path, world, app_private_key, clock, database_url):
    async with app_under_test(
        tmp_path, github_url=world.url, private_key=app_private_key, clock=clock, database_url=database_url,
        DAO_APPROVAL_THRESHOLD="60", DAO_MIN_VOTES="1", DAO_VOTING_PERIOD="2h",
    ) as app:
        await open_proposal(app)
        await app.deliver(vote("/approve", "dan"))
        status = await seed_status(app)
        assert status["votes"]["isApproved"] is True
        assert status["votes"]["threshold"] == 60
        assert status["closes_at"].startswith("2026-11-02T11:00")


async def test_the_status_api_answers_unknown_and_bad_ids_clearly(app):
    missing = await app.client.get("/api/deployments/status", params={"deploymentId": "99999"})
    assert missing.status == 404
    bad = await app.client.get("/api/deployments/status", params={"deploymentId": "abc"})
    assert bad.status == 400
