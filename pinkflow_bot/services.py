"""Transactions: each service call changes the domain state and enqueues the effects that
must follow, in one commit, together with marking the delivery that caused it as done."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .governance.commands import HELP_TEXT, Command, CommandKind
from .governance.decision import Outcome, decide, promotion_refusal, vote_refusal
from .governance.permissions import Permission
from .governance.rules import Rules, is_preview_environment, weight_for
from .governance.tally import Ballot as CastBallot
from .governance.tally import Choice, Tally, tally
from .settings import Settings
from .storage import inbox, outbox
from .storage import proposals as queries
from .storage.database import write_transaction
from .storage.models import (
    AuditEvent,
    Ballot,
    Installation,
    Promotion,
    Proposal,
    PullRequest,
)

log = logging.getLogger(__name__)

VOTE_CHOICES = {
    CommandKind.APPROVE: Choice.APPROVE,
    CommandKind.REJECT: Choice.REJECT,
    CommandKind.ABSTAIN: Choice.ABSTAIN,
    CommandKind.RETRACT: Choice.RETRACT,
}
SYNC_KINDS = ("sync_check_run", "sync_comment")


@dataclass
class DeliveryRef:
    """The stored delivery being handled; its completion commits with the service's change."""

    seq: int
    delivery_id: str
    attempt: int = 1
    finished: bool = False


@dataclass(frozen=True)
class Voter:
    login: str
    is_bot: bool
    permission: Permission
    teams: tuple[str, ...] = ()


@dataclass(frozen=True)
class CommentFacts:
    """A pull request comment as GitHub lists it, with its author's permission looked up."""

    comment_id: int
    created_at: datetime
    voter: Voter
    author_is_bot: bool
    commands: tuple[Command, ...]


@dataclass(frozen=True)
class PullRequestFacts:
    """What a proposal needs to know of its pull request."""

    number: int
    head_sha: str
    author: str


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def default_rules(settings: Settings) -> Rules:
    """Installation-wide defaults from the environment (DAO_* names of the Pinkflow documents)."""
    return Rules(
        threshold=settings.approval_threshold,
        min_votes=settings.min_votes,
        voting_period=settings.voting_period,
        auto_promote=settings.auto_deployment,
    )


def proposal_rules(proposal: Proposal) -> Rules:
    """The rules a proposal was opened under: later changes of the defaults do not move its goalposts."""
    return Rules.from_dict(proposal.rules)


def cast_ballots(rows: Sequence[Ballot]) -> list[CastBallot]:
    return [
        CastBallot(
            voter=row.voter,
            choice=Choice(row.choice),
            weight=row.weight,
            sequence=row.id,
            reason=row.reason,
            cast_at=row.cast_at,
        )
        for row in rows
    ]


async def proposal_tally(session: AsyncSession, proposal: Proposal) -> Tally:
    rows = await queries.ballots(session, proposal_id=proposal.id)
    return tally(cast_ballots(rows), proposal_rules(proposal))


class GovernanceService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._clock = clock

    @property
    def settings(self) -> Settings:
        return self._settings

    @asynccontextmanager
    async def _transaction(self, delivery: DeliveryRef | None) -> AsyncIterator[AsyncSession]:
        async with write_transaction(self._sessions) as session:
            yield session
            if delivery is not None and not delivery.finished:
                await inbox.finish_delivery(session, seq=delivery.seq, attempt=delivery.attempt, now=self._clock())
        if delivery is not None:
            delivery.finished = True

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for handlers' look-ups; changes go through the service's methods."""
        async with self._sessions() as session:
            yield session

    async def finish_delivery(self, delivery: DeliveryRef) -> None:
        """For deliveries that change nothing: marked done all the same."""
        async with self._transaction(delivery):
            pass

    # -- pull requests -------------------------------------------------------------------

    async def record_pull_request(
        self,
        delivery: DeliveryRef | None,
        *,
        installation_id: int | None,
        repo_full_name: str,
        number: int,
        head_sha: str,
        author: str,
        state: str,
    ) -> None:
        """Keeps what the App knows of a pull request; a new head supersedes, a close cancels."""
        now = self._clock()
        async with self._transaction(delivery) as session:
            pull = await queries.pull_request(session, repo_full_name=repo_full_name, number=number)
            if pull is None:
                pull = PullRequest(repo_full_name=repo_full_name, number=number, status_comment_id=None)
                session.add(pull)
            pull.installation_id = installation_id
            pull.head_sha = head_sha
            pull.author = author
            pull.state = state
            pull.updated_at = now
            for proposal in await queries.open_proposals_of_pull(session, repo_full_name=repo_full_name, pr_number=number):
                if state != "open":
                    await self._end(session, proposal, state="cancelled", actor=author, detail="pull request closed", now=now)
                elif proposal.head_sha != head_sha:
                    await self._supersede(session, proposal, by=head_sha, actor=author, now=now)

    async def _supersede(self, session: AsyncSession, proposal: Proposal, *, by: str, actor: str, now: datetime) -> None:
        proposal.superseded_by = by
        await self._end(session, proposal, state="superseded", actor=actor, detail=f"superseded by {by}", now=now)

    async def _end(self, session: AsyncSession, proposal: Proposal, *, state: str, actor: str, detail: str, now: datetime) -> None:
        proposal.state = state
        proposal.decided_at = now
        session.add(AuditEvent(proposal_id=proposal.id, actor=actor, action=state, detail=detail, at=now))
        await self._enqueue_sync(session, proposal, now=now)

    # -- proposals -------------------------------------------------------------------------

    def rules_for(self, repo_full_name: str) -> Rules:
        return default_rules(self._settings)

    def is_preview(self, repo_full_name: str, environment: str | None) -> bool:
        return is_preview_environment(environment, self.rules_for(repo_full_name).preview_environments)

    async def open_proposal(
        self,
        delivery: DeliveryRef | None,
        *,
        installation_id: int | None,
        repo_full_name: str,
        repo_private: bool,
        pull: PullRequestFacts,
        preview_deployment_id: int | None,
        preview_url: str | None,
        environment: str | None,
    ) -> int | None:
        """Puts the preview at the pull request's head to a vote; a repeated success updates it."""
        now = self._clock()
        rules = self.rules_for(repo_full_name)
        async with self._transaction(delivery) as session:
            stored_pull = await queries.pull_request(session, repo_full_name=repo_full_name, number=pull.number)
            if stored_pull is None:
                stored_pull = PullRequest(repo_full_name=repo_full_name, number=pull.number, status_comment_id=None)
                session.add(stored_pull)
            stored_pull.installation_id = installation_id
            stored_pull.head_sha = pull.head_sha
            stored_pull.author = pull.author
            stored_pull.state = "open"
            stored_pull.updated_at = now
            proposal = await queries.proposal_at(
                session, repo_full_name=repo_full_name, pr_number=pull.number, head_sha=pull.head_sha
            )
            if proposal is not None:
                if proposal.state in queries.OPEN_STATES:
                    proposal.preview_url = preview_url or proposal.preview_url
                    proposal.preview_deployment_id = preview_deployment_id or proposal.preview_deployment_id
                    proposal.environment = environment or proposal.environment
                    await self._enqueue_sync(session, proposal, now=now)
                return proposal.id
            for older in await queries.open_proposals_of_pull(session, repo_full_name=repo_full_name, pr_number=pull.number):
                await self._supersede(session, older, by=pull.head_sha, actor="pinkflow", now=now)
            proposal = Proposal(
                installation_id=installation_id,
                repo_full_name=repo_full_name,
                repo_private=repo_private,
                pr_number=pull.number,
                pr_author=pull.author,
                head_sha=pull.head_sha,
                preview_deployment_id=preview_deployment_id,
                preview_url=preview_url,
                environment=environment,
                state="voting",
                rules=rules.as_dict(),
                opened_at=now,
                closes_at=now + rules.voting_period,
                notes=[],
            )
            session.add(proposal)
            await session.flush()
            session.add(
                AuditEvent(proposal_id=proposal.id, actor="pinkflow", action="opened", detail=f"preview {preview_url or ''}".strip(), at=now)
            )
            await self._enqueue_sync(session, proposal, now=now)
            log.info("proposal opened", extra={"proposal_id": proposal.id, "head_sha": pull.head_sha})
            return proposal.id

    # -- commands ----------------------------------------------------------------------------

    async def apply_commands(
        self,
        delivery: DeliveryRef | None,
        *,
        installation_id: int | None,
        repo_full_name: str,
        pr_number: int,
        comment_id: int,
        voter: Voter,
        commands: Sequence[Command],
    ) -> None:
        """Runs a comment's commands in order, in one commit, and answers with a reaction."""
        now = self._clock()
        async with self._transaction(delivery) as session:
            proposal = await queries.current_proposal(
                session, repo_full_name=repo_full_name, pr_number=pr_number, for_update=True
            )
            counted = refused = False
            for command in commands:
                if command.kind is CommandKind.HELP:
                    await outbox.enqueue_effect(
                        session,
                        kind="post_comment",
                        now=now,
                        installation_id=installation_id,
                        payload={"repo": repo_full_name, "number": pr_number, "body": HELP_TEXT},
                    )
                    counted = True
                elif command.kind is CommandKind.STATUS:
                    # Read the pull request and its comments again: a missed webhook is made good.
                    await self._enqueue_rebuild(session, installation_id, repo_full_name, pr_number, now=now)
                    counted = True
                elif proposal is None:
                    refused = True
                elif command.kind in VOTE_CHOICES:
                    accepted = await self._cast(session, proposal, voter=voter, command=command, comment_id=comment_id, now=now)
                    counted, refused = counted or accepted, refused or not accepted
                elif command.kind is CommandKind.PROMOTE:
                    accepted = await self._promote(session, proposal, requester=voter, force=command.force, now=now)
                    counted, refused = counted or accepted, refused or not accepted
            if proposal is not None:
                await self._settle(session, proposal, now=now)
            for content, wanted in (("+1", counted), ("confused", refused)):
                if wanted:
                    await outbox.enqueue_effect(
                        session,
                        kind="react",
                        now=now,
                        installation_id=installation_id,
                        payload={"repo": repo_full_name, "comment_id": comment_id, "content": content},
                    )

    async def _cast(
        self,
        session: AsyncSession,
        proposal: Proposal,
        *,
        voter: Voter,
        command: Command,
        comment_id: int,
        now: datetime,
        explain_refusal: bool = True,
    ) -> bool:
        rules = proposal_rules(proposal)
        if proposal.state not in queries.OPEN_STATES or now >= proposal.closes_at:
            refusal = "voting has closed; the vote was not counted"
        else:
            refusal = vote_refusal(
                voter=voter.login, voter_is_bot=voter.is_bot, permission=voter.permission, author=proposal.pr_author, rules=rules
            )
            refusal = None if refusal is None else f"not counted: {refusal}"
        if refusal is not None:
            if explain_refusal:
                await self._note(session, proposal, f"@{voter.login}: {refusal}", now=now)
            return False
        choice = VOTE_CHOICES[command.kind]
        weight = weight_for(login=voter.login, permission=voter.permission, teams=voter.teams, rules=rules)
        session.add(
            Ballot(
                proposal_id=proposal.id,
                voter=voter.login,
                choice=choice.value,
                weight=weight,
                permission=voter.permission.name.lower(),
                reason=command.reason,
                comment_id=comment_id,
                cast_at=now,
            )
        )
        detail = f"{choice.value} (weight {weight})" + (f": {command.reason}" if command.reason else "")
        session.add(AuditEvent(proposal_id=proposal.id, actor=voter.login, action="vote", detail=detail, at=now))
        await session.flush()
        await self._enqueue_sync(session, proposal, now=now)
        return True

    async def _note(self, session: AsyncSession, proposal: Proposal, line: str, *, now: datetime) -> None:
        """A line for the status comment; the newest few are kept, the audit trail keeps the rest."""
        proposal.notes = ([*proposal.notes, line])[-5:]
        await self._enqueue_sync(session, proposal, now=now)

    # -- promotion ---------------------------------------------------------------------------

    async def request_promotion(
        self, delivery: DeliveryRef | None, *, proposal_id: int, requester: Voter, force: bool = False
    ) -> bool:
        """The Promote button: the same rules as `/promote`."""
        now = self._clock()
        async with self._transaction(delivery) as session:
            proposal = await queries.locked_proposal(session, proposal_id)
            if proposal is None:
                return False
            accepted = await self._promote(session, proposal, requester=requester, force=force, now=now)
            await self._settle(session, proposal, now=now)
            return accepted

    async def _promote(self, session: AsyncSession, proposal: Proposal, *, requester: Voter, force: bool, now: datetime) -> bool:
        rules = proposal_rules(proposal)
        current = await proposal_tally(session, proposal)
        existing = await queries.promotion(session, proposal_id=proposal.id)
        refusal = promotion_refusal(
            outcome=decide(current, now=now, closes_at=proposal.closes_at),
            held=False,
            requester_permission=requester.permission,
            rules=rules,
            opened_at=proposal.opened_at,
            now=now,
            force=force,
            # A promotion that failed for good may be asked for again.
            already_promoted=existing is not None and existing.state != "failed",
        )
        if proposal.state not in ("voting", "passed"):
            refusal = refusal or f"the proposal is {proposal.state}"
        if refusal is not None:
            await self._note(session, proposal, f"@{requester.login}: not promoted: {refusal}", now=now)
            return False
        try:
            async with session.begin_nested():
                if existing is not None:
                    existing.requested_by, existing.forced, existing.requested_at = requester.login, force, now
                    existing.state, existing.error, existing.completed_at = "pending", None, None
                else:
                    session.add(
                        Promotion(
                            proposal_id=proposal.id,
                            provider=rules.promote_provider,
                            requested_by=requester.login,
                            forced=force,
                            state="pending",
                            requested_at=now,
                        )
                    )
        except IntegrityError:
            # Another replica or a double click got there first: one promotion only.
            await self._note(session, proposal, f"@{requester.login}: not promoted: already promoted", now=now)
            return False
        action = "forced promotion" if force else "promotion requested"
        session.add(AuditEvent(proposal_id=proposal.id, actor=requester.login, action=action, detail=rules.promote_provider, at=now))
        await outbox.enqueue_effect(
            session, kind="promote", now=now, proposal_id=proposal.id, installation_id=proposal.installation_id
        )
        await self._enqueue_sync(session, proposal, now=now)
        return True

    async def record_promotion_result(
        self, *, proposal_id: int, deployment_id: int | None, error: str | None = None
    ) -> None:
        """What the promotion provider answered."""
        now = self._clock()
        async with self._transaction(None) as session:
            proposal = await queries.locked_proposal(session, proposal_id)
            promotion = await queries.promotion(session, proposal_id=proposal_id)
            if proposal is None or promotion is None:
                return
            promotion.completed_at = now
            if error is None:
                promotion.state = "created"
                promotion.deployment_id = deployment_id
                proposal.state = "promoted"
                proposal.decided_at = proposal.decided_at or now
                detail = f"production deployment {deployment_id}"
                session.add(AuditEvent(proposal_id=proposal_id, actor="pinkflow", action="promoted", detail=detail, at=now))
            else:
                promotion.state = "failed"
                promotion.error = error
                session.add(AuditEvent(proposal_id=proposal_id, actor="pinkflow", action="promotion failed", detail=error, at=now))
            await self._enqueue_sync(session, proposal, now=now)

    async def record_effect_failure(self, *, proposal_id: int | None, kind: str, error: str) -> None:
        """A refusal that will not heal is shown where people look: in the other outputs."""
        if proposal_id is None:
            return
        now = self._clock()
        what = {
            "sync_check_run": "update the check run",
            "sync_comment": "update the status comment",
            "react": "react to a comment",
            "post_comment": "post a reply",
            "promote": "promote",
        }.get(kind, kind)
        if kind == "promote":
            await self.record_promotion_result(proposal_id=proposal_id, deployment_id=None, error=error)
            return
        async with self._transaction(None) as session:
            proposal = await queries.locked_proposal(session, proposal_id)
            if proposal is None:
                return
            proposal.notes = [*proposal.notes, f"GitHub refused to {what}: {error[:300]}"][-5:]
            session.add(AuditEvent(proposal_id=proposal_id, actor="pinkflow", action="effect failed", detail=f"{kind}: {error}", at=now))
            # Not the kind that failed: that would fail again, and again.
            for other in SYNC_KINDS:
                if other != kind:
                    await outbox.enqueue_effect(
                        session, kind=other, now=now, proposal_id=proposal_id, installation_id=proposal.installation_id
                    )

    # -- decisions ---------------------------------------------------------------------------

    async def _settle(self, session: AsyncSession, proposal: Proposal, *, now: datetime) -> None:
        """Brings the stored state in line with the tally; the one place a proposal is decided."""
        if proposal.state not in queries.OPEN_STATES:
            return
        current = await proposal_tally(session, proposal)
        outcome = decide(current, now=now, closes_at=proposal.closes_at)
        closed = now >= proposal.closes_at
        new_state = outcome.value
        if new_state != proposal.state or (closed and proposal.decided_at is None):
            if closed or new_state != Outcome.VOTING.value:
                session.add(AuditEvent(proposal_id=proposal.id, actor="pinkflow", action=f"decision: {new_state}", detail=_tally_line(current), at=now))
            proposal.state = new_state
            proposal.decided_at = now if closed else None
            await self._enqueue_sync(session, proposal, now=now)
        rules = proposal_rules(proposal)
        if proposal.state == "passed" and rules.auto_promote:
            if await queries.promotion(session, proposal_id=proposal.id) is None:
                automatic = Voter(login="pinkflow", is_bot=True, permission=Permission.ADMIN)
                await self._promote(session, proposal, requester=automatic, force=False, now=now)

    async def refresh(self, delivery: DeliveryRef | None, *, proposal_id: int) -> None:
        """The check run's Re-run: rebuild from GitHub, then show the stored state again."""
        now = self._clock()
        async with self._transaction(delivery) as session:
            proposal = await queries.locked_proposal(session, proposal_id)
            if proposal is not None:
                await self._enqueue_rebuild(
                    session, proposal.installation_id, proposal.repo_full_name, proposal.pr_number, now=now
                )
                await self._settle(session, proposal, now=now)
                await self._enqueue_sync(session, proposal, now=now)

    async def _enqueue_rebuild(
        self, session: AsyncSession, installation_id: int | None, repo_full_name: str, pr_number: int, *, now: datetime
    ) -> None:
        await outbox.enqueue_effect(
            session,
            kind="rebuild",
            now=now,
            installation_id=installation_id,
            payload={"repo": repo_full_name, "number": pr_number},
        )

    async def apply_rebuild(
        self,
        *,
        installation_id: int | None,
        repo_full_name: str,
        pull: PullRequestFacts,
        pull_state: str,
        comments: Sequence[CommentFacts],
    ) -> None:
        """Brings the stored proposal in line with what GitHub shows: the pull request's head
        and state, and votes from comments whose webhooks never arrived. Idempotent."""
        now = self._clock()
        async with self._transaction(None) as session:
            stored = await queries.pull_request(session, repo_full_name=repo_full_name, number=pull.number)
            if stored is None:
                stored = PullRequest(repo_full_name=repo_full_name, number=pull.number, status_comment_id=None)
                session.add(stored)
            stored.installation_id, stored.head_sha, stored.author = installation_id, pull.head_sha, pull.author
            stored.state, stored.updated_at = pull_state, now
            for proposal in await queries.open_proposals_of_pull(session, repo_full_name=repo_full_name, pr_number=pull.number):
                if pull_state != "open":
                    await self._end(session, proposal, state="cancelled", actor="pinkflow", detail="pull request closed", now=now)
                elif proposal.head_sha != pull.head_sha:
                    await self._supersede(session, proposal, by=pull.head_sha, actor="pinkflow", now=now)
            proposal = await queries.current_proposal(
                session, repo_full_name=repo_full_name, pr_number=pull.number, for_update=True
            )
            if proposal is None or proposal.head_sha != pull.head_sha:
                return
            latest_comment = await queries.latest_comment_per_voter(session, proposal_id=proposal.id)
            for comment in sorted(comments, key=lambda c: c.comment_id):
                if comment.created_at < proposal.opened_at or comment.author_is_bot:
                    continue
                # A comment already counted, or older than one that was, changes nothing.
                if comment.comment_id <= latest_comment.get(comment.voter.login.lower(), 0):
                    continue
                votes = [c for c in comment.commands if c.kind in VOTE_CHOICES]
                accepted = [
                    await self._cast(
                        session, proposal, voter=comment.voter, command=c, comment_id=comment.comment_id, now=now,
                        explain_refusal=False,
                    )
                    for c in votes
                ]
                if any(accepted):
                    latest_comment[comment.voter.login.lower()] = comment.comment_id
                    session.add(
                        AuditEvent(proposal_id=proposal.id, actor="pinkflow", action="recovered vote", detail=f"comment {comment.comment_id}", at=now)
                    )
                    await outbox.enqueue_effect(
                        session, kind="react", now=now, installation_id=installation_id,
                        payload={"repo": repo_full_name, "comment_id": comment.comment_id, "content": "+1"},
                    )
            await self._settle(session, proposal, now=now)
            await self._enqueue_sync(session, proposal, now=now)

    async def close_due_proposals(self, *, limit: int = 100) -> int:
        """Closes voting periods that have ended, including those that ended while the App was down."""
        now = self._clock()
        async with self._transaction(None) as session:
            due = await queries.due_proposals(session, now=now, limit=limit)
            for proposal in due:
                await self._settle(session, proposal, now=now)
            return len(due)

    async def _enqueue_sync(self, session: AsyncSession, proposal: Proposal, *, now: datetime) -> None:
        if proposal.id is None:
            await session.flush()
        for kind in SYNC_KINDS:
            await outbox.enqueue_effect(
                session, kind=kind, now=now, proposal_id=proposal.id, installation_id=proposal.installation_id
            )

    # -- installations -----------------------------------------------------------------------

    async def record_installation(
        self, delivery: DeliveryRef | None, *, installation_id: int, account_login: str, action: str
    ) -> None:
        now = self._clock()
        async with self._transaction(delivery) as session:
            installation = await session.get(Installation, installation_id)
            if installation is None:
                installation = Installation(id=installation_id, account_login=account_login, created_at=now)
                session.add(installation)
            installation.account_login = account_login
            if action == "deleted":
                installation.deleted_at = now
            elif action == "suspend":
                installation.suspended_at = now
            elif action in ("unsuspend", "created"):
                installation.suspended_at = None
                installation.deleted_at = None


def _tally_line(current: Tally) -> str:
    return (
        f"{current.total} votes, {current.approval_rate:.2f}% weighted approval "
        f"({current.approve_weight} for, {current.reject_weight} against, {current.abstain_weight} abstaining)"
    )
