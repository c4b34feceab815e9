"""Read-only queries for the dashboard, the proposals API and the statistics.

Only public repositories' proposals are listed or counted here: a private
repository's proposal is reached by id, through a signed link, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from .models import Ballot, Promotion, Proposal

# The statistics look at this many of the newest decided proposals, so one request
# never loads an unbounded history.
MAX_ROWS_FOR_STATISTICS = 10_000


def _public():
    return Proposal.repo_private.is_(False)


async def public_proposals(
    session: AsyncSession,
    *,
    limit: int,
    repo_full_name: str | None = None,
    state: str | None = None,
    before_id: int | None = None,
) -> list[Proposal]:
    """Newest first; `before_id` continues a listing after the last proposal of a page."""
    query = select(Proposal).where(_public())
    if repo_full_name is not None:
        # GitHub names are case-insensitive; stored ones keep GitHub's spelling.
        query = query.where(func.lower(Proposal.repo_full_name) == repo_full_name.lower())
    if state is not None:
        query = query.where(Proposal.state == state)
    if before_id is not None:
        query = query.where(Proposal.id < before_id)
    rows = await session.scalars(query.order_by(Proposal.id.desc()).limit(limit))
    return list(rows)


async def ballots_of(session: AsyncSession, *, proposal_ids: Sequence[int]) -> dict[int, list[Ballot]]:
    """Every ballot of these proposals in one query, in the order they were cast."""
    found: dict[int, list[Ballot]] = {proposal_id: [] for proposal_id in proposal_ids}
    if not proposal_ids:
        return found
    rows = await session.scalars(select(Ballot).where(Ballot.proposal_id.in_(proposal_ids)).order_by(Ballot.id))
    for ballot in rows:
        found[ballot.proposal_id].append(ballot)
    return found


async def promotions_of(session: AsyncSession, *, proposal_ids: Sequence[int]) -> dict[int, Promotion]:
    if not proposal_ids:
        return {}
    rows = await session.scalars(select(Promotion).where(Promotion.proposal_id.in_(proposal_ids)))
    return {promotion.proposal_id: promotion for promotion in rows}


async def public_counts_by_state(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(Proposal.state, func.count()).where(_public()).group_by(Proposal.state))
    return {state: count for state, count in rows.all()}


async def public_voters_per_proposal(session: AsyncSession) -> list[int]:
    """How many distinct people voted on each public proposal (any choice, retractions too); 0 for none."""
    voters = (
        select(Ballot.proposal_id, func.count(distinct(func.lower(Ballot.voter))).label("voters"))
        .group_by(Ballot.proposal_id)
        .subquery()
    )
    rows = await session.execute(
        select(func.coalesce(voters.c.voters, 0))
        .select_from(Proposal)
        .outerjoin(voters, voters.c.proposal_id == Proposal.id)
        .where(_public())
        .order_by(Proposal.id.desc())
        .limit(MAX_ROWS_FOR_STATISTICS)
    )
    return [count for (count,) in rows.all()]


async def public_decisions(session: AsyncSession, *, states: Sequence[str]) -> list[tuple[str, datetime, datetime]]:
    """(state, opened, decided) of the newest public proposals decided in one of `states`."""
    rows = await session.execute(
        select(Proposal.state, Proposal.opened_at, Proposal.decided_at)
        .where(_public(), Proposal.state.in_(states), Proposal.decided_at.is_not(None))
        .order_by(Proposal.id.desc())
        .limit(MAX_ROWS_FOR_STATISTICS)
    )
    return [(state, opened, decided) for state, opened, decided in rows.all()]


async def public_promotion_counts_by_state(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(Promotion.state, func.count())
        .join(Proposal, Proposal.id == Promotion.proposal_id)
        .where(_public())
        .group_by(Promotion.state)
    )
    return {state: count for state, count in rows.all()}
