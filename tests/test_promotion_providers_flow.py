"""Every promotion provider end to end through the App under test, each promoting at most
once per proposal: `github`, `protection_rule`, `vercel` (against a local fake Vercel API)
and `webhook` (against a local receiver that checks the signature)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from pinkflow_bot.effects import MAX_EFFECT_ATTEMPTS
from tests import payloads
from tests.fake_vercel import FakeVercel
from tests.flow import (  # noqa: F401  (fixtures)
    PROMOTION_SECRET,
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
    set_rules,
    status,
    status_comment,
    vote_fixture,
    world_fixture,
)

PASS = ("/approve", "ann"), ("/approve", "max"), ("/approve", "dan")
REVIEW = "actions/review-custom-gates-for-run"


async def passed(app, vote, **preview):
    await open_proposal(app, **preview)
    await app.deliver(*(vote(body, who) for body, who in PASS))


def click(world, clicker: str):
    run = check_run(world)
    return payloads.promote_clicked(
        repo=REPO, number=PR, check_run_id=run["id"], head_sha=SHA, clicker=clicker, external_id=run["external_id"]
    )


async def retry_due(app, clock):
    """Lets the effects that wait for their retry time run."""
    clock.advance(minutes=10)
    await app.drain()


# --- github ----------------------------------------------------------------------------------


async def test_github_a_lost_answer_then_a_retry_creates_one_deployment(app, world, vote, clock):
    await passed(app, vote)
    world.fail("repos/create-deployment", status=502, effect_applied=True)
    await app.deliver(vote("/promote", "dan"), click(world, "max"))
    await retry_due(app, clock)
    assert len(world.deployments_of(REPO)) == 1
    [created] = [c for c in world.calls_for("repos/create-deployment")]  # no second creation
    assert created.json["ref"] == SHA and created.json["auto_merge"] is False and created.json["required_contexts"] == []
    assert (await status(app))["status"] == "promoted"


async def test_github_a_refused_deployment_is_shown_and_may_be_asked_for_again(app, world, vote, clock):
    await passed(app, vote)
    world.fail("repos/create-deployment", status=422, body={"message": "Conflict: Commit status checks failed for main."})
    world.errors.clear()
    await app.deliver(vote("/promote", "dan"))
    assert "Commit status checks failed" in status_comment(world)
    assert (await status(app))["promotion"]["state"] == "failed"
    await app.deliver(vote("/promote", "dan"))
    assert len(world.deployments_of(REPO)) == 1
    assert (await status(app))["status"] == "promoted"


def _closed(world):
    world.close_pull(REPO, PR)
    return payloads.pull_request("closed", repo=REPO, number=PR, head_sha=SHA, author="alice", state="closed")


def _pushed(world):
    world.add_pull(REPO, PR, head_sha="d" * 40, author="alice")
    return payloads.pull_request("synchronize", repo=REPO, number=PR, head_sha="d" * 40, author="alice")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda world, vote: vote("/hold waiting for the release notes", "ann"), "on hold"),
        (lambda world, vote: _closed(world), "the proposal is cancelled"),
        (lambda world, vote: _pushed(world), "the proposal is superseded"),
    ],
    ids=["hold", "closed", "new push"],
)
async def test_github_a_promotion_waiting_for_its_retry_is_not_made_once_its_reason_is_gone(
    app, world, vote, clock, change, reason
):
    await passed(app, vote)
    world.fail("repos/create-deployment", status=502)  # nothing created; retried later
    await app.deliver(vote("/promote", "dan"))
    assert (await status(app))["promotion"]["state"] == "pending"

    await app.deliver(change(world, vote))
    await retry_due(app, clock)

    assert world.deployments_of(REPO) == []
    assert len(world.calls_for("repos/create-deployment")) == 1  # only the one that failed
    [cancelled] = await audit(app, "promotion cancelled")
    assert cancelled.detail == reason
    assert (await status(app))["promotion"]["state"] == "failed"


async def test_github_a_promotion_asked_again_after_a_lost_answer_finds_the_first_deployment(app, world, vote, clock):
    await passed(app, vote)
    # The first call went through but its answer was lost, and every retry failed too.
    world.fail("repos/create-deployment", status=502, effect_applied=True)
    world.fail("repos/list-deployments", status=502, times=100)
    await app.deliver(vote("/promote", "dan"))
    for _ in range(15):
        await retry_due(app, clock)
    assert (await status(app))["promotion"]["state"] == "failed"
    world._faults.clear()

    await app.deliver(vote("/promote", "dan"))
    assert len(world.deployments_of(REPO)) == 1
    assert len(world.calls_for("repos/create-deployment")) == 1
    assert (await status(app))["status"] == "promoted"


# --- protection_rule -------------------------------------------------------------------------


@pytest.fixture
def protection_rule(world):
    set_rules(world, "promote:\n  provider: protection_rule\n")


async def test_protection_rule_a_waiting_run_is_approved_once_the_vote_passes(app, world, vote, protection_rule):
    waiting = payloads.protection_rule_requested(repo=REPO, sha=SHA, run_id=9001)
    await app.deliver(waiting)
    await open_proposal(app)
    await app.deliver(vote("/approve", "ann"), vote("/approve", "max"))
    assert world.protection_reviews == []  # kept until the proposal is decided
    await app.deliver(vote("/approve", "dan"), waiting, click(world, "ann"), vote("/promote", "max"))
    [review] = world.protection_reviews
    assert (review["run_id"], review["environment_name"], review["state"]) == (9001, "production", "approved")
    assert "passed" in review["comment"]
    assert (await status(app))["status"] == "promoted"
    assert world.deployments_of(REPO) == []  # the waiting workflow deploys, not the App


async def test_protection_rule_a_run_that_asks_after_the_pass_is_approved_at_once(app, world, vote, protection_rule):
    await passed(app, vote)
    assert world.protection_reviews == []
    await app.deliver(payloads.protection_rule_requested(repo=REPO, sha=SHA, run_id=9002, environment="Production"))
    [review] = world.protection_reviews
    assert (review["run_id"], review["environment_name"], review["state"]) == (9002, "Production", "approved")


@pytest.mark.parametrize(("votes", "outcome"), [(PASS[:1], "expired"), ((("/reject", "ann"), ("/reject", "max"), ("/approve", "dan")), "rejected")])
async def test_protection_rule_a_vote_that_does_not_pass_answers_rejected(app, world, vote, clock, protection_rule, votes, outcome):
    await open_proposal(app)
    waiting = payloads.protection_rule_requested(repo=REPO, sha=SHA, run_id=9003)
    await app.deliver(waiting, *(vote(b, w) for b, w in votes))
    clock.advance(hours=25)
    await app.runtime.service.close_due_proposals()
    await app.drain()
    [review] = world.protection_reviews
    assert review["state"] == "rejected"
    assert (await status(app))["status"] == outcome
    # Answered once: the sweeper running again, or the request delivered again, adds nothing.
    await app.runtime.service.close_due_proposals()
    await app.deliver(waiting)
    assert len(world.protection_reviews) == 1


async def test_protection_rule_a_rerun_job_is_answered_again(app, world, vote, protection_rule):
    """A re-run job keeps its workflow run's id and waits on the rule anew: it is answered
    again, not left waiting until GitHub gives up on it."""
    await passed(app, vote)
    await app.deliver(payloads.protection_rule_requested(repo=REPO, sha=SHA, run_id=9005))
    assert [(r["run_id"], r["state"]) for r in world.protection_reviews] == [(9005, "approved")]
    # The deploy failed for another reason; "Re-run jobs" asks again for the same run.
    await app.deliver(payloads.protection_rule_requested(repo=REPO, sha=SHA, run_id=9005))
    assert [(r["run_id"], r["state"]) for r in world.protection_reviews] == [(9005, "approved"), (9005, "approved")]


async def test_protection_rule_the_deployment_of_a_rerun_job_is_followed(app, world, vote, protection_rule):
    await passed(app, vote)
    await app.deliver(payloads.protection_rule_requested(repo=REPO, sha=SHA, run_id=9009))
    await production_status(app, deployment_id=910, state="in_progress")
    await production_status(app, deployment_id=910, state="failure")
    assert "the deployment failed" in status_comment(world)
    # "Re-run jobs": approved again, and its job deploys as a new GitHub deployment.
    await app.deliver(payloads.protection_rule_requested(repo=REPO, sha=SHA, run_id=9009))
    await production_status(app, deployment_id=911, state="in_progress")
    assert "deploying" in status_comment(world)
    await production_status(app, deployment_id=911, state="success", url="https://shop.example.com")
    comment = status_comment(world)
    assert "deployed" in comment and "https://shop.example.com" in comment
    assert (await status(app))["promotion"]["state"] == "success"
    # A late word of the first attempt changes nothing.
    await production_status(app, deployment_id=910, state="failure")
    assert (await status(app))["promotion"]["state"] == "success"


async def test_protection_rule_a_rerun_job_is_answered_after_github_never_took_the_first_answer(
    app, world, vote, clock, protection_rule
):
    await passed(app, vote)
    world.fail(REVIEW, status=503, times=MAX_EFFECT_ATTEMPTS)
    await app.deliver(payloads.protection_rule_requested(repo=REPO, sha=SHA, run_id=9008))
    for _ in range(MAX_EFFECT_ATTEMPTS):
        await retry_due(app, clock)
    assert world.protection_reviews == [] and len(world.calls_for(REVIEW)) == MAX_EFFECT_ATTEMPTS  # given up on
    await app.deliver(payloads.protection_rule_requested(repo=REPO, sha=SHA, run_id=9008))
    assert [(r["run_id"], r["state"]) for r in world.protection_reviews] == [(9008, "approved")]


async def test_protection_rule_a_forced_promotion_does_not_tell_the_run_the_vote_passed(app, world, vote, protection_rule):
    set_rules(world, "promote:\n  provider: protection_rule\n  allow_force: true\n")
    await open_proposal(app)
    await app.deliver(payloads.protection_rule_requested(repo=REPO, sha=SHA, run_id=9006), vote("/reject", "max"))
    await app.deliver(vote("/promote --force hotfix", "ann"))
    [review] = world.protection_reviews
    assert review["state"] == "approved"
    assert "passed" not in review["comment"]
    assert "was overridden: ann forced the promotion: 1 vote, 0% weighted approval" in review["comment"]


async def test_protection_rule_a_review_github_refuses_is_in_the_audit_trail(app, world, vote, protection_rule):
    await app.deliver(payloads.protection_rule_requested(repo=REPO, sha=SHA, run_id=9007))
    await open_proposal(app)
    world.fail(REVIEW, status=422, body={"message": "No pending custom deployment protection rule for this run"})
    await app.deliver(*(vote(body, who) for body, who in PASS))
    assert world.protection_reviews == []
    [refused] = await audit(app, "deployment review refused")
    assert refused.detail.startswith("workflow run 9007 to production: GitHub refused to approve")
    assert "(422): No pending custom deployment protection rule for this run" in refused.detail
    assert "deployment review refused" in check_run(world)["output"]["text"]
    # Answered all the same: nothing is sent again for that run.
    await app.runtime.service.close_due_proposals()
    await app.drain()
    assert len(world.calls_for(REVIEW)) == 1


async def test_protection_rule_a_hold_keeps_the_run_waiting(app, world, vote, protection_rule):
    await open_proposal(app)
    await app.deliver(payloads.protection_rule_requested(repo=REPO, sha=SHA, run_id=9004), vote("/hold", "dan"))
    await app.deliver(*(vote(body, who) for body, who in PASS))
    assert world.protection_reviews == []
    await app.deliver(vote("/unhold", "dan"))
    assert [r["state"] for r in world.protection_reviews] == ["approved"]


def test_the_protection_rule_request_the_tests_send_is_one_github_sends():
    from jsonschema import Draft7Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7

    from tests.paths import shared_dir

    root = shared_dir() / "github" / "webhook-schemas"
    schemas = [json.loads(path.read_text()) for path in root.rglob("*.schema.json")]
    registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema, default_specification=DRAFT7)) for schema in schemas
    )
    schema = json.loads((root / "deployment_protection_rule" / "requested.schema.json").read_text())
    payload = payloads.protection_rule_requested(repo=REPO, sha=SHA, run_id=1).payload
    assert list(Draft7Validator(schema, registry=registry).iter_errors(payload)) == []


# --- vercel ----------------------------------------------------------------------------------

VERCEL_TOKEN = "vercel-token-for-the-flow"
VERCEL_TEAM = "team_octo"
VERCEL_PREVIEW = "shop-git-feature-octo.vercel.app"


@pytest.fixture
async def vercel() -> AsyncIterator[FakeVercel]:
    fake = FakeVercel(token=VERCEL_TOKEN, team_id=VERCEL_TEAM)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def vercel_app(make_app, world, vercel):
    set_rules(world, "promote:\n  provider: vercel\n")
    project = vercel.add_project("shop")
    vercel.add_deployment(project, url=VERCEL_PREVIEW, meta={"githubCommitSha": SHA})
    app = await make_app(VERCEL_TOKEN=VERCEL_TOKEN, VERCEL_TEAM_ID=VERCEL_TEAM, VERCEL_API_URL=vercel.url)
    app.vercel_project = project
    return app


async def test_vercel_the_preview_is_found_by_its_url_and_promoted_once(vercel_app, world, vote, vercel):
    app = vercel_app
    await passed(app, vote, url=f"https://{VERCEL_PREVIEW}")
    await app.deliver(vote("/promote", "dan"), click(world, "ann"), vote("/promote", "max"))
    [production] = vercel.production_deployments(app.vercel_project)
    [lookup, *_] = vercel.calls_to("get-deployment")
    assert lookup.path == f"/v13/deployments/{VERCEL_PREVIEW}" and lookup.query["teamId"] == VERCEL_TEAM
    assert len(vercel.calls_to("create-deployment")) == 1
    assert (await status(app))["status"] == "promoted"
    assert production["url"] in status_comment(world)
    assert world.deployments_of(REPO) == []


async def test_vercel_a_lost_answer_then_a_retry_creates_one_production_deployment(vercel_app, world, vote, vercel, clock):
    app = vercel_app
    await passed(app, vote, url=f"https://{VERCEL_PREVIEW}")
    vercel.fail("create-deployment", status=502, effect_applied=True)
    await app.deliver(vote("/promote", "dan"))
    assert (await status(app))["status"] == "passed"  # waiting for the retry
    await retry_due(app, clock)
    assert len(vercel.production_deployments(app.vercel_project)) == 1
    assert (await status(app))["status"] == "promoted"


async def test_vercel_a_refused_token_is_shown_without_the_token(make_app, world, vote, vercel):
    set_rules(world, "promote:\n  provider: vercel\n")
    vercel.add_deployment(vercel.add_project("shop"), url=VERCEL_PREVIEW)
    app = await make_app(VERCEL_TOKEN="not-the-token", VERCEL_TEAM_ID=VERCEL_TEAM, VERCEL_API_URL=vercel.url)
    await passed(app, vote, url=f"https://{VERCEL_PREVIEW}")
    await app.deliver(vote("/promote", "dan"))
    comment = status_comment(world).replace("\\", "")  # as GitHub renders the escaped text
    assert "VERCEL_TOKEN was refused" in comment and "not-the-token" not in comment
    assert (await status(app))["promotion"]["state"] == "failed"


# --- webhook ---------------------------------------------------------------------------------

SECRET = PROMOTION_SECRET


async def test_webhook_one_signed_post_per_proposal_even_when_retried(make_app, world, vote, clock, receiver):
    hook, url = receiver
    set_rules(world, f"promote:\n  provider: webhook\n  webhook_url: {url}\n")
    app = await make_app(PROMOTION_WEBHOOK_SECRET=SECRET)
    await passed(app, vote)
    hook.answers = [503]
    await app.deliver(vote("/promote", "dan"), click(world, "max"))
    await retry_due(app, clock)
    assert len(hook.received) == 2  # the 503, then the promotion
    (first_headers, first_body), (headers, body) = hook.received
    assert first_headers["X-Pinkflow-Delivery"] == headers["X-Pinkflow-Delivery"] and first_body == body
    sent = json.loads(body)
    assert (sent["event"], sent["head_sha"], sent["pr_number"], sent["repo_full_name"]) == ("promote", SHA, PR, REPO)
    assert sent["preview_url"] == "https://preview-abc.example.dev"
    assert (await status(app))["status"] == "promoted"
    await app.deliver(vote("/promote", "ann"))
    assert len(hook.received) == 2


async def test_webhook_without_a_secret_nothing_is_sent(make_app, world, vote, receiver):
    hook, url = receiver
    set_rules(world, f"promote:\n  provider: webhook\n  webhook_url: {url}\n")
    app = await make_app()
    await passed(app, vote)
    await app.deliver(vote("/promote", "dan"))
    assert hook.received == []
    assert "PROMOTION_WEBHOOK_SECRET is not set" in status_comment(world).replace("\\", "")


# --- the production deployment, followed ---------------------------------------------------


async def production_status(app, *, deployment_id: int, state: str, environment: str = "production", url: str = ""):
    await app.deliver(
        payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=deployment_id, environment=environment, state=state, url=url)
    )


async def test_the_production_deployment_of_a_webhook_promotion_is_followed_by_commit_and_environment(
    make_app, world, vote, receiver
):
    hook, url = receiver
    set_rules(world, f"promote:\n  provider: webhook\n  webhook_url: {url}\n")
    app = await make_app(PROMOTION_WEBHOOK_SECRET=SECRET)
    await passed(app, vote)
    await app.deliver(vote("/promote", "dan"))
    # The receiver's CD reports its own GitHub deployment to production at the promoted commit.
    await production_status(app, deployment_id=880, state="in_progress", environment="Production – shop")
    assert "deploying" in status_comment(world)
    await production_status(app, deployment_id=880, state="success", environment="Production – shop", url="https://shop.example.com")
    comment = status_comment(world)
    assert "deployed" in comment and "https://shop.example.com" in comment
    assert (await status(app))["promotion"]["state"] == "success"


# --- a promotion tried again, as the people who asked for it see it --------------------------

CLASS_NAMES = ("PromotionUnavailable", "PromotionRefused", "GitHubBroken", "TimeoutError", "ClientError")


async def shown_everywhere(app, world) -> dict[str, str]:
    """What people see of the proposal: the status comment, the check run, its page and its JSON."""
    run = check_run(world)
    proposal_id = (await status(app))["proposal_id"]
    page = await app.client.get(f"/proposals/{proposal_id}")
    api = await app.client.get(f"/api/proposals/{proposal_id}")
    return {
        "comment": status_comment(world).replace("\\", ""),  # as GitHub renders the escaped text
        "title": run["output"]["title"],
        "check run": run["output"]["summary"].replace("\\", ""),
        "page": await page.text(),
        "api": await api.text(),
    }


def without_class_names(shown: dict[str, str]) -> None:
    for where, text in shown.items():
        assert not [name for name in CLASS_NAMES if name in text], f"a class name in the {where}"


async def promotion_json(app) -> dict:
    proposal_id = (await status(app))["proposal_id"]
    response = await app.client.get(f"/api/proposals/{proposal_id}")
    return (await response.json())["proposal"]["promotion"]


def edits(world) -> int:
    return len(world.calls_for("issues/update-comment")) + len(world.calls_for("checks/update"))


async def test_github_failing_shows_the_failure_and_when_it_is_tried_again_until_it_goes_through(app, world, vote, clock):
    await passed(app, vote)
    world.fail("repos/create-deployment", status=502, times=2, headers={"Retry-After": "120"})
    await app.deliver(vote("/promote", "dan"))

    shown = await shown_everywhere(app, world)
    failed = "The last try failed: GitHub answered 502 when asked to create the production deployment."
    assert f"requested by @dan: not made yet. {failed} Trying again in 2m (at 2026-11-02 09:02 UTC), try 2 of 12." in shown["comment"]
    assert shown["title"] == "Passed; promoting to production failed, trying again (try 2 of 12)"
    assert failed in shown["check run"] and "Trying again in 2m" in shown["check run"]
    assert "the last try failed, trying again (try 2 of 12)" in shown["page"]
    assert "GitHub answered 502 when asked to create the production deployment" in shown["page"]
    assert "Trying again" in shown["page"] and "try 2 of 12." in shown["page"]  # the page tells time by the wall clock
    promotion = await promotion_json(app)
    assert promotion["state"] == "pending"
    assert promotion["error"] == "GitHub answered 502 when asked to create the production deployment"
    assert (promotion["attempt"], promotion["max_attempts"]) == (2, MAX_EFFECT_ATTEMPTS)
    assert promotion["retry_at"].startswith("2026-11-02T09:02:0")
    without_class_names(shown)

    # The second try fails too: one edit of the comment and one of the check run say so.
    before = edits(world)
    clock.advance(minutes=3)
    await app.drain()
    assert edits(world) - before == 2
    assert "Trying again in 2m (at 2026-11-02 09:05 UTC), try 3 of 12." in status_comment(world)
    assert check_run(world)["output"]["title"] == "Passed; promoting to production failed, trying again (try 3 of 12)"

    clock.advance(minutes=3)
    await app.drain()
    shown = await shown_everywhere(app, world)
    assert "deployment created" in shown["comment"] and "last try failed" not in shown["comment"]
    assert shown["title"] == "Promoted to production"
    promotion = await promotion_json(app)
    assert (promotion["state"], promotion["error"], promotion["retry_at"], promotion["attempt"]) == ("created", None, None, None)
    assert len(world.deployments_of(REPO)) == 1


async def test_github_failing_for_good_says_so_in_plain_words(app, world, vote, clock):
    await passed(app, vote)
    world.fail("repos/create-deployment", status=503, times=100)
    await app.deliver(vote("/promote", "dan"))
    for _ in range(MAX_EFFECT_ATTEMPTS + 2):
        await retry_due(app, clock)

    assert len(world.calls_for("repos/create-deployment")) == MAX_EFFECT_ATTEMPTS
    shown = await shown_everywhere(app, world)
    gave_up = "GitHub answered 503 when asked to create the production deployment (gave up after 12 tries in "
    assert f"requested by @dan: failed. Error: {gave_up}" in shown["comment"]
    assert gave_up in shown["check run"] and gave_up in shown["page"]
    assert shown["title"] == "Passed; the promotion failed, try again with Promote"
    assert "Trying again" not in shown["comment"] and "Trying again" not in shown["page"]
    promotion = await promotion_json(app)
    assert promotion["state"] == "failed" and promotion["error"].startswith(gave_up)
    assert promotion["retry_at"] is None
    without_class_names(shown)
    [failure] = await audit(app, "promotion failed")
    assert failure.detail.startswith(gave_up)


async def test_webhook_receiver_failing_shows_its_answer_and_the_next_try(make_app, world, vote, clock, receiver):
    hook, url = receiver
    set_rules(world, f"promote:\n  provider: webhook\n  webhook_url: {url}\n")
    app = await make_app(PROMOTION_WEBHOOK_SECRET=SECRET)
    await passed(app, vote)
    hook.answers = [500] * 100
    await app.deliver(vote("/promote", "dan"))

    shown = await shown_everywhere(app, world)
    assert "not made yet. The last try failed: the promotion webhook answered 500: ok. Trying again" in shown["comment"]
    assert "try 2 of 12." in shown["comment"]
    assert shown["title"] == "Passed; promoting to production failed, trying again (try 2 of 12)"
    without_class_names(shown)

    for _ in range(MAX_EFFECT_ATTEMPTS + 2):
        await retry_due(app, clock)
    shown = await shown_everywhere(app, world)
    assert "failed. Error: the promotion webhook answered 500: ok (gave up after 12 tries in " in shown["comment"]
    without_class_names(shown)


async def test_vercel_failing_shows_its_answer_and_the_next_try(vercel_app, world, vote, vercel, clock):
    app = vercel_app
    await passed(app, vote, url=f"https://{VERCEL_PREVIEW}")
    vercel.fail("create-deployment", status=503, times=100, body={"error": {"code": "internal", "message": "try later"}})
    await app.deliver(vote("/promote", "dan"))

    shown = await shown_everywhere(app, world)
    failed = "The last try failed: Vercel answered 503 when asked to create the production deployment: try later."
    assert f"not made yet. {failed} Trying again" in shown["comment"]
    assert (await promotion_json(app))["attempt"] == 2
    without_class_names(shown)

    for _ in range(MAX_EFFECT_ATTEMPTS + 2):
        await retry_due(app, clock)
    comment = status_comment(world)
    assert "failed. Error: Vercel answered 503 when asked to create the production deployment: try later (gave up" in comment
    assert vercel.production_deployments(app.vercel_project) == []
