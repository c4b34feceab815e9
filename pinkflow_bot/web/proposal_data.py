"""What the dashboard and the proposals API show, read from storage in one place.

Both answer a private repository's proposal only with a valid signature and
otherwise behave exactly as for a proposal that does not exist.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..effects import proposal_view
from ..governance.render import ProposalView, promotion_blocker
from ..governance.tally import Tally, tally
from ..services import cast_ballots, proposal_rules
from ..settings import Settings
from ..storage import proposals as queries
from ..storage import reports
from ..storage.models import AuditEvent, Promotion, Proposal
from ..links import link_is_valid

# Database keys are signed 64-bit integers; larger ids cannot name a proposal.
MAX_PROPOSAL_ID = 2**63 - 1
DECIDED_STATES = ("passed", "promoted", "rejected", "expired")
APPROVED_STATES = ("passed", "promoted")
PROMOTION_SUCCEEDED = ("created", "in_progress", "success")
PROMOTION_FAILED = ("failed", "failure")


def parse_proposal_id(text: str) -> int | None:
    """The id in a route, or None when it cannot be one (then the answer is a plain 404)."""
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if 0 < value <= MAX_PROPOSAL_ID else None


@dataclass(frozen=True)
class ProposalDetails:
    proposal: Proposal
    view: ProposalView
    promotion: Promotion | None
    audit: list[AuditEvent]

    @property
    def promotion_blocker(self) -> str | None:
        """Why no promotion is offered; None when the proposal can be promoted now."""
        return promotion_blocker(self.view)


async def visible_proposal(
    session, settings: Settings, *, proposal_id: int, signature: str | None, now: datetime
) -> ProposalDetails | None:
    """The proposal as shown to whoever asks, or None when they may not see it or it does not exist."""
    proposal = await session.get(Proposal, proposal_id)
    if proposal is None:
        return None
    if proposal.repo_private and not link_is_valid(settings, proposal_id=proposal_id, signature=signature):
        return None
    view = await proposal_view(session, proposal, now=now)
    promotion = await queries.promotion(session, proposal_id=proposal_id)
    audit = await queries.audit_trail(session, proposal_id=proposal_id)
    return ProposalDetails(proposal=proposal, view=view, promotion=promotion, audit=audit)


@dataclass(frozen=True)
class ProposalSummary:
    proposal: Proposal
    tally: Tally


async def public_summaries(
    session,
    *,
    limit: int,
    repo_full_name: str | None = None,
    state: str | None = None,
    before_id: int | None = None,
) -> list[ProposalSummary]:
    """The newest public proposals with their tallies, in two queries whatever the page size."""
    proposals = await reports.public_proposals(
        session, limit=limit, repo_full_name=repo_full_name, state=state, before_id=before_id
    )
    ballots = await reports.ballots_of(session, proposal_ids=[p.id for p in proposals])
    return [
        ProposalSummary(proposal=p, tally=tally(cast_ballots(ballots[p.id]), proposal_rules(p))) for p in proposals
    ]


def time_left(proposal: Proposal, *, now: datetime) -> timedelta | None:
    """How long the vote stays open; None once it is over. A passed vote stays open until its deadline."""
    if proposal.state in ("voting", "passed") and now < proposal.closes_at:
        return proposal.closes_at - now
    return None


def _percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 2) if whole else None


@dataclass(frozen=True)
class Statistics:
    proposals: int
    by_state: dict[str, int]
    decided: int
    approval_rate: float | None
    average_voters: float | None
    median_voters: float | None
    median_time_to_decision: timedelta | None
    promotions: int
    promotion_success_rate: float | None


async def public_statistics(session) -> Statistics:
    """The Pinkflow metrics over public proposals: counts in SQL, medians over bounded rows in Python.

    The approval rate counts proposals by their current outcome (a passed vote may still
    be open until its deadline); the time to decision counts those with a decision time.
    """
    by_state = await reports.public_counts_by_state(session)
    decisions = await reports.public_decisions(session, states=DECIDED_STATES)
    voters = await reports.public_voters_per_proposal(session)
    promotions = await reports.public_promotion_counts_by_state(session)

    decided = sum(by_state.get(state, 0) for state in DECIDED_STATES)
    approved = sum(by_state.get(state, 0) for state in APPROVED_STATES)
    durations: Sequence[float] = [(decided_at - opened).total_seconds() for _, opened, decided_at in decisions]
    succeeded = sum(promotions.get(state, 0) for state in PROMOTION_SUCCEEDED)
    failed = sum(promotions.get(state, 0) for state in PROMOTION_FAILED)
    return Statistics(
        proposals=sum(by_state.values()),
        by_state=dict(sorted(by_state.items())),
        decided=decided,
        approval_rate=_percent(approved, decided),
        average_voters=round(statistics.fmean(voters), 2) if voters else None,
        median_voters=float(statistics.median(voters)) if voters else None,
        median_time_to_decision=timedelta(seconds=statistics.median(durations)) if durations else None,
        promotions=sum(promotions.values()),
        promotion_success_rate=_percent(succeeded, succeeded + failed),
    )
