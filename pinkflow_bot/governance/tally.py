"""Counting the votes: the latest ballot per voter, weighed as it was cast."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .rules import Rules, login_key


class Choice(enum.StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    ABSTAIN = "abstain"
    RETRACT = "retract"


@dataclass(frozen=True)
class Ballot:
    """One vote as cast. `sequence` orders all ballots as storage received them."""

    voter: str
    choice: Choice
    weight: int
    sequence: int
    reason: str = ""
    cast_at: datetime | None = None

    def __post_init__(self) -> None:
        # Storage hands choices back as plain strings.
        object.__setattr__(self, "choice", Choice(self.choice))
        if self.weight < 0:
            raise ValueError(f"a ballot's weight cannot be negative ({self.voter}: {self.weight})")


def _recency(ballot: Ballot) -> tuple[Any, ...]:
    # Sequences are unique in storage; the rest only keeps the result independent of
    # input order should two ballots of one voter ever share a sequence.
    return (ballot.sequence, ballot.choice.value, ballot.weight, ballot.reason, ballot.voter)


def current_ballots(ballots: Iterable[Ballot]) -> tuple[Ballot, ...]:
    """The ballots that count: each voter's latest, unless it is a retraction; by sequence."""
    latest: dict[str, Ballot] = {}
    for ballot in ballots:
        key = login_key(ballot.voter)
        known = latest.get(key)
        if known is None or _recency(ballot) > _recency(known):
            latest[key] = ballot
    counted = (ballot for ballot in latest.values() if ballot.choice is not Choice.RETRACT)
    return tuple(sorted(counted, key=_recency))


@dataclass(frozen=True)
class Tally:
    total: int
    approvals: int
    rejections: int
    abstentions: int
    approve_weight: int
    reject_weight: int
    abstain_weight: int
    approval_rate: float
    quorum_met: bool
    is_approved: bool
    ballots: tuple[Ballot, ...] = ()

    def as_seed_dict(self) -> dict[str, Any]:
        """The tally under the field names the Pinkflow seed's API uses."""
        return {
            "total": self.total,
            "approvals": self.approvals,
            "rejections": self.rejections,
            "abstentions": self.abstentions,
            "approvalRate": self.approval_rate,
            "isApproved": self.is_approved,
            "approveWeight": self.approve_weight,
            "rejectWeight": self.reject_weight,
            "abstainWeight": self.abstain_weight,
            "quorumMet": self.quorum_met,
        }


def tally(ballots: Iterable[Ballot], rules: Rules) -> Tally:
    """Counts the current ballots under `rules`.

    Abstentions count toward the quorum but not toward the approval rate. The pass
    test is exact integer arithmetic, so 3 of 4 at a 75% threshold passes.
    """
    counted = current_ballots(ballots)
    weights = {choice: 0 for choice in Choice}
    counts = {choice: 0 for choice in Choice}
    for ballot in counted:
        weights[ballot.choice] += ballot.weight
        counts[ballot.choice] += 1
    approve_weight = weights[Choice.APPROVE]
    reject_weight = weights[Choice.REJECT]
    decisive = approve_weight + reject_weight
    approval_rate = round(100 * approve_weight / decisive, 2) if decisive else 0.0
    quorum_met = len(counted) >= rules.min_votes
    is_approved = quorum_met and approve_weight > 0 and 100 * approve_weight >= rules.threshold * decisive
    return Tally(
        total=len(counted),
        approvals=counts[Choice.APPROVE],
        rejections=counts[Choice.REJECT],
        abstentions=counts[Choice.ABSTAIN],
        approve_weight=approve_weight,
        reject_weight=reject_weight,
        abstain_weight=weights[Choice.ABSTAIN],
        approval_rate=approval_rate,
        quorum_met=quorum_met,
        is_approved=is_approved,
        ballots=counted,
    )
