"""Markdown for the check run and the status comment, from a snapshot of a proposal.

Everything here is deterministic: the current time comes in with the view. Text that
people typed (reasons, errors) is escaped so it cannot break a table, mention
anyone or inject HTML; notes are written by the bot and shown as they are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from .config import CONFIG_PATH, CONFIG_REFERENCE, ConfigProblem
from .decision import Outcome, proposal_blocker
from .durations import format_duration
from .permissions import Permission
from .rules import LOGIN_PATTERN, Rules
from .tally import Ballot, Choice, Tally

CHECK_RUN_NAME = "Pinkflow governance"
STATUS_MARKER = "<!-- pinkflow:status -->"
PROMOTE_ACTION_ID = "promote"
# Check-run limits are counted in UTF-8 bytes: GitHub documents "characters" but refuses
# a summary or text over 65535 bytes ("summary exceeds a maximum bytesize of 65535",
# github/docs#35252). Its description gives the title no limit; 255 is ours, and the
# action fields' documented sizes are kept in bytes too, which holds either way.
MAX_CHECK_TEXT = 65535  # bytes, a check run's summary and its text each
MAX_TITLE = 255  # bytes
MAX_COMMENT = 65536  # characters, GitHub's limit on a comment body (at most 4 bytes each)
MAX_ACTION_LABEL = 20  # bytes
MAX_ACTION_DESCRIPTION = 40  # bytes
MAX_ACTION_IDENTIFIER = 20  # bytes
MAX_REASON_SHOWN = 500
TRUNCATED = "… (truncated)"

PROPOSAL_STATES = ("voting", "passed", "rejected", "expired", "superseded", "cancelled", "promoted")
PROMOTION_STATES = ("pending", "created", "failed", "in_progress", "success", "failure")
# Promotions that are under way or done: no second one is offered.
_PROMOTION_ACTIVE = frozenset({"pending", "created", "in_progress", "success", "failure"})


@dataclass(frozen=True)
class PromotionView:
    requested_by: str
    state: str
    deployment_id: int | None = None
    environment_url: str | None = None
    error: str | None = None
    forced: bool = False
    # A pending promotion whose last try failed (its provider answered 5xx, or not at all)
    # has that failure in `error`; the next try is `attempt` of at most `max_attempts`, due
    # at `retry_at` (None while it is under way).
    retry_at: datetime | None = None
    attempt: int | None = None
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.state not in PROMOTION_STATES:
            raise ValueError(f"unknown promotion state {self.state!r}")

    @property
    def retrying(self) -> bool:
        """Waiting to be tried again after a failed try."""
        return self.state == "pending" and bool(self.error)


@dataclass(frozen=True)
class HealthView:
    """The last check of the preview URL: an HTTP status, or the error that prevented one."""

    status: int | None = None
    elapsed_ms: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 400


@dataclass(frozen=True)
class AuditLine:
    """One entry of the proposal's append-only audit trail: who did what, and when."""

    at: datetime
    actor: str
    action: str
    detail: str = ""


@dataclass(frozen=True)
class ProposalView:
    id: int
    repo_full_name: str
    pr_number: int
    head_sha: str
    preview_url: str | None
    environment: str | None
    state: str
    opened_at: datetime
    closes_at: datetime
    now: datetime
    rules: Rules
    tally: Tally
    held_by: tuple[str, ...] = ()
    promotion: PromotionView | None = None
    details_url: str | None = None
    notes: tuple[str, ...] = ()
    health: HealthView | None = None
    superseded_by: str | None = None  # the newer head SHA, for a superseded proposal
    # Newest first; the check run shows as many as fit and says how many older ones it left out.
    audit: tuple[AuditLine, ...] = ()
    audit_total: int | None = None  # how many entries there are in all, when `audit` is not all of them
    # Problems of `.github/pinkflow.yml` when the proposal opened (or was last refreshed):
    # while there are any, nothing is promoted and the check run says what to fix.
    config_problems: tuple[ConfigProblem, ...] = ()

    def __post_init__(self) -> None:
        if self.state not in PROPOSAL_STATES:
            raise ValueError(f"unknown proposal state {self.state!r}")
        object.__setattr__(self, "held_by", tuple(self.held_by))
        object.__setattr__(self, "notes", tuple(self.notes))
        object.__setattr__(self, "audit", tuple(self.audit))
        object.__setattr__(self, "config_problems", tuple(self.config_problems))


@dataclass(frozen=True)
class CheckRunOutput:
    status: str
    conclusion: str | None
    title: str
    summary: str
    text: str
    actions: tuple[dict[str, str], ...] = ()

    def as_github(self) -> dict[str, Any]:
        """The fields of a create/update check run request that this output decides."""
        body: dict[str, Any] = {
            "status": self.status,
            "output": {"title": self.title, "summary": self.summary, "text": self.text},
            "actions": [dict(action) for action in self.actions],
        }
        if self.conclusion is not None:
            body["conclusion"] = self.conclusion
        return body


# --- Escaping and small formatting helpers ------------------------------------------

_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]~|])")
# "#12" and "GH-12" (any case) link to issue 12, and a link from the bot would reference it.
_ISSUE_REFERENCE = re.compile(r"#(?=\d)|(?<![A-Za-z0-9_])GH-(?=\d)", re.IGNORECASE)
_SAFE_URL = re.compile(r"https?://[^\s<>()\[\]\"'`\\]+", re.IGNORECASE)
_LOGIN = re.compile(LOGIN_PATTERN + r"(?:\[bot\])?")  # an app's bot user: "name[bot]"
_ZERO_WIDTH_SPACE = "&#8203;"


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, with "…" where it was cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…"


def utf8_size(text: str) -> int:
    """How many bytes `text` takes in UTF-8, the way GitHub measures check-run texts."""
    return len(text.encode("utf-8", errors="surrogatepass"))


def _utf8_prefix(text: str, limit: int) -> str:
    """The longest start of `text` that takes at most `limit` bytes, ending on a whole character."""
    encoded = text.encode("utf-8", errors="surrogatepass")
    if len(encoded) <= limit:
        return text
    end = max(limit, 0)
    while end > 0 and encoded[end] & 0xC0 == 0x80:  # a continuation byte: the character straddles the cut
        end -= 1
    return encoded[:end].decode("utf-8", errors="surrogatepass")


def clip_bytes(text: str, limit: int) -> str:
    """`text` cut to at most `limit` bytes of UTF-8, with "…" where it was cut."""
    if utf8_size(text) <= limit:
        return text
    return _utf8_prefix(text, limit - utf8_size("…")).rstrip() + "…"


def escape_text(text: str, *, limit: int = MAX_REASON_SHOWN) -> str:
    """User text made safe for one line of markdown, including a table cell.

    Line breaks become spaces; `&`, `<` and `>` become entities so no HTML gets
    through; markdown punctuation (including `|`) is backslash-escaped; `@`, `#123` and
    `GH-123` get a zero-width space so nobody is mentioned and no issue is cross-referenced.
    """
    text = clip(" ".join(text.split()), limit)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKDOWN_PUNCTUATION.sub(r"\\\1", text)
    text = _ISSUE_REFERENCE.sub(lambda reference: reference.group(0) + _ZERO_WIDTH_SPACE, text)
    return text.replace("@", "@" + _ZERO_WIDTH_SPACE)


def _login(login: str) -> str:
    """@login for a GitHub account; anything that is not a login is shown as plain text,
    never as a mention of someone else."""
    if _LOGIN.fullmatch(login):
        return "@" + login
    return escape_text(login, limit=100)


def _logins(logins: tuple[str, ...]) -> str:
    return ", ".join(_login(login) for login in logins)


def _link(url: str) -> str:
    return f"<{url}>" if _SAFE_URL.fullmatch(url) else escape_text(url)


def _environment(name: str) -> str:
    """Environment names come from deployers and configuration: shown, never interpreted."""
    return escape_text(name, limit=200)


def _percent(rate: float) -> str:
    return f"{rate:g}%"


def _utc(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _fit(text: str, limit: int, *, in_characters: bool = False) -> str:
    """`text` within `limit` bytes of UTF-8 (characters with `in_characters`), cut at a
    line end with a visible marker."""
    measure = len if in_characters else utf8_size
    if measure(text) <= limit:
        return text
    tail = "\n\n" + TRUNCATED
    room = limit - measure(tail)
    cut = text[:room] if in_characters else _utf8_prefix(text, room)
    line_end = cut.rfind("\n")
    if line_end > 0:
        cut = cut[:line_end]
    return cut + tail


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def rules_line(rules: Rules) -> str:
    """The rules in one line, as shown in the comment and the check run."""
    eligible = [level for level in sorted(Permission, reverse=True) if level >= rules.min_permission]
    weights = ", ".join(f"{level.label} {rules.weights.get(level, 0)}" for level in eligible)
    parts = [
        f"passes at {rules.threshold}% weighted approval",
        f"quorum {_plural(rules.min_votes, 'voter')}",
        f"voting period {format_duration(rules.voting_period)}",
    ]
    if rules.min_voting_time:
        parts.append(f"promotion after at least {format_duration(rules.min_voting_time)} of voting")
    parts.append(f"voters need {rules.min_permission.label} or above")
    parts.append(f"weights {weights}")
    if rules.user_weights:
        # Plain names: the rules should not mention every configured person on every pull request.
        users = ", ".join(f"{escape_text(login)} {weight}" for login, weight in sorted(rules.user_weights.items()))
        parts.append(f"user weights {users}")
    if rules.team_weights:
        teams = ", ".join(f"{escape_text(team)} {weight}" for team, weight in sorted(rules.team_weights.items()))
        parts.append(f"team weights {teams}")
    parts.append("the author may vote" if rules.allow_author else "the author does not vote")
    return " · ".join(parts)


# --- What the state means -------------------------------------------------------------

_CHOICE_LABELS = {
    Choice.APPROVE: "✅ approve",
    Choice.REJECT: "❌ reject",
    Choice.ABSTAIN: "➖ abstain",
    Choice.RETRACT: "retracted",
}


# Why a proposal that is not (or no longer) passed offers no promotion, by its state.
_NOT_PROMOTABLE = {
    "voting": "the vote has not passed",
    "promoted": "it has been promoted already",
    "rejected": "the vote was rejected",
    "expired": "the vote expired without a quorum",
    "superseded": "a newer commit superseded it",
    "cancelled": "the pull request was closed",
}


def promotion_blocker(view: ProposalView) -> str | None:
    """Why the Promote button is not offered for a passed proposal; None when it is."""
    if view.config_problems:
        return f"{CONFIG_PATH} on the default branch is invalid"
    if view.state != "passed":
        return _NOT_PROMOTABLE[view.state]
    if view.promotion is not None and view.promotion.state in _PROMOTION_ACTIVE:
        return "a promotion has already been requested"
    return proposal_blocker(
        outcome=Outcome.PASSED,
        held=bool(view.held_by),
        rules=view.rules,
        opened_at=view.opened_at,
        now=view.now,
        preview_healthy=None if view.health is None else view.health.ok,
        closes_at=view.closes_at,
    )


def is_promotable(view: ProposalView) -> bool:
    """Passed, not held, not yet promoted, and past the minimum time and health checks."""
    return promotion_blocker(view) is None


def _vote_count(t: Tally, rules: Rules) -> str:
    if t.quorum_met:
        return f"{_plural(t.total, 'vote')} (quorum {rules.min_votes} met)"
    return f"{t.total} of {rules.min_votes} votes"


def _title(view: ProposalView) -> str:
    t, rules = view.tally, view.rules
    production = view.rules.production_environment
    if view.state == "voting":
        return f"Voting: {_vote_count(t, rules)}, {_percent(t.approval_rate)} approval (needs {rules.threshold}%)"
    if view.state == "passed":
        passed = f"Passed: {_percent(t.approval_rate)} approval from {_plural(t.total, 'vote')}"
        if view.held_by:
            return f"Passed, on hold by {_logins(view.held_by)}"
        promotion = view.promotion
        if promotion is not None and promotion.state == "failure":
            return f"Passed; the {production} deployment failed"
        if promotion is not None and promotion.retrying:
            count = retry_count(promotion)
            return f"Passed; promoting to {production} failed, trying again" + (f" ({count})" if count else "")
        if promotion is not None and promotion.state in _PROMOTION_ACTIVE:
            return f"Passed: promoting to {production}"
        if promotion is not None and promotion.state == "failed":
            return "Passed; the promotion failed, try again with Promote"
        blocker = promotion_blocker(view)
        if blocker is not None:
            return f"{passed}; promotion waits: {blocker}"
        return f"{passed}, ready to promote"
    if view.state == "promoted":
        return f"Promoted to {production}"
    if view.state == "rejected":
        return f"Rejected: {_percent(t.approval_rate)} approval (needed {rules.threshold}%)"
    if view.state == "expired":
        return f"Expired: {t.total} of {rules.min_votes} votes, quorum not met"
    if view.state == "superseded":
        return f"Superseded by {view.superseded_by[:7]}" if view.superseded_by else "Superseded by a newer commit"
    return "Cancelled: the pull request was closed"


def _rate_reached(t: Tally, rules: Rules) -> bool:
    decisive = t.approve_weight + t.reject_weight
    return t.approve_weight > 0 and 100 * t.approve_weight >= rules.threshold * decisive


def _decision_sentence(view: ProposalView) -> str:
    t, rules = view.tally, view.rules
    production = _environment(rules.production_environment)
    rate = _percent(t.approval_rate)
    if view.state == "voting":
        missing = []
        if not t.quorum_met:
            missing.append(f"{_plural(rules.min_votes - t.total, 'more vote')} for the quorum")
        if not _rate_reached(t, rules):
            missing.append(f"a weighted approval of at least {rules.threshold}% (now {rate})")
        held = f" Promotion is on hold by {_logins(view.held_by)} until `/unhold`." if view.held_by else ""
        if not missing:
            return "The vote is open." + held
        return f"The vote is open. To pass it needs {' and '.join(missing)}.{held}"
    if view.state == "passed":
        sentence = f"The vote passed with {rate} weighted approval from {_plural(t.total, 'vote')}."
        if view.held_by:
            return f"{sentence} Promotion is on hold by {_logins(view.held_by)} until `/unhold`."
        blocker = promotion_blocker(view)
        if blocker is None:
            return f"{sentence} It can be promoted to {production} with the Promote button or `/promote`."
        if view.promotion is None or view.promotion.state == "failed":
            return f"{sentence} Promotion waits: {blocker}."
        return sentence
    if view.state == "promoted":
        return f"The vote passed and this preview was promoted to {production}."
    if view.state == "rejected":
        return (
            f"The vote closed without passing: {rate} weighted approval, "
            f"{rules.threshold}% was needed. This preview will not be promoted."
        )
    if view.state == "expired":
        return (
            f"The voting period ended with {t.total} of the {rules.min_votes} votes needed for a quorum. "
            "This preview will not be promoted."
        )
    if view.state == "superseded":
        newer = f"Commit `{view.superseded_by}`" if view.superseded_by else "A newer commit"
        return f"Superseded by a newer commit: {newer} was pushed; voting continues on its preview. Votes here no longer count."
    return "The pull request was closed, so this vote is over."


def _time_line(view: ProposalView) -> str:
    # A passed vote stays open until the deadline: later votes can still change it.
    if view.state in ("voting", "passed") and view.now < view.closes_at:
        left = format_duration(view.closes_at - view.now)
        return f"⏳ Voting closes in {left} (at {_utc(view.closes_at)})."
    if view.state == "voting":
        return f"⌛ Voting closed at {_utc(view.closes_at)}; the result is being counted."
    if view.now < view.closes_at:
        return f"Voting ended before its deadline ({_utc(view.closes_at)})."
    return f"Voting closed at {_utc(view.closes_at)}."


def _promotion_line(view: ProposalView) -> str | None:
    promotion = view.promotion
    if promotion is None:
        return None
    production = _environment(view.rules.production_environment)
    who = "Forced promotion" if promotion.forced else "Promotion"
    deployment = f" (deployment {promotion.deployment_id})" if promotion.deployment_id is not None else ""
    start = f"{who} to {production} requested by {_login(promotion.requested_by)}{deployment}"
    if promotion.retrying:
        failed = _sentence(f"The last try failed: {escape_text(promotion.error)}")
        return f"{start}: not made yet. {failed} {next_try_words(promotion, now=view.now)}"
    if promotion.state == "pending":
        line = f"{start}: starting."
    elif promotion.state == "created":
        line = f"{start}: deployment created, waiting for it to start."
    elif promotion.state == "in_progress":
        line = f"{start}: deploying."
    elif promotion.state == "success":
        line = f"{start}: deployed."
    elif promotion.state == "failure":
        line = f"{start}: the deployment failed."
    else:
        line = f"{start}: failed."
    if promotion.environment_url:
        line += f" {_link(promotion.environment_url)}"
    if promotion.error:
        line += f" Error: {escape_text(promotion.error)}"
    return line


def retry_count(promotion: PromotionView) -> str | None:
    """Which try of a promotion comes next, e.g. "try 4 of 12"; None when not known."""
    if promotion.attempt and promotion.max_attempts:
        return f"try {promotion.attempt} of {promotion.max_attempts}"
    return None


def next_try_words(promotion: PromotionView, *, now: datetime) -> str:
    """When a promotion whose last try failed is tried again, as the status comment, the check
    run and the proposal's page say it, e.g. "Trying again in 4m 10s (at 2026-11-02 09:05 UTC),
    try 4 of 12."
    """
    if promotion.retry_at is not None and promotion.retry_at - now >= timedelta(seconds=1):
        when = f"in {format_duration(promotion.retry_at - now)} (at {_utc(promotion.retry_at)})"
    else:
        when = "now"
    count = retry_count(promotion)
    return f"Trying again {when}, {count}." if count else f"Trying again {when}."


def _sentence(text: str) -> str:
    text = text.rstrip()
    return text if text.endswith((".", "!", "?", "…")) else text + "."


def preview_health_words(health: HealthView, rules: Rules) -> str:
    """The preview's last check in plain words, as the status comment, the check run and the
    proposal's page all say it, e.g. "answers 503 in 87 ms. Promotion needs it to answer
    without error."
    """
    required = " Promotion needs it to answer without error." if rules.preview_health_required else ""
    if health.status is not None:
        timing = f" in {health.elapsed_ms} ms" if health.elapsed_ms is not None else ""
        return f"answers {health.status}{timing}." + ("" if health.ok else required)
    # The error says itself what happened ("no answer within 5 s", "not checked: ...").
    return f"{clip(' '.join((health.error or 'no answer').split()), 200)}.{required}"


def _health_line(view: ProposalView) -> str | None:
    if view.health is None:
        return None
    # Escaped whole: an error may repeat what a preview's host or address said.
    return "Preview health: " + escape_text(preview_health_words(view.health, view.rules), limit=MAX_REASON_SHOWN)


def _preview_line(view: ProposalView) -> str:
    sha = escape_text(view.head_sha[:7], limit=7)
    where = _link(view.preview_url) if view.preview_url else "no preview URL"
    environment = f" (environment {_environment(view.environment)})" if view.environment else ""
    return f"**Preview:** {where}{environment} at `{sha}`"


def _notes(view: ProposalView) -> list[str]:
    return [f"- {clip(' '.join(note.split()), MAX_REASON_SHOWN)}" for note in view.notes if note.strip()]


def _ballot_row(ballot: Ballot) -> str:
    reason = escape_text(ballot.reason) if ballot.reason else ""
    return f"| {_login(ballot.voter)} | {_CHOICE_LABELS[ballot.choice]} | {ballot.weight} | {reason} |"


def tally_table(t: Tally, *, budget: int = MAX_CHECK_TEXT, in_characters: bool = False) -> str:
    """The voters table; rows that would go over `budget` bytes of UTF-8 (characters with
    `in_characters`) are counted instead."""
    measure = len if in_characters else utf8_size
    if not t.ballots:
        return "_No votes yet._"
    header = "| Voter | Vote | Weight | Reason |\n| --- | --- | ---: | --- |"
    rows: list[str] = []
    used = measure(header)
    for index, ballot in enumerate(t.ballots):
        row = _ballot_row(ballot)
        # Room for this row and for the line that says how many were left out.
        if used + measure(row) + 1 + 60 > budget:
            rows.append(f"\n_… and {_plural(len(t.ballots) - index, 'more vote')} not shown._")
            break
        rows.append("\n" + row)
        used += measure(row) + 1
    return header + "".join(rows)


def _audit_row(line: AuditLine) -> str:
    at = line.at.astimezone(timezone.utc) if line.at.tzinfo is not None else line.at
    detail = f": {escape_text(line.detail, limit=300)}" if line.detail.strip() else ""
    # Plain names, not mentions: the trail names many people and should notify none.
    who = escape_text(line.actor, limit=100)
    return f"- {at.strftime('%Y-%m-%d %H:%M:%S')} UTC · {who} · {escape_text(line.action, limit=60)}{detail}"


def audit_section(lines: Sequence[AuditLine], *, total: int | None = None, budget: int = MAX_CHECK_TEXT) -> str:
    """The audit trail, newest first, in at most `budget` bytes of UTF-8; the older
    entries that do not fit are counted instead of shown. Empty when there is nothing to show."""
    if not lines:
        return ""
    total = max(total or 0, len(lines))
    header = "### Audit trail (newest first)"
    rows = [header]
    used = utf8_size(header)
    for line in lines:
        row = _audit_row(line)
        # Room for this row and for the line that says how many were left out.
        if used + utf8_size(row) + 1 + 60 > budget:
            break
        rows.append(row)
        used += utf8_size(row) + 1
    left_out = total - (len(rows) - 1)
    if left_out > 0:
        rows.append(f"_… and {left_out} older {'entry' if left_out == 1 else 'entries'} not shown._")
    return "\n".join(rows)


def totals_line(t: Tally, rules: Rules) -> str:
    return (
        f"**Tally:** {_vote_count(t, rules)} · approve {t.approvals} (weight {t.approve_weight})"
        f" · reject {t.rejections} (weight {t.reject_weight})"
        f" · abstain {t.abstentions} (weight {t.abstain_weight})"
        f" · **{_percent(t.approval_rate)}** weighted approval (passes at {rules.threshold}%)"
    )


def _how_to_vote(view: ProposalView) -> str | None:
    """What people can do next: vote while the vote is open, promote once it has passed."""
    lines = []
    # A passed vote stays open until its deadline or the promotion: votes can still change it.
    if view.state == "voting" or (view.state == "passed" and view.now < view.closes_at and view.promotion is None):
        lines.append(
            "**How to vote:** comment `/approve [reason]`, `/reject [reason]` or `/abstain [reason]` "
            f"on its own line; `/retract` withdraws your vote. Voters need "
            f"{view.rules.min_permission.label} permission or above; your latest vote counts. "
            "`/help` lists every command."
        )
    if view.state == "passed" and is_promotable(view):
        lines.append("**To promote:** use the Promote button on the check run, or comment `/promote`.")
    return "\n\n".join(lines) or None


# --- The two outputs ------------------------------------------------------------------


def _status_and_conclusion(view: ProposalView) -> tuple[str, str | None]:
    if view.state == "voting":
        return "in_progress", None
    if view.state == "passed":
        # A hold keeps the check open, so nothing that waits for it goes ahead.
        return ("in_progress", None) if view.held_by else ("completed", "success")
    return "completed", {
        "promoted": "success",
        "rejected": "failure",
        "expired": "timed_out",
        "superseded": "neutral",
        "cancelled": "cancelled",
    }[view.state]


def _promote_action(view: ProposalView) -> dict[str, str]:
    description = clip_bytes(f"Promote this preview to {view.rules.production_environment}", MAX_ACTION_DESCRIPTION)
    return {
        "label": clip_bytes("Promote", MAX_ACTION_LABEL),
        "description": description,
        "identifier": _utf8_prefix(PROMOTE_ACTION_ID, MAX_ACTION_IDENTIFIER),
    }


def render_check_run(view: ProposalView) -> CheckRunOutput:
    """The check run's status, conclusion, texts and (when promotable) the Promote button.

    A proposal opened under an unusable `.github/pinkflow.yml` fails, saying what to fix.
    """
    if view.config_problems and view.state in ("voting", "passed"):
        failed = render_config_error(view.config_problems)
        trail = audit_section(view.audit, total=view.audit_total, budget=MAX_CHECK_TEXT - utf8_size(failed.text) - 10)
        text = f"{failed.text}\n\n{trail}" if trail else failed.text
        return replace(failed, text=_fit(text, MAX_CHECK_TEXT))
    status, conclusion = _status_and_conclusion(view)
    summary_parts = [_decision_sentence(view), f"**Rules:** {rules_line(view.rules)}", _time_line(view)]
    summary_parts += [line for line in (_promotion_line(view), _health_line(view)) if line]
    notes = _notes(view)
    if notes:
        summary_parts.append("\n".join(notes))
    if view.details_url and _SAFE_URL.fullmatch(view.details_url):
        summary_parts.append(f"[Votes and audit trail]({view.details_url})")
    summary = _fit("\n\n".join(part for part in summary_parts if part), MAX_CHECK_TEXT)

    totals = totals_line(view.tally, view.rules)
    room = MAX_CHECK_TEXT - utf8_size(totals) - 10
    # With an audit trail, the votes may take at most half the room; the trail takes the rest.
    table = tally_table(view.tally, budget=room // 2 if view.audit else room)
    trail = audit_section(view.audit, total=view.audit_total, budget=room - utf8_size(table) - 10)
    text = _fit("\n\n".join(part for part in (totals, table, trail) if part), MAX_CHECK_TEXT)

    actions = (_promote_action(view),) if is_promotable(view) else ()
    return CheckRunOutput(
        status=status,
        conclusion=conclusion,
        title=clip_bytes(_title(view), MAX_TITLE),
        summary=summary,
        text=text,
        actions=actions,
    )


_HEADINGS = {
    "voting": "Voting open",
    "passed": "Passed",
    "rejected": "Rejected",
    "expired": "Expired, quorum not met",
    "superseded": "Superseded by a newer commit",
    "cancelled": "Cancelled, the pull request was closed",
    "promoted": "Promoted",
}


def _heading(view: ProposalView) -> str:
    heading = _HEADINGS[view.state]
    if view.state == "passed" and view.held_by:
        heading = "Passed, on hold"
    elif view.state == "promoted":
        heading = f"Promoted to {view.rules.production_environment}"
    return f"### Pinkflow governance: {_environment(heading)}"


def config_file_named(problems: Sequence[ConfigProblem]) -> str:
    """Which file the problems are in, as the people who must fix it would look for it."""
    owner_file = next((problem.repository for problem in problems if problem.repository), "")
    if owner_file:
        return f"`{CONFIG_PATH}` of {escape_text(owner_file, limit=200)} (the owner's rules, used where a repository has none)"
    return f"`{CONFIG_PATH}`"


def _config_problems_block(view: ProposalView) -> str:
    shown = view.config_problems[:MAX_PROBLEMS_SHOWN]
    listed = [f"- {escape_text(problem.describe(), limit=MAX_REASON_SHOWN)}" for problem in shown]
    if len(view.config_problems) > MAX_PROBLEMS_SHOWN:
        listed.append(f"- … and {_plural(len(view.config_problems) - MAX_PROBLEMS_SHOWN, 'more problem')}")
    return (
        f"{config_file_named(view.config_problems)} on the default branch cannot be used, so this preview cannot be voted on or "
        "promoted until it is fixed. Once the fix is on the default branch, comment `/status`.\n\n"
        + "\n".join(listed)
    )


# What happens to votes commented while the file cannot be used: they are not counted then,
# and the fix (a push to the default branch, or `/status` after it) reads the comments again.
VOTES_WHILE_UNUSABLE = (
    "_Votes are not counted while the file cannot be used. They stay in their comments: once the file is fixed "
    "on the default branch, the App reads this pull request's comments again and counts the votes in them "
    "(if the fix is not seen, comment `/status`)._"
)


def render_status_comment(view: ProposalView) -> str:
    """The one status comment, found again later by `STATUS_MARKER` on its first line."""
    unusable = bool(view.config_problems) and view.state in ("voting", "passed")
    if unusable:
        before = [f"### Pinkflow governance: invalid {CONFIG_PATH}", _config_problems_block(view), _preview_line(view)]
        after: list[str | None] = [VOTES_WHILE_UNUSABLE]
    else:
        before = [
            _heading(view),
            _decision_sentence(view),
            _preview_line(view),
            _health_line(view),
            f"**Rules:** {rules_line(view.rules)}",
        ]
        after = [
            totals_line(view.tally, view.rules),
            _time_line(view),
            _how_to_vote(view),
            f"**Promotion:** {_promotion_line(view)}" if view.promotion else None,
        ]
    notes = _notes(view)
    if notes:
        after.append("**Notes:**\n" + "\n".join(notes))
    if view.details_url and _SAFE_URL.fullmatch(view.details_url):
        after.append(f"[Votes and audit trail]({view.details_url})")

    head = STATUS_MARKER + "\n" + "\n\n".join(part for part in before if part)
    tail = "\n\n".join(part for part in after if part)
    # A comment's limit is in characters (GitHub: "maximum is 65536 characters"), which at
    # 4 bytes at most each is also within the bytes it accepts.
    table = tally_table(view.tally, budget=max(MAX_COMMENT - len(head) - len(tail) - 10, 200), in_characters=True)
    if unusable and not view.tally.ballots:
        table = ""  # "No votes yet" would read as if voting went on
    return _fit("\n\n".join(part for part in (head, table, tail) if part), MAX_COMMENT, in_characters=True)


# --- An unusable configuration file -------------------------------------------------------

MAX_PROBLEMS_SHOWN = 50


def render_config_error(problems: Sequence[ConfigProblem], *, path: str = CONFIG_PATH) -> CheckRunOutput:
    """A failed check run saying what is wrong with the file and where, so it can be fixed.

    Keys and messages can repeat what people wrote in the file, so they are escaped.
    """
    shown_path = config_file_named(problems) if path == CONFIG_PATH else escape_text(path, limit=200)
    count = len(problems)
    shown = problems[:MAX_PROBLEMS_SHOWN]
    listed = [f"- {escape_text(problem.describe(), limit=MAX_REASON_SHOWN)}" for problem in shown]
    if count > MAX_PROBLEMS_SHOWN:
        listed.append(f"- … and {_plural(count - MAX_PROBLEMS_SHOWN, 'more problem')}")
    summary = "\n\n".join(
        [
            f"Pinkflow cannot use {shown_path} from its default branch "
            f"({_plural(count, 'problem')}). **Nothing will be promoted until the file on the default "
            "branch is fixed.** The file is only read from the default branch, so a pull request "
            "cannot change the rules it is voted under.",
            "\n".join(listed),
        ]
    )
    text = (
        "Every key is optional: keys left out take this installation's defaults. "
        "The documented keys, with their built-in defaults:\n\n```yaml\n" + CONFIG_REFERENCE + "```"
    )
    return CheckRunOutput(
        status="completed",
        conclusion="failure",
        title=clip_bytes(f"Invalid {path}: {_plural(count, 'problem')}", MAX_TITLE),
        summary=_fit(summary, MAX_CHECK_TEXT),
        text=_fit(text, MAX_CHECK_TEXT),
    )
