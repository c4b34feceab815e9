"""The check run and the status comment people see."""

import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from pinkflow_bot.governance.durations import format_duration
from pinkflow_bot.governance.render import (
    CHECK_RUN_NAME,
    MAX_CHECK_TEXT,
    MAX_COMMENT,
    PROMOTE_ACTION_ID,
    STATUS_MARKER,
    TRUNCATED,
    HealthView,
    PromotionView,
    ProposalView,
    escape_text,
    render_check_run,
    render_status_comment,
)
from pinkflow_bot.governance.rules import Rules
from pinkflow_bot.governance.tally import Ballot, Choice, tally

OPENED = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
RULES = Rules()


def make_view(state="voting", ballots=(), rules=RULES, **changes):
    values = {
        "id": 7,
        "repo_full_name": "acme/web",
        "pr_number": 42,
        "head_sha": "0123456789abcdef0123456789abcdef01234567",
        "preview_url": "https://web-git-feature-acme.vercel.app",
        "environment": "Preview – web",
        "state": state,
        "opened_at": OPENED,
        "closes_at": OPENED + rules.voting_period,
        "now": OPENED + timedelta(minutes=1),
        "rules": rules,
        "tally": tally(ballots, rules),
    }
    values.update(changes)
    return ProposalView(**values)


def votes(*specs):
    return [
        Ballot(voter=voter, choice=choice, weight=weight, sequence=n, reason=reason)
        for n, (voter, choice, weight, reason) in enumerate(specs, 1)
    ]


TWO_OF_THREE = votes(("alice", Choice.APPROVE, 2, ""), ("bob", Choice.REJECT, 1, ""))
PASSING = votes(
    ("alice", Choice.APPROVE, 3, "ship it"), ("bob", Choice.APPROVE, 1, ""), ("carol", Choice.ABSTAIN, 1, "")
)


def test_check_run_name():
    assert CHECK_RUN_NAME == "Pinkflow governance"


@pytest.mark.parametrize(
    ("state", "changes", "status", "conclusion"),
    [
        pytest.param("voting", {}, "in_progress", None, id="voting"),
        pytest.param("passed", {}, "completed", "success", id="passed"),
        pytest.param("passed", {"held_by": ("dave",)}, "in_progress", None, id="passed-held"),
        pytest.param("promoted", {}, "completed", "success", id="promoted"),
        pytest.param("rejected", {}, "completed", "failure", id="rejected"),
        pytest.param("expired", {}, "completed", "timed_out", id="expired"),
        pytest.param("superseded", {}, "completed", "neutral", id="superseded"),
        pytest.param("cancelled", {}, "completed", "cancelled", id="cancelled"),
    ],
)
def test_check_run_status_and_conclusion(state, changes, status, conclusion):
    output = render_check_run(make_view(state, PASSING, **changes))
    assert (output.status, output.conclusion) == (status, conclusion)
    github = output.as_github()
    assert github["status"] == status
    assert github.get("conclusion") == conclusion


@pytest.mark.parametrize(
    ("state", "ballots", "changes", "title"),
    [
        pytest.param("voting", TWO_OF_THREE, {}, "Voting: 2 of 3 votes, 66.67% approval (needs 75%)", id="voting"),
        pytest.param("voting", (), {}, "Voting: 0 of 3 votes, 0% approval (needs 75%)", id="no-votes"),
        pytest.param("passed", PASSING, {}, "Passed: 100% approval from 3 votes, ready to promote", id="passed"),
        pytest.param("passed", PASSING, {"held_by": ("dave", "erin")}, "Passed, on hold by @dave, @erin", id="held"),
        pytest.param("promoted", PASSING, {}, "Promoted to production", id="promoted"),
        pytest.param("rejected", TWO_OF_THREE, {}, "Rejected: 66.67% approval (needed 75%)", id="rejected"),
        pytest.param("expired", TWO_OF_THREE, {}, "Expired: 2 of 3 votes, quorum not met", id="expired"),
        pytest.param("superseded", (), {}, "Superseded by a newer commit", id="superseded"),
        pytest.param("cancelled", (), {}, "Cancelled: the pull request was closed", id="cancelled"),
    ],
)
def test_check_run_titles(state, ballots, changes, title):
    assert render_check_run(make_view(state, ballots, **changes)).title == title


def promote_actions(view):
    return [action for action in render_check_run(view).actions if action["identifier"] == PROMOTE_ACTION_ID]


@pytest.mark.parametrize(
    ("state", "changes", "offered"),
    [
        pytest.param("passed", {}, True, id="passed"),
        pytest.param("passed", {"promotion": PromotionView("dave", "failed", error="502")}, True, id="retry-after-failed-request"),
        pytest.param("passed", {"held_by": ("dave",)}, False, id="held"),
        pytest.param("passed", {"promotion": PromotionView("dave", "pending")}, False, id="promotion-pending"),
        pytest.param("passed", {"promotion": PromotionView("dave", "created", deployment_id=9)}, False, id="promotion-created"),
        pytest.param("passed", {"rules": Rules(min_voting_time=timedelta(hours=1))}, False, id="before-min-voting-time"),
        pytest.param(
            "passed",
            {"rules": Rules(preview_health_required=True), "health": HealthView(status=500)},
            False,
            id="unhealthy-preview",
        ),
        pytest.param(
            "passed",
            {"rules": Rules(preview_health_required=True), "health": HealthView(status=200, elapsed_ms=80)},
            True,
            id="healthy-preview",
        ),
        pytest.param("voting", {}, False, id="voting"),
        pytest.param("promoted", {}, False, id="promoted"),
        pytest.param("rejected", {}, False, id="rejected"),
        pytest.param("expired", {}, False, id="expired"),
        pytest.param("superseded", {}, False, id="superseded"),
        pytest.param("cancelled", {}, False, id="cancelled"),
    ],
)
def test_promote_button_only_when_promotable(state, changes, offered):
    view = make_view(state, PASSING, **{"rules": RULES, **changes})
    assert bool(promote_actions(view)) is offered


def test_promote_button_waits_for_min_voting_time_then_appears():
    rules = Rules(min_voting_time=timedelta(hours=1))
    early = make_view("passed", PASSING, rules=rules)
    assert "promotion waits" in render_check_run(early).title
    assert "1h" in render_check_run(early).title
    later = replace(early, now=OPENED + timedelta(hours=1))
    assert promote_actions(later)


def test_promote_action_respects_github_limits():
    rules = Rules(production_environment="production-europe-west-primary-cluster")
    (action,) = render_check_run(make_view("passed", PASSING, rules=rules)).actions
    assert action["label"] == "Promote"
    assert action["identifier"] == "promote"
    assert len(action["label"]) <= 20
    assert len(action["description"]) <= 40
    assert len(action["identifier"]) <= 20
    assert action["description"].startswith("Promote this preview to")


HUGE_REASON = "x" * 70_000
MANY_VOTERS = votes(*[(f"voter{n}", Choice.APPROVE, 1, f"reason {n} " + "y" * 600) for n in range(400)])


@pytest.mark.parametrize(
    "view",
    [
        pytest.param(make_view("voting", votes(("alice", Choice.REJECT, 1, HUGE_REASON))), id="one-huge-reason"),
        pytest.param(make_view("passed", MANY_VOTERS), id="many-voters"),
        pytest.param(
            make_view("voting", votes(*[(f"v{n}", Choice.REJECT, 1, "表示崩れ❌" * 100) for n in range(300)])),
            id="many-voters-in-japanese",
        ),
        pytest.param(make_view("voting", PASSING, notes=("n" * 70_000,)), id="huge-note"),
        pytest.param(make_view("voting", PASSING, notes=tuple(f"note {n} " + "z" * 400 for n in range(400))), id="many-notes"),
        pytest.param(
            make_view("passed", PASSING, held_by=tuple(f"holder{n}" for n in range(200))), id="many-holders"
        ),
        pytest.param(
            make_view("passed", PASSING, promotion=PromotionView("dave", "failed", error="e" * 70_000)), id="huge-error"
        ),
    ],
)
def test_github_limits_are_respected(view):
    output = render_check_run(view)
    assert len(output.title.encode()) <= 255
    assert len(output.summary.encode()) <= MAX_CHECK_TEXT  # GitHub counts bytes here
    assert len(output.text.encode()) <= MAX_CHECK_TEXT
    comment = render_status_comment(view)
    assert len(comment) <= MAX_COMMENT
    assert comment.startswith(STATUS_MARKER + "\n")


def test_a_huge_reason_is_cut_in_its_row():
    view = make_view("voting", votes(("alice", Choice.REJECT, 1, HUGE_REASON), ("bob", Choice.APPROVE, 1, "fine")))
    text = render_check_run(view).text
    assert "@bob" in text  # the other voter is still listed
    assert "x" * 501 not in text


def test_rows_left_out_are_counted():
    text = render_check_run(make_view("passed", MANY_VOTERS)).text
    shown = text.count("| ✅ approve |")
    assert 0 < shown < 400
    assert f"… and {400 - shown} more votes not shown." in text
    assert "@voter0 " in text


def test_overlong_summary_says_it_was_truncated():
    summary = render_check_run(make_view("voting", PASSING, notes=tuple("note " + "z" * 400 for _ in range(400)))).summary
    assert summary.endswith(TRUNCATED)


def test_comment_contains_the_marker_once_even_if_a_reason_quotes_it():
    view = make_view("voting", votes(("mallory", Choice.APPROVE, 1, STATUS_MARKER + " hi")))
    comment = render_status_comment(view)
    assert comment.count(STATUS_MARKER) == 1
    assert comment.splitlines()[0] == STATUS_MARKER


def unescaped_pipes(line):
    return len(re.findall(r"(?<!\\)\|", line))


@pytest.mark.parametrize("render", [render_status_comment, lambda view: render_check_run(view).text])
def test_reasons_cannot_break_the_table_or_inject_anything(render):
    nasty = "a | b\n| c | d |\n<script>alert(1)</script> cc @octocat and @acme/admins see #1 ![x](https://e.vil/p.png)"
    view = make_view("voting", votes(("mallory", Choice.APPROVE, 1, nasty), ("bob", Choice.REJECT, 1, "ok")))
    output = render(view)
    rows = [line for line in output.splitlines() if line.startswith("| @")]
    assert len(rows) == 2
    assert all(unescaped_pipes(row) == 5 for row in rows)
    assert "<script>" not in output and "</script>" not in output
    assert "&lt;script&gt;" in output
    assert "@octocat" not in output and "@acme/admins" not in output
    assert "@&#8203;octocat" in output
    assert "![x]" not in output
    assert "#1 " not in output


@pytest.mark.parametrize("render", [render_status_comment, lambda view: render_check_run(view).text])
def test_a_reason_naming_an_issue_the_gh_way_does_not_cross_reference_it(render):
    """GitHub links "GH-12" (any case) to issue 12 as it links "#12": the bot's outputs show
    the voter's words without putting a reference of the bot's into the issue's timeline."""
    view = make_view("voting", votes(("mallory", Choice.REJECT, 1, "reopens GH-12, gh-7 and Gh-3; SIGH-4 and GH-x stay")))
    output = render(view)
    assert re.search(r"(?i)\bGH-\d", output) is None
    assert "GH-&#8203;12" in output and "gh-&#8203;7" in output and "Gh-&#8203;3" in output
    assert "SIGH-4" in output and "GH-x" in output


def test_escape_text():
    assert escape_text("a|b") == "a\\|b"
    assert escape_text("line\nbreak") == "line break"
    assert escape_text("<b>&") == "&lt;b&gt;&amp;"
    assert escape_text("hi @you") == "hi @&#8203;you"
    assert escape_text("`code` *bold* _it_ [l](u)") == "\\`code\\` \\*bold\\* \\_it\\_ \\[l\\](u)"
    assert len(escape_text("w" * 1000)) == 500


def test_status_comment_shows_what_a_voter_needs():
    view = make_view(
        "voting",
        votes(("alice", Choice.APPROVE, 2, "looks good"), ("bob", Choice.REJECT, 1, "")),
        details_url="https://pinkflow.example/proposals/7?sig=abc",
        notes=("@zed: a vote on a closed proposal is not counted",),
        health=HealthView(status=200, elapsed_ms=123),
    )
    comment = render_status_comment(view)
    assert "Voting open" in comment
    assert "<https://web-git-feature-acme.vercel.app>" in comment
    assert "Preview – web" in comment
    assert "`0123456`" in comment
    assert "answers 200 in 123 ms" in comment
    assert "passes at 75% weighted approval · quorum 3 voters · voting period 24h" in comment
    assert "voters need write or above · weights admin 3, maintain 2, write 1" in comment
    assert "| @alice | ✅ approve | 2 | looks good |" in comment
    assert "| @bob | ❌ reject | 1 |  |" in comment
    assert "approve 1 (weight 2) · reject 1 (weight 1)" in comment
    assert "**66.67%** weighted approval" in comment
    assert "closes in 23h 59m" in comment
    for command in ("`/approve [reason]`", "`/reject [reason]`", "`/abstain [reason]`", "`/retract`"):
        assert command in comment
    assert "- @zed: a vote on a closed proposal is not counted" in comment
    assert "(https://pinkflow.example/proposals/7?sig=abc)" in comment


def test_time_left_and_closed():
    assert "closes in 3h 0m" not in render_status_comment(make_view(now=OPENED + timedelta(hours=21)))
    assert "closes in 3h" in render_status_comment(make_view(now=OPENED + timedelta(hours=21)))
    late = render_status_comment(make_view(now=OPENED + timedelta(hours=25)))
    assert "closes in" not in late and "closed" in late
    over = render_status_comment(make_view("rejected", TWO_OF_THREE, now=OPENED + timedelta(hours=25)))
    assert "closes in" not in over and "Voting closed" in over
    assert "How to vote" not in over
    # A pass before the deadline leaves the vote open: later votes can still change it.
    early_pass = render_status_comment(make_view("passed", PASSING))
    assert "Voting closes in" in early_pass and "2026-11-24 12:00 UTC" in early_pass
    assert "How to vote" in early_pass and "**To promote:**" in early_pass
    promoted = render_status_comment(make_view("promoted", PASSING))
    assert "How to vote" not in promoted and "Voting ended before its deadline" in promoted


@pytest.mark.parametrize(
    ("promotion", "shown"),
    [
        (PromotionView("dave", "pending"), "requested by @dave: starting."),
        (PromotionView("dave", "created", deployment_id=99), "(deployment 99): deployment created"),
        (PromotionView("dave", "in_progress", deployment_id=99), "deploying."),
        (PromotionView("dave", "success", environment_url="https://web.acme.example"), "deployed. <https://web.acme.example>"),
        (PromotionView("dave", "failure", deployment_id=99), "the deployment failed."),
        (PromotionView("dave", "failed", error="API said <no>"), "failed. Error: API said &lt;no&gt;"),
        (PromotionView("root", "pending", forced=True), "Forced promotion to production requested by @root"),
    ],
)
def test_promotion_state_is_shown(promotion, shown):
    comment = render_status_comment(make_view("passed", PASSING, promotion=promotion))
    assert shown in comment
    assert shown in render_check_run(make_view("passed", PASSING, promotion=promotion)).summary


def test_a_promotion_whose_last_try_failed_says_why_and_when_it_is_tried_again():
    now = OPENED + timedelta(minutes=1)
    retrying = PromotionView(
        "dave", "pending", error="Vercel answered 503 when asked to create the production deployment: <busy>",
        retry_at=now + timedelta(minutes=4, seconds=10), attempt=4, max_attempts=12,
    )
    view = make_view("passed", PASSING, now=now, promotion=retrying)
    line = (
        "Promotion to production requested by @dave: not made yet. The last try failed: Vercel answered 503 when "
        "asked to create the production deployment: &lt;busy&gt;. Trying again in 4m 10s (at 2026-11-23 12:05 UTC), "
        "try 4 of 12."
    )
    assert line in render_status_comment(view).replace("\\", "")
    check_run = render_check_run(view)
    assert line in check_run.summary.replace("\\", "")
    assert check_run.title == "Passed; promoting to production failed, trying again (try 4 of 12)"
    assert check_run.actions == ()  # no second promotion is offered meanwhile
    # Its next try is under way (or overdue): it is tried again now.
    under_way = make_view("passed", PASSING, now=now, promotion=replace(retrying, retry_at=None))
    assert "Trying again now, try 4 of 12." in render_status_comment(under_way)
    overdue = make_view("passed", PASSING, now=now + timedelta(hours=1), promotion=retrying)
    assert "Trying again now, try 4 of 12." in render_status_comment(overdue)


def test_rendering_is_deterministic():
    view = make_view("voting", PASSING, notes=("a",))
    assert render_status_comment(view) == render_status_comment(view)
    assert render_check_run(view) == render_check_run(view)


def test_unknown_states_are_refused():
    with pytest.raises(ValueError):
        make_view("merged")
    with pytest.raises(ValueError):
        PromotionView("dave", "done")


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(hours=24), "24h"),
        (timedelta(hours=23, minutes=59, seconds=59), "23h 59m"),
        (timedelta(hours=2), "2h"),
        (timedelta(minutes=5, seconds=30), "5m 30s"),
        (timedelta(seconds=45), "45s"),
        (timedelta(0), "0s"),
        (timedelta(seconds=-5), "0s"),
        (timedelta(days=3, hours=4), "3d 4h"),
        # Days from 48 hours on: 47h 59m still reads in hours.
        (timedelta(hours=47, minutes=59), "47h 59m"),
        (timedelta(hours=48), "2d"),
        (timedelta(days=2, hours=5, minutes=30), "2d 5h"),
        (timedelta(days=7, minutes=1), "7d"),
    ],
)
def test_format_duration(duration, text):
    assert format_duration(duration) == text


@pytest.mark.parametrize(
    ("login", "shown", "absent"),
    [
        ("pinkflow-bot[bot]", "@pinkflow-bot[bot]", None),
        ("dave", "@dave", None),
        ("mona_octo", "@mona_octo", None),  # an Enterprise Managed User
        ("eve <b>", "eve &lt;b&gt;", "@eve"),
        ("x@y", "x@&#8203;y", "@x"),
    ],
)
def test_logins_are_mentions_only_when_they_are_logins(login, shown, absent):
    comment = render_status_comment(make_view("passed", PASSING, promotion=PromotionView(login, "pending")))
    assert f"requested by {shown}" in comment
    if absent:
        assert absent not in comment


def test_rules_line_names_configured_people_without_mentioning_them():
    rules = Rules(user_weights={"alice": 5}, team_weights={"acme/core": 2}, min_permission="read")
    comment = render_status_comment(make_view(rules=rules))
    assert "user weights alice 5 · team weights acme/core 2" in comment
    assert "weights admin 3, maintain 2, write 1, triage 1, read 1" in comment
    assert "@alice" not in comment and "@acme" not in comment


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://web.example/path?x=1", "<https://web.example/path?x=1>"),
        ("javascript:alert(1)", "javascript:alert(1)"),
        ("https://a.example/)](https://evil.example", "https://a.example/)\\](https://evil.example"),
    ],
)
def test_preview_links_are_only_made_from_plain_web_addresses(url, shown):
    comment = render_status_comment(make_view(preview_url=url))
    assert f"**Preview:** {shown} " in comment


# --- The audit trail and an unusable configuration ------------------------------------------

from pinkflow_bot.governance.config import ConfigProblem  # noqa: E402
from pinkflow_bot.governance.render import AuditLine  # noqa: E402


def audit_lines(count):
    """`count` entries, newest first, as storage hands them over."""
    return tuple(
        AuditLine(at=OPENED + timedelta(minutes=n), actor=f"voter{n}", action="vote", detail=f"approve (weight 1) #{n}")
        for n in range(count - 1, -1, -1)
    )


def test_the_check_run_text_shows_the_audit_trail_newest_first():
    trail = (
        AuditLine(at=OPENED + timedelta(minutes=2), actor="mallory", action="tampering", detail="edited @alice's comment"),
        AuditLine(at=OPENED + timedelta(minutes=1), actor="alice", action="vote", detail="approve (weight 3)"),
        AuditLine(at=OPENED, actor="pinkflow", action="opened", detail="preview https://x.example"),
    )
    text = render_check_run(make_view("voting", PASSING, audit=trail)).text
    assert "Audit trail" in text
    tampering, vote, opened = (text.index(word) for word in ("tampering", "approve (weight 3)", "opened"))
    assert tampering < vote < opened
    assert "2026-11-23 12:02:00 UTC · mallory · tampering" in text
    assert "@alice" not in text.split("Audit trail")[1]  # named, not mentioned


def test_a_long_audit_trail_keeps_the_newest_entries_within_githubs_limit():
    trail = audit_lines(5000)
    output = render_check_run(make_view("passed", MANY_VOTERS, audit=trail, audit_total=6000))
    assert len(output.text.encode()) <= MAX_CHECK_TEXT
    assert "voter4999 · vote" in output.text  # the newest
    assert "voter0 · vote" not in output.text  # the oldest did not fit
    shown = output.text.count(" · vote: ")
    assert f"… and {6000 - shown} older entries not shown." in output.text
    assert "| ✅ approve |" in output.text  # the votes are still there


def test_a_proposal_under_an_invalid_configuration_fails_and_offers_no_promotion():
    problems = (ConfigProblem("threshold", 1, "must be a whole percentage from 0 to 100"),)
    view = make_view("passed", PASSING, config_problems=problems)
    output = render_check_run(view)
    assert (output.status, output.conclusion, output.actions) == ("completed", "failure", ())
    assert "line 1, threshold: must be a whole percentage" in output.summary
    comment = render_status_comment(view)
    assert "invalid .github/pinkflow.yml" in comment and "line 1, threshold" in comment
    assert "To promote" not in comment


def test_under_an_invalid_configuration_the_comment_says_what_becomes_of_votes_instead_of_no_votes_yet():
    problems = (ConfigProblem("threshold", 1, "must be a whole percentage from 0 to 100"),)
    comment = render_status_comment(make_view("voting", config_problems=problems, notes=("@dan: not counted",)))
    assert "No votes yet" not in comment
    assert (
        "Votes are not counted while the file cannot be used. They stay in their comments: once the file is fixed "
        "on the default branch, the App reads this pull request's comments again and counts the votes in them "
        "(if the fix is not seen, comment `/status`)."
    ) in comment
    assert comment.index("line 1, threshold") < comment.index("Votes are not counted") < comment.index("@dan")


def test_a_failing_preview_shows_its_status_and_time():
    view = make_view("voting", health=HealthView(status=503, elapsed_ms=87))
    assert "Preview health: answers 503 in 87 ms." in render_status_comment(view)


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        ("no answer within 5 s", "Preview health: no answer within 5 s."),
        ("no answer: its host name was not found", "Preview health: no answer: its host name was not found."),
        ("not checked: 10.0.0.8 is not a public address", "Preview health: not checked: 10.0.0.8 is not a public address."),
    ],
)
def test_a_preview_without_an_answer_says_why_once(error, shown):
    comment = render_status_comment(make_view("voting", health=HealthView(error=error)))
    assert shown in comment
    assert "(no answer" not in comment and "no answer (" not in comment


def test_a_hold_is_shown_while_the_vote_is_still_open():
    comment = render_status_comment(make_view("voting", TWO_OF_THREE, held_by=("dan",)))
    assert "Promotion is on hold by @dan until `/unhold`." in comment


# --- GitHub measures check-run texts in UTF-8 bytes (github/docs#35252) ---------------------


def utf8_size(text: str) -> int:
    return len(text.encode("utf-8"))


JAPANESE_REASON = "モバイル表示が崩れているので、修正されるまで承認できません。" * 20  # 3 bytes a character
JAPANESE_VOTERS = votes(*[(f"voter{n}", Choice.REJECT, 1, JAPANESE_REASON) for n in range(200)])


def test_reasons_in_japanese_keep_the_check_run_within_githubs_byte_limit():
    view = make_view("voting", JAPANESE_VOTERS)
    output = render_check_run(view)
    assert utf8_size(output.summary) <= MAX_CHECK_TEXT
    assert utf8_size(output.text) <= MAX_CHECK_TEXT
    shown = output.text.count("| ❌ reject |")
    assert 0 < shown < 200
    assert f"… and {200 - shown} more votes not shown." in output.text
    assert "@voter0 " in output.text
    # The comment is limited in characters, not bytes: it still shows what fits in those.
    comment = render_status_comment(view)
    assert len(comment) <= MAX_COMMENT
    assert comment.count("| ❌ reject |") > shown


def test_a_long_ascii_audit_trail_keeps_the_check_run_text_within_githubs_byte_limit():
    output = render_check_run(make_view("passed", PASSING, audit=audit_lines(5000), audit_total=5000))
    assert utf8_size(output.text) <= MAX_CHECK_TEXT
    assert "voter4999 · vote" in output.text
    shown = output.text.count(" · vote: ")
    assert f"… and {5000 - shown} older entries not shown." in output.text
    assert "| ✅ approve |" in output.text


def test_an_audit_trail_under_an_invalid_configuration_stays_within_githubs_byte_limit():
    problems = (ConfigProblem("threshold", 1, "must be a whole percentage from 0 to 100"),)
    output = render_check_run(make_view("voting", PASSING, config_problems=problems, audit=audit_lines(5000)))
    assert utf8_size(output.text) <= MAX_CHECK_TEXT
    shown = output.text.count(" · vote: ")
    assert f"… and {5000 - shown} older entries not shown." in output.text


def test_configuration_problems_in_japanese_keep_the_summary_within_githubs_byte_limit():
    problems = tuple(ConfigProblem(f"voters.users.{'利用者' * 160}{n}", n, "is not a GitHub login") for n in range(60))
    output = render_check_run(make_view("voting", PASSING, config_problems=problems))
    assert utf8_size(output.summary) <= MAX_CHECK_TEXT
    assert output.summary.endswith(TRUNCATED)
    assert "line 0" not in output.summary and "line 1, voters.users." in output.summary


def test_a_summary_cut_in_the_middle_of_japanese_text_ends_on_a_whole_character():
    notes = tuple(f"メモ {n}: " + "プレビューの確認が必要です。" * 40 for n in range(200))
    summary = render_check_run(make_view("voting", PASSING, notes=notes)).summary
    assert utf8_size(summary) <= MAX_CHECK_TEXT
    assert summary.endswith("\n\n" + TRUNCATED)
    assert "\ufffd" not in summary


def test_a_long_production_name_in_japanese_keeps_the_title_and_button_within_githubs_limits():
    rules = Rules(production_environment="本番環境" * 60)
    title = render_check_run(make_view("promoted", PASSING, rules=rules)).title
    assert utf8_size(title) <= 255
    assert title.startswith("Promoted to 本番環境")
    [action] = render_check_run(make_view("passed", PASSING, rules=rules)).actions
    assert utf8_size(action["description"]) <= 40
    assert action["description"].startswith("Promote this preview to 本番")
