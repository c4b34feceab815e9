"""What a tally means now, and who may vote or promote."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from .config import CONFIG_PATH
from .durations import format_duration
from .permissions import Permission
from .rules import Rules, login_key
from .tally import Tally


class Outcome(enum.StrEnum):
    VOTING = "voting"
    PASSED = "passed"
    REJECTED = "rejected"
    EXPIRED = "expired"


def voting_deadline(*, opened_at: datetime, rules: Rules) -> datetime:
    """When a proposal opened at `opened_at` stops taking votes."""
    return opened_at + rules.voting_period


def decide(t: Tally, *, now: datetime, closes_at: datetime) -> Outcome:
    """A vote passes as soon as the tally says so; at its deadline it is otherwise
    rejected if enough people voted, or expired if not."""
    if t.is_approved:
        return Outcome.PASSED
    if now < closes_at:
        return Outcome.VOTING
    return Outcome.REJECTED if t.quorum_met else Outcome.EXPIRED


# A vote commented before its proposal's voting period ended counts when the App takes it
# up this long after the end at most (a backlog, a restart): the proposal closes once the
# deliveries about its pull request that GitHub made before the end are handled.
LATE_DELIVERY_GRACE = timedelta(minutes=10)


def vote_time(written_at: datetime | None, *, now: datetime) -> datetime:
    """When a vote counts as cast: when GitHub says its comment was written, if that is
    within LATE_DELIVERY_GRACE before now (the App took it up late), else now."""
    if written_at is not None and now - LATE_DELIVERY_GRACE <= written_at <= now:
        return written_at
    return now


def is_bot_login(login: str) -> bool:
    """GitHub Apps comment as "name[bot]"."""
    return login_key(login).endswith("[bot]")


def _set_by(key: str) -> str:
    """Which setting a refusal follows, so that whoever is refused knows what to ask to change."""
    return f"(`{key}` in {CONFIG_PATH})"


def vote_refusal(
    *, voter: str, voter_is_bot: bool, permission: Permission, author: str, rules: Rules
) -> str | None:
    """Why `voter` may not vote, in words shown to them; None when they may."""
    if voter_is_bot or is_bot_login(voter):
        return "bots do not vote"
    if not rules.allow_author and login_key(voter) == login_key(author):
        return f"authors do not vote on their own pull request {_set_by('voters.allow_author')}"
    if permission < rules.min_permission:
        return (
            f"needs {rules.min_permission.label} permission or above, has {permission.label}"
            f" {_set_by('voters.min_permission')}"
        )
    return None


def proposal_blocker(
    *,
    outcome: Outcome,
    held: bool,
    rules: Rules,
    opened_at: datetime,
    now: datetime,
    preview_healthy: bool | None = None,
    closes_at: datetime | None = None,
) -> str | None:
    """Why the proposal itself cannot be promoted now, whoever asks; None when it can.

    `preview_healthy` only matters where `preview_health.required` is set, and then
    an unknown health blocks too. `closes_at`, the end of the voting period, tells a vote
    that is still open from one that closed.
    """
    if held:
        return "on hold"
    if outcome is not Outcome.PASSED:
        return "the vote has not passed"
    open_for = now - opened_at
    if open_for < rules.min_voting_time:
        minimum = format_duration(rules.min_voting_time)
        left = format_duration(max(rules.min_voting_time - open_for, timedelta(seconds=1)))
        if closes_at is not None and now >= closes_at:
            # A min_voting_time longer than the voting period: the vote has closed already.
            return f"the minimum voting time ({minimum} from the vote's opening) ends in {left}"
        return f"the vote must stay open for at least {minimum} ({left} left)"
    if rules.preview_health_required and preview_healthy is not True:
        state = "unknown" if preview_healthy is None else "failing"
        return f"the preview must answer without error first (its health is {state})"
    return None


def promotion_refusal(
    *,
    outcome: Outcome,
    held: bool,
    requester_permission: Permission,
    rules: Rules,
    opened_at: datetime,
    now: datetime,
    force: bool = False,
    already_promoted: bool = False,
    preview_healthy: bool | None = None,
    closes_at: datetime | None = None,
) -> str | None:
    """Why a promotion asked for now may not go ahead; None when it may.

    A forced promotion (admins, where `promote.allow_force` is set) skips the vote,
    the hold, the minimum voting time and the health check, but never promotes twice.
    """
    if already_promoted:
        return "already promoted"
    if requester_permission < rules.promote_permission:
        return (
            f"promoting needs {rules.promote_permission.label} permission or above,"
            f" has {requester_permission.label} {_set_by('promote.permission')}"
        )
    if force:
        if not rules.allow_force:
            return f"forced promotion is not enabled for this repository {_set_by('promote.allow_force')}"
        if requester_permission < Permission.ADMIN:
            return f"only admins may force a promotion (has {requester_permission.label})"
        return None
    return proposal_blocker(
        outcome=outcome,
        held=held,
        rules=rules,
        opened_at=opened_at,
        now=now,
        preview_healthy=preview_healthy,
        closes_at=closes_at,
    )


def auto_promotion_due(
    *,
    outcome: Outcome,
    held: bool,
    rules: Rules,
    opened_at: datetime,
    now: datetime,
    already_promoted: bool,
    preview_healthy: bool | None = None,
) -> bool:
    """Should the bot promote on its own now (`promote.auto`)?"""
    if not rules.auto_promote or already_promoted:
        return False
    blocker = proposal_blocker(
        outcome=outcome, held=held, rules=rules, opened_at=opened_at, now=now, preview_healthy=preview_healthy
    )
    return blocker is None
