"""Outcomes over time, and who may vote or promote."""

from datetime import datetime, timedelta, timezone

import pytest

from pinkflow_bot.governance.decision import (
    Outcome,
    auto_promotion_due,
    decide,
    promotion_refusal,
    vote_refusal,
    voting_deadline,
)
from pinkflow_bot.governance.permissions import Permission
from pinkflow_bot.governance.rules import Rules
from pinkflow_bot.governance.tally import Ballot, Choice, tally

OPENED = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
CLOSES = voting_deadline(opened_at=OPENED, rules=Rules())


def make_tally(*choices):
    return tally([Ballot(f"voter{n}", choice, 1, sequence=n) for n, choice in enumerate(choices)], Rules())


PASSING = make_tally(Choice.APPROVE, Choice.APPROVE, Choice.APPROVE)
FAILING_WITH_QUORUM = make_tally(Choice.APPROVE, Choice.REJECT, Choice.REJECT)
NO_QUORUM = make_tally(Choice.APPROVE, Choice.APPROVE)


def test_deadline_is_the_voting_period_after_opening():
    assert CLOSES == OPENED + timedelta(hours=24)
    assert voting_deadline(opened_at=OPENED, rules=Rules(voting_period=timedelta(hours=6))) == OPENED + timedelta(hours=6)


@pytest.mark.parametrize(
    ("t", "now", "expected"),
    [
        pytest.param(PASSING, OPENED, Outcome.PASSED, id="passes-early"),
        pytest.param(FAILING_WITH_QUORUM, OPENED, Outcome.VOTING, id="failing-but-open"),
        pytest.param(NO_QUORUM, CLOSES - timedelta(seconds=1), Outcome.VOTING, id="last-second"),
        pytest.param(PASSING, CLOSES, Outcome.PASSED, id="passed-at-deadline"),
        pytest.param(FAILING_WITH_QUORUM, CLOSES, Outcome.REJECTED, id="rejected-at-deadline"),
        pytest.param(NO_QUORUM, CLOSES, Outcome.EXPIRED, id="expired-at-deadline"),
        pytest.param(FAILING_WITH_QUORUM, CLOSES + timedelta(days=3), Outcome.REJECTED, id="rejected-late"),
        pytest.param(make_tally(), CLOSES + timedelta(days=3), Outcome.EXPIRED, id="nobody-voted"),
    ],
)
def test_decide(t, now, expected):
    assert decide(t, now=now, closes_at=CLOSES) is expected


@pytest.mark.parametrize(
    ("voter", "is_bot", "permission", "rules", "expected"),
    [
        pytest.param("dave", False, Permission.WRITE, Rules(), None, id="writer-votes"),
        pytest.param("dave", False, Permission.ADMIN, Rules(), None, id="admin-votes"),
        pytest.param("dave", False, Permission.READ, Rules(), "needs write permission or above, has read (`voters.min_permission` in .github/pinkflow.yml)", id="reader"),
        pytest.param("dave", False, Permission.NONE, Rules(), "needs write permission or above, has none (`voters.min_permission` in .github/pinkflow.yml)", id="outsider"),
        pytest.param("dave", False, Permission.READ, Rules(min_permission="read"), None, id="readers-allowed"),
        pytest.param(
            "dave", False, Permission.WRITE, Rules(min_permission="maintain"),
            "needs maintain permission or above, has write (`voters.min_permission` in .github/pinkflow.yml)", id="maintainers-only",
        ),
        pytest.param("ci", True, Permission.ADMIN, Rules(), "bots do not vote", id="bot-type"),
        pytest.param("dependabot[bot]", False, Permission.WRITE, Rules(), "bots do not vote", id="bot-login"),
        pytest.param("Renovate[BOT]", False, Permission.WRITE, Rules(), "bots do not vote", id="bot-login-case"),
        pytest.param("Author", False, Permission.ADMIN, Rules(), "authors do not vote on their own pull request (`voters.allow_author` in .github/pinkflow.yml)", id="author"),
        pytest.param("author", False, Permission.ADMIN, Rules(allow_author=True), None, id="author-allowed"),
        pytest.param(
            "author", False, Permission.READ, Rules(allow_author=True),
            "needs write permission or above, has read (`voters.min_permission` in .github/pinkflow.yml)", id="author-allowed-still-needs-permission",
        ),
    ],
)
def test_vote_refusal(voter, is_bot, permission, rules, expected):
    assert vote_refusal(voter=voter, voter_is_bot=is_bot, permission=permission, author="AUTHOR", rules=rules) == expected


FORCE_RULES = Rules(allow_force=True)
AFTER_OPENING = OPENED + timedelta(minutes=5)


def refusal(**changes):
    arguments = {
        "outcome": Outcome.PASSED,
        "held": False,
        "requester_permission": Permission.WRITE,
        "rules": Rules(),
        "opened_at": OPENED,
        "now": AFTER_OPENING,
    }
    arguments.update(changes)
    return promotion_refusal(**arguments)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param({}, None, id="passed"),
        pytest.param({"already_promoted": True}, "already promoted", id="twice"),
        pytest.param(
            {"already_promoted": True, "force": True, "requester_permission": Permission.ADMIN, "rules": FORCE_RULES},
            "already promoted", id="force-never-promotes-twice",
        ),
        pytest.param(
            {"requester_permission": Permission.TRIAGE},
            "promoting needs write permission or above, has triage (`promote.permission` in .github/pinkflow.yml)", id="too-little-permission",
        ),
        pytest.param(
            {"requester_permission": Permission.WRITE, "rules": Rules(promote_permission="admin")},
            "promoting needs admin permission or above, has write (`promote.permission` in .github/pinkflow.yml)", id="configured-permission",
        ),
        pytest.param({"held": True}, "on hold", id="held"),
        pytest.param({"outcome": Outcome.VOTING}, "the vote has not passed", id="voting"),
        pytest.param({"outcome": Outcome.REJECTED}, "the vote has not passed", id="rejected"),
        pytest.param({"outcome": Outcome.EXPIRED, "held": True}, "on hold", id="hold-named-first"),
        pytest.param(
            {"rules": Rules(min_voting_time=timedelta(hours=2))},
            "the vote must stay open for at least 2h (1h 55m left)", id="min-voting-time",
        ),
        pytest.param(
            {"rules": Rules(min_voting_time=timedelta(hours=2)), "closes_at": OPENED + timedelta(hours=1)},
            "the vote must stay open for at least 2h (1h 55m left)", id="min-voting-time-while-open",
        ),
        pytest.param(
            {"rules": Rules(voting_period=timedelta(hours=1), min_voting_time=timedelta(hours=2)),
             "now": OPENED + timedelta(hours=1), "closes_at": OPENED + timedelta(hours=1)},
            "the minimum voting time (2h from the vote's opening) ends in 1h", id="min-voting-time-after-the-vote-closed",
        ),
        pytest.param(
            {"rules": Rules(min_voting_time=timedelta(minutes=5))}, None, id="min-voting-time-just-reached",
        ),
        pytest.param(
            {"rules": Rules(min_voting_time=timedelta(minutes=5)), "now": AFTER_OPENING - timedelta(milliseconds=500)},
            "the vote must stay open for at least 5m (1s left)", id="min-voting-time-under-a-second-left",
        ),
        pytest.param(
            {"force": True, "requester_permission": Permission.ADMIN, "rules": FORCE_RULES,
             "outcome": Outcome.REJECTED, "held": True},
            None, id="admin-forces-whatever-the-outcome",
        ),
        pytest.param(
            {"force": True, "requester_permission": Permission.MAINTAIN, "rules": FORCE_RULES,
             "outcome": Outcome.VOTING},
            "only admins may force a promotion (has maintain)", id="force-needs-admin",
        ),
        pytest.param(
            {"force": True, "requester_permission": Permission.ADMIN, "outcome": Outcome.VOTING},
            "forced promotion is not enabled for this repository (`promote.allow_force` in .github/pinkflow.yml)", id="force-disabled",
        ),
        pytest.param(
            {"force": True, "requester_permission": Permission.READ, "rules": FORCE_RULES},
            "promoting needs write permission or above, has read (`promote.permission` in .github/pinkflow.yml)", id="force-still-needs-promote-permission",
        ),
        pytest.param(
            {"rules": Rules(preview_health_required=True)},
            "the preview must answer without error first (its health is unknown)", id="health-unknown",
        ),
        pytest.param(
            {"rules": Rules(preview_health_required=True), "preview_healthy": False},
            "the preview must answer without error first (its health is failing)", id="health-failing",
        ),
        pytest.param(
            {"rules": Rules(preview_health_required=True), "preview_healthy": True}, None, id="health-ok",
        ),
        pytest.param({"preview_healthy": False}, None, id="health-not-required"),
    ],
)
def test_promotion_refusal(changes, expected):
    assert refusal(**changes) == expected


@pytest.mark.parametrize(
    ("rules", "changes", "expected"),
    [
        pytest.param(Rules(auto_promote=True), {}, True, id="auto"),
        pytest.param(Rules(), {}, False, id="not-configured"),
        pytest.param(Rules(auto_promote=True), {"held": True}, False, id="held"),
        pytest.param(Rules(auto_promote=True), {"already_promoted": True}, False, id="done"),
        pytest.param(Rules(auto_promote=True), {"outcome": Outcome.VOTING}, False, id="not-passed"),
        pytest.param(
            Rules(auto_promote=True, min_voting_time=timedelta(hours=1)), {}, False, id="too-early",
        ),
        pytest.param(
            Rules(auto_promote=True, preview_health_required=True), {"preview_healthy": True}, True,
            id="health-required-and-healthy",
        ),
        pytest.param(
            Rules(auto_promote=True, preview_health_required=True), {"preview_healthy": False}, False,
            id="health-required-and-failing",
        ),
        pytest.param(
            Rules(auto_promote=True, preview_health_required=True), {}, False, id="health-required-and-unknown",
        ),
    ],
)
def test_auto_promotion_due(rules, changes, expected):
    arguments = {
        "outcome": Outcome.PASSED,
        "held": False,
        "rules": rules,
        "opened_at": OPENED,
        "now": AFTER_OPENING,
        "already_promoted": False,
    }
    arguments.update(changes)
    assert auto_promotion_due(**arguments) is expected
