"""Queries about pull requests, proposals, ballots and promotions. They flush, never commit."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from .models import AuditEvent, Ballot, Promotion, Proposal, PullRequest

OPEN_STATES = ("voting", "passed")
# States in which a proposal is still the one a pull request's commands are about.
CURRENT_STATES = ("voting", "passed", "rejected", "expired", "promoted")


async def pull_request(session: AsyncSession, *, repo_full_name: str, number: int) -> PullRequest | None:
    return await session.scalar(
        select(PullRequest).where(PullRequest.repo_full_name == repo_full_name, PullRequest.number == number)
    )


async def open_pull_requests_at(session: AsyncSession, *, repo_full_name: str, head_sha: str) -> list[PullRequest]:
    rows = await session.scalars(
        select(PullRequest).where(
            PullRequest.repo_full_name == repo_full_name,
            PullRequest.head_sha == head_sha,
            PullRequest.state == "open",
        )
    )
    return list(rows)


async def current_proposal(
    session: AsyncSession, *, repo_full_name: str, pr_number: int, for_update: bool = False
) -> Proposal | None:
    """The newest proposal of a pull request that has not been superseded or cancelled."""
    query = (
        select(Proposal)
        .where(
            Proposal.repo_full_name == repo_full_name,
            Proposal.pr_number == pr_number,
            Proposal.state.in_(CURRENT_STATES),
        )
        .order_by(Proposal.id.desc())
        .limit(1)
    )
    return await session.scalar(query.with_for_update() if for_update else query)


async def locked_proposal(session: AsyncSession, proposal_id: int) -> Proposal | None:
    """A proposal to change: its row stays locked until the commit (PostgreSQL), so the
    sweeper and a vote never decide the same proposal at the same time."""
    return await session.get(Proposal, proposal_id, with_for_update=True, populate_existing=True)


async def open_proposals_of_pull(session: AsyncSession, *, repo_full_name: str, pr_number: int) -> list[Proposal]:
    rows = await session.scalars(
        select(Proposal)
        .where(
            Proposal.repo_full_name == repo_full_name,
            Proposal.pr_number == pr_number,
            Proposal.state.in_(OPEN_STATES),
        )
        .with_for_update()
    )
    return list(rows)


async def proposal_at(session: AsyncSession, *, repo_full_name: str, pr_number: int, head_sha: str) -> Proposal | None:
    return await session.scalar(
        select(Proposal).where(
            Proposal.repo_full_name == repo_full_name,
            Proposal.pr_number == pr_number,
            Proposal.head_sha == head_sha,
        )
    )


async def proposal_by_check_run(session: AsyncSession, *, check_run_id: int) -> Proposal | None:
    return await session.scalar(select(Proposal).where(Proposal.check_run_id == check_run_id))


async def proposal_by_preview_deployment(session: AsyncSession, *, deployment_id: int) -> Proposal | None:
    return await session.scalar(
        select(Proposal).where(Proposal.preview_deployment_id == deployment_id).order_by(Proposal.id.desc()).limit(1)
    )


async def ballots(session: AsyncSession, *, proposal_id: int) -> list[Ballot]:
    rows = await session.scalars(select(Ballot).where(Ballot.proposal_id == proposal_id).order_by(Ballot.id))
    return list(rows)


async def latest_comment_per_voter(session: AsyncSession, *, proposal_id: int) -> dict[str, int]:
    """For each voter (lower-cased), the newest comment whose vote was recorded."""
    rows = await session.execute(
        select(func.lower(Ballot.voter), func.max(Ballot.comment_id))
        .where(Ballot.proposal_id == proposal_id, Ballot.comment_id.is_not(None))
        .group_by(func.lower(Ballot.voter))
    )
    return {voter: comment_id for voter, comment_id in rows.all()}


async def promotion(session: AsyncSession, *, proposal_id: int) -> Promotion | None:
    return await session.scalar(select(Promotion).where(Promotion.proposal_id == proposal_id))


async def due_proposals(session: AsyncSession, *, now, limit: int = 100) -> list[Proposal]:
    """Proposals whose voting period is over; another replica's sweep skips the ones taken here."""
    rows = await session.scalars(
        select(Proposal)
        .where(Proposal.state == "voting", Proposal.closes_at <= now)
        .order_by(Proposal.closes_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(rows)


async def audit_trail(session: AsyncSession, *, proposal_id: int) -> list[AuditEvent]:
    rows = await session.scalars(
        select(AuditEvent).where(AuditEvent.proposal_id == proposal_id).order_by(AuditEvent.id.desc())
    )
    return list(rows)


async def count_by_state(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(Proposal.state, func.count()).group_by(Proposal.state))
    return {state: count for state, count in rows.all()}
