"""Queries about pull requests, proposals, ballots and promotions. They flush, never commit."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from .database import noted_in_transaction
from .models import (
    AuditEvent,
    Ballot,
    CommandUse,
    Hold,
    Promotion,
    Proposal,
    ProtectionRuleRequest,
    PullRequest,
)

OPEN_STATES = ("voting", "passed")
# States in which a proposal is still the one a pull request's commands are about.
CURRENT_STATES = ("voting", "passed", "rejected", "expired", "promoted")


def _remember_locked(session: AsyncSession, proposal_ids: Iterable[int]) -> None:
    noted_in_transaction(session, "proposals locked").update(proposal_ids)


async def lock_proposal(session: AsyncSession, proposal_id: int) -> None:
    """Locks the proposal's row until the commit (PostgreSQL), unless this transaction holds it."""
    if proposal_id in noted_in_transaction(session, "proposals locked"):
        return
    await session.execute(select(Proposal.id).where(Proposal.id == proposal_id).with_for_update())
    _remember_locked(session, [proposal_id])


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
    if not for_update:
        return await session.scalar(query)
    proposal = await session.scalar(query.with_for_update())
    if proposal is not None:
        _remember_locked(session, [proposal.id])
    return proposal


async def locked_proposal(session: AsyncSession, proposal_id: int) -> Proposal | None:
    """A proposal to change: its row stays locked until the commit (PostgreSQL), so the
    sweeper and a vote never decide the same proposal at the same time."""
    proposal = await session.get(Proposal, proposal_id, with_for_update=True, populate_existing=True)
    if proposal is not None:
        _remember_locked(session, [proposal.id])
    return proposal


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
    proposals = list(rows)
    _remember_locked(session, [proposal.id for proposal in proposals])
    return proposals


async def proposal_at(session: AsyncSession, *, repo_full_name: str, pr_number: int, head_sha: str) -> Proposal | None:
    return await session.scalar(
        select(Proposal).where(
            Proposal.repo_full_name == repo_full_name,
            Proposal.pr_number == pr_number,
            Proposal.head_sha == head_sha,
        )
    )


async def any_shown_publicly(session: AsyncSession, *, repo_full_name: str) -> bool:
    """Whether some proposal of the repository is still shown without a signed link."""
    found = await session.scalar(
        select(Proposal.id).where(Proposal.repo_full_name == repo_full_name, Proposal.repo_private.is_(False)).limit(1)
    )
    return found is not None


async def hide_proposals_of(session: AsyncSession, *, repo_full_name: str) -> int:
    """Marks every proposal of the repository private; how many were shown until now."""
    result = await session.execute(
        update(Proposal)
        .where(Proposal.repo_full_name == repo_full_name, Proposal.repo_private.is_(False))
        .values(repo_private=True)
    )
    return result.rowcount


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
    """Open proposals that time has changed (see Proposal.revisit_at); another replica's
    sweep skips the ones taken here."""
    rows = await session.scalars(
        select(Proposal)
        .where(Proposal.state.in_(OPEN_STATES), Proposal.revisit_at <= now)
        .order_by(Proposal.revisit_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    proposals = list(rows)
    _remember_locked(session, [proposal.id for proposal in proposals])
    return proposals


async def audit_trail(session: AsyncSession, *, proposal_id: int, limit: int | None = None) -> list[AuditEvent]:
    """Newest first; at most `limit` entries when given."""
    query = select(AuditEvent).where(AuditEvent.proposal_id == proposal_id).order_by(AuditEvent.id.desc())
    rows = await session.scalars(query.limit(limit) if limit is not None else query)
    return list(rows)


async def audit_count(session: AsyncSession, *, proposal_id: int) -> int:
    return await session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.proposal_id == proposal_id)) or 0


async def count_by_state(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(Proposal.state, func.count()).group_by(Proposal.state))
    return {state: count for state, count in rows.all()}


async def latest_proposal(session: AsyncSession, *, repo_full_name: str, pr_number: int) -> Proposal | None:
    """The newest proposal of a pull request, whatever its state."""
    return await session.scalar(
        select(Proposal)
        .where(Proposal.repo_full_name == repo_full_name, Proposal.pr_number == pr_number)
        .order_by(Proposal.id.desc())
        .limit(1)
    )


async def proposal_for_commit(session: AsyncSession, *, repo_full_name: str, head_sha: str) -> Proposal | None:
    """The newest proposal at a commit, of whichever pull request."""
    return await session.scalar(
        select(Proposal)
        .where(Proposal.repo_full_name == repo_full_name, Proposal.head_sha == head_sha)
        .order_by(Proposal.id.desc())
        .limit(1)
    )


async def superseded_before(session: AsyncSession, *, repo_full_name: str, pr_number: int, before_id: int) -> Proposal | None:
    """The proposal a new push superseded: the newest earlier one of the pull request, if superseded."""
    older = await session.scalar(
        select(Proposal)
        .where(Proposal.repo_full_name == repo_full_name, Proposal.pr_number == pr_number, Proposal.id < before_id)
        .order_by(Proposal.id.desc())
        .limit(1)
    )
    return older if older is not None and older.state == "superseded" else None


async def open_proposals_of_repo(session: AsyncSession, *, repo_full_name: str) -> list[Proposal]:
    rows = await session.scalars(
        select(Proposal)
        .where(Proposal.repo_full_name == repo_full_name, Proposal.state.in_(OPEN_STATES))
        .order_by(Proposal.id)
        .with_for_update()
    )
    proposals = list(rows)
    _remember_locked(session, [proposal.id for proposal in proposals])
    return proposals


async def open_proposals_of_owner(session: AsyncSession, *, owner: str) -> list[Proposal]:
    """Open proposals of every repository of `owner` (a login: letters, digits, hyphens)."""
    rows = await session.scalars(
        select(Proposal)
        .where(func.lower(Proposal.repo_full_name).like(f"{owner.lower()}/%"), Proposal.state.in_(OPEN_STATES))
        .order_by(Proposal.id)
    )
    return list(rows)


async def active_holds(session: AsyncSession, *, proposal_id: int) -> list[Hold]:
    rows = await session.scalars(
        select(Hold).where(Hold.proposal_id == proposal_id, Hold.released_at.is_(None)).order_by(Hold.id)
    )
    return list(rows)


async def latest_ballot(session: AsyncSession, *, proposal_id: int, voter: str) -> Ballot | None:
    """A voter's newest ballot on the proposal (a retraction included)."""
    return await session.scalar(
        select(Ballot)
        .where(Ballot.proposal_id == proposal_id, func.lower(Ballot.voter) == voter.lower())
        .order_by(Ballot.id.desc())
        .limit(1)
    )


async def voters_of_comment(session: AsyncSession, *, proposal_id: int, comment_id: int) -> list[str]:
    rows = await session.scalars(
        select(Ballot.voter).where(Ballot.proposal_id == proposal_id, Ballot.comment_id == comment_id).distinct()
    )
    return list(rows)


async def promotion_by_deployment(session: AsyncSession, *, deployment_id: int) -> Promotion | None:
    return await session.scalar(
        select(Promotion).where(Promotion.deployment_id == deployment_id).order_by(Promotion.id.desc()).limit(1)
    )


async def protection_requests(
    session: AsyncSession, *, repo_full_name: str, head_sha: str, undecided_only: bool = True
) -> list[ProtectionRuleRequest]:
    query = select(ProtectionRuleRequest).where(
        ProtectionRuleRequest.repo_full_name == repo_full_name, ProtectionRuleRequest.head_sha == head_sha
    )
    if undecided_only:
        query = query.where(ProtectionRuleRequest.answer.is_(None))
    rows = await session.scalars(query.order_by(ProtectionRuleRequest.id).with_for_update())
    return list(rows)


async def protection_request(
    session: AsyncSession, *, repo_full_name: str, run_id: int, environment: str
) -> ProtectionRuleRequest | None:
    return await session.scalar(
        select(ProtectionRuleRequest).where(
            ProtectionRuleRequest.repo_full_name == repo_full_name,
            ProtectionRuleRequest.run_id == run_id,
            ProtectionRuleRequest.environment == environment,
        )
    )


async def commands_since(session: AsyncSession, *, repo_full_name: str, login: str, since: datetime) -> tuple[int, datetime | None]:
    """How many commands `login` gave in the repository after `since`, and when the oldest of them was."""
    count, oldest = (
        await session.execute(
            select(func.coalesce(func.sum(CommandUse.commands), 0), func.min(CommandUse.at)).where(
                CommandUse.repo_full_name == repo_full_name, CommandUse.login == login.lower(), CommandUse.at > since
            )
        )
    ).one()
    return int(count or 0), oldest


async def forget_commands_before(session: AsyncSession, *, repo_full_name: str, login: str, before: datetime) -> None:
    await session.execute(
        delete(CommandUse).where(
            CommandUse.repo_full_name == repo_full_name, CommandUse.login == login.lower(), CommandUse.at <= before
        )
    )
