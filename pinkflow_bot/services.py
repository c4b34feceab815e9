"""Transactions: each service call changes the domain state and enqueues the effects that
must follow, in one commit, together with marking the delivery that caused it as done."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

from cachetools import TTLCache
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .governance.commands import HELP_TEXT, Command, CommandKind
from .governance.config import CONFIG_PATH
from .governance.decision import (
    LATE_DELIVERY_GRACE,
    Outcome,
    decide,
    promotion_refusal,
    proposal_blocker,
    vote_refusal,
    vote_time,
)
from .governance.durations import format_duration
from .governance.permissions import Permission
from .governance.render import escape_text
from .governance.rules import Rules, is_production_environment, login_key, weight_for
from .governance.tally import Ballot as CastBallot
from .governance.tally import Choice, Tally, current_ballots, tally
from .promotion.base import PromotionResult
from .repository_config import RepositoryConfig, RulesLookup, problems_as_json
from .settings import Settings
from .storage import inbox, outbox
from .storage import proposals as queries
from .storage.database import serialize_in_transaction, write_transaction
from .storage.models import (
    AuditEvent,
    Ballot,
    CommandUse,
    Hold,
    Installation,
    InstallationRepository,
    Promotion,
    Proposal,
    ProtectionRuleRequest,
    PullRequest,
)

log = logging.getLogger(__name__)

# How long an installation's suspended or deleted state is taken as known; a change made
# through another replica is seen within this.
INSTALLATION_STATE_SECONDS = 5.0

VOTE_CHOICES = {
    CommandKind.APPROVE: Choice.APPROVE,
    CommandKind.REJECT: Choice.REJECT,
    CommandKind.ABSTAIN: Choice.ABSTAIN,
    CommandKind.RETRACT: Choice.RETRACT,
}
SYNC_KINDS = ("sync_check_run", "sync_comment")
# States of a proposal in which `/promote --force` may still promote it (an admin overrides the vote).
FORCEABLE_STATES = ("voting", "passed", "rejected", "expired")
# Ended by what happened to the pull request (a push, a close), not by the vote: they open
# again when their commit is the head of the open pull request again.
ENDED_BY_THE_PULL_REQUEST = ("superseded", "cancelled")
# What a production deployment's `deployment_status` means for its promotion.
DEPLOYMENT_STATES = {
    "queued": "in_progress",
    "pending": "in_progress",
    "in_progress": "in_progress",
    "success": "success",
    "failure": "failure",
    "error": "failure",
}
# Promotions under way or done: the ones whose production deployment is followed.
# The session's note of the stored delivery its transaction handles (None: no delivery).
DELIVERY_IN_HAND = "pinkflow_delivery_in_hand"

FOLLOWED_PROMOTIONS = ("pending", "created", "in_progress", "success", "failure")


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
    # Teams the rules weigh whose membership GitHub would not show the App: not applied.
    unknown_teams: tuple[str, ...] = ()


@dataclass(frozen=True)
class CommentFacts:
    """A pull request comment as GitHub lists it, with its author's permission looked up."""

    comment_id: int
    created_at: datetime
    voter: Voter
    author_is_bot: bool
    commands: tuple[Command, ...]
    edited: bool = False  # changed since it was written: by whom, GitHub's list does not say


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


def preview_health(proposal: Proposal) -> bool | None:
    """Whether the preview answered without an error when last checked; None when never checked."""
    if proposal.health_checked_at is None:
        return None
    return proposal.health_status is not None and 200 <= proposal.health_status < 400


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
        # Each repository's `.github/pinkflow.yml`, read by handlers and effects through GitHub.
        self.config = RepositoryConfig(defaults=default_rules(settings))
        # Whether an installation is suspended or deleted, asked before every delivery and
        # effect: read again after a few seconds, and at once after this process records a change.
        self._inactive: TTLCache[int, bool] = TTLCache(maxsize=10_000, ttl=INSTALLATION_STATE_SECONDS)

    @property
    def settings(self) -> Settings:
        return self._settings

    @asynccontextmanager
    async def _transaction(self, delivery: DeliveryRef | None) -> AsyncIterator[AsyncSession]:
        async with write_transaction(self._sessions) as session:
            session.info[DELIVERY_IN_HAND] = delivery.seq if delivery is not None else None
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

    async def note_repository_visibility(self, repository: object) -> None:
        """A repository made private hides its earlier proposals too: their pages, JSON and
        dashboard rows need the signed link from then on. Only ever towards private: a late
        or redelivered event from before the change must not show them again."""
        if not isinstance(repository, dict) or repository.get("private") is not True:
            return
        full_name = repository.get("full_name")
        if not isinstance(full_name, str):
            return
        async with self._sessions() as session:  # a read first: nearly always nothing to change
            if not await queries.any_shown_publicly(session, repo_full_name=full_name):
                return
        async with write_transaction(self._sessions) as session:
            hidden = await queries.hide_proposals_of(session, repo_full_name=full_name)
        log.info("repository is private: its proposals are no longer shown publicly", extra={"proposals": hidden})

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
        repo_private: bool = False,
        head_rules: RulesLookup | None = None,
    ) -> None:
        """Keeps what the App knows of a pull request; a new head supersedes, a close cancels.
        `head_rules`, read when the head may be new (opened, reopened, pushed), decide what
        opens: with `open_on: pull_request` the head is put to a vote; otherwise its preview
        does that, but a proposal that a push or a close ended opens again when its commit
        is the head again (reopened, or pushed back), as its preview will not report twice."""
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
            if head_rules is None or state != "open":
                return
            facts = PullRequestFacts(number=number, head_sha=head_sha, author=author)
            if head_rules.rules.open_on == "pull_request":
                await self._open(
                    session,
                    installation_id=installation_id,
                    repo_full_name=repo_full_name,
                    repo_private=repo_private,
                    pull=facts,
                    preview_deployment_id=None,
                    preview_url=None,
                    environment=None,
                    lookup=head_rules,
                    now=now,
                )
                return
            ended = await queries.proposal_at(session, repo_full_name=repo_full_name, pr_number=number, head_sha=head_sha)
            if ended is not None and ended.state in ENDED_BY_THE_PULL_REQUEST:
                await self._reopen(
                    session, ended, pull=facts, preview_deployment_id=None, preview_url=None, environment=None,
                    lookup=head_rules, now=now,
                )

    async def _supersede(self, session: AsyncSession, proposal: Proposal, *, by: str, actor: str, now: datetime) -> None:
        proposal.superseded_by = by
        await self._end(session, proposal, state="superseded", actor=actor, detail=f"superseded by {by}", now=now)

    async def _end(self, session: AsyncSession, proposal: Proposal, *, state: str, actor: str, detail: str, now: datetime) -> None:
        proposal.state = state
        proposal.decided_at = now
        session.add(AuditEvent(proposal_id=proposal.id, actor=actor, action=state, detail=detail, at=now))
        # A workflow run waiting on this commit will not be promoted by this proposal now.
        await self._answer_protection_requests(session, proposal, approved=False, now=now)
        await self._enqueue_sync(session, proposal, now=now)

    # -- proposals -------------------------------------------------------------------------

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
        lookup: RulesLookup,
        as_of: datetime | None = None,
    ) -> int | None:
        """Puts the preview at the pull request's head to a vote under the rules `lookup` found
        (or, when the file is unusable, opens it failing until the file is fixed); a repeated
        success updates it. `as_of`: when `pull` was read from GitHub; if a delivery told the
        App more about the pull request since, `pull` is out of date and nothing is opened."""
        now = self._clock()
        async with self._transaction(delivery) as session:
            stored_pull = await queries.pull_request(session, repo_full_name=repo_full_name, number=pull.number)
            if _newer_than(stored_pull, as_of):
                return None
            if stored_pull is None:
                stored_pull = PullRequest(repo_full_name=repo_full_name, number=pull.number, status_comment_id=None)
                session.add(stored_pull)
            stored_pull.installation_id = installation_id
            stored_pull.head_sha = pull.head_sha
            stored_pull.author = pull.author
            stored_pull.state = "open"
            stored_pull.updated_at = now
            proposal = await self._open(
                session,
                installation_id=installation_id,
                repo_full_name=repo_full_name,
                repo_private=repo_private,
                pull=pull,
                preview_deployment_id=preview_deployment_id,
                preview_url=preview_url,
                environment=environment,
                lookup=lookup,
                now=now,
            )
            return proposal.id

    async def _open(
        self,
        session: AsyncSession,
        *,
        installation_id: int | None,
        repo_full_name: str,
        repo_private: bool,
        pull: PullRequestFacts,
        preview_deployment_id: int | None,
        preview_url: str | None,
        environment: str | None,
        lookup: RulesLookup,
        now: datetime,
    ) -> Proposal:
        proposal = await queries.proposal_at(
            session, repo_full_name=repo_full_name, pr_number=pull.number, head_sha=pull.head_sha
        )
        if proposal is not None:
            if proposal.state in ENDED_BY_THE_PULL_REQUEST:
                # Reopened, or pushed back to this commit: its vote opens again.
                await self._reopen(
                    session, proposal, pull=pull, preview_deployment_id=preview_deployment_id,
                    preview_url=preview_url, environment=environment, lookup=lookup, now=now,
                )
            elif proposal.state in queries.OPEN_STATES:
                new_preview = _take_preview(proposal, preview_url, preview_deployment_id, environment)
                await self._refresh_config(session, proposal, lookup, now=now)
                if new_preview:
                    await self._enqueue_health_check(session, proposal, now=now)
                await self._enqueue_sync(session, proposal, now=now)
            return proposal
        for older in await queries.open_proposals_of_pull(session, repo_full_name=repo_full_name, pr_number=pull.number):
            await self._supersede(session, older, by=pull.head_sha, actor="pinkflow", now=now)
        rules = lookup.rules
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
            config_problems=problems_as_json(lookup.problems),
        )
        session.add(proposal)
        await session.flush()
        opened = f"preview {preview_url}" if preview_url else "pull request head"
        session.add(AuditEvent(proposal_id=proposal.id, actor="pinkflow", action="opened", detail=opened, at=now))
        if lookup.problems:
            listed = "; ".join(problem.describe() for problem in lookup.problems)
            session.add(
                AuditEvent(proposal_id=proposal.id, actor="pinkflow", action="invalid configuration", detail=listed, at=now)
            )
        elif not rules.reset_on_push:
            await self._carry_votes_over(session, proposal, now=now)
        await self._enqueue_health_check(session, proposal, now=now)
        await self._settle(session, proposal, now=now)
        await self._enqueue_sync(session, proposal, now=now)
        log.info("proposal opened", extra={"proposal_id": proposal.id, "head_sha": pull.head_sha})
        return proposal

    async def _reopen(
        self,
        session: AsyncSession,
        proposal: Proposal,
        *,
        pull: PullRequestFacts,
        preview_deployment_id: int | None,
        preview_url: str | None,
        environment: str | None,
        lookup: RulesLookup,
        now: datetime,
    ) -> None:
        """A superseded or cancelled proposal whose commit is the open pull request's head
        again: voting opens anew for a full period under today's rules. The votes cast on
        this very commit still count."""
        for older in await queries.open_proposals_of_pull(session, repo_full_name=proposal.repo_full_name, pr_number=pull.number):
            if older.id != proposal.id:
                await self._supersede(session, older, by=pull.head_sha, actor="pinkflow", now=now)
        rules = lookup.rules
        was = proposal.state
        proposal.state, proposal.superseded_by, proposal.decided_at = "voting", None, None
        proposal.rules = rules.as_dict()
        proposal.opened_at, proposal.closes_at = now, now + rules.voting_period
        proposal.config_problems = problems_as_json(lookup.problems)
        _take_preview(proposal, preview_url, preview_deployment_id, environment)
        session.add(AuditEvent(proposal_id=proposal.id, actor="pinkflow", action="reopened", detail=f"was {was}; {pull.head_sha[:7]} is the head again", at=now))
        await self._enqueue_health_check(session, proposal, now=now)
        await self._settle(session, proposal, now=now)
        await self._enqueue_sync(session, proposal, now=now)

    async def _carry_votes_over(self, session: AsyncSession, proposal: Proposal, *, now: datetime) -> None:
        """`reset_on_push: false`: the votes that counted on the superseded proposal count
        here too, with the weights they were cast with."""
        older = await queries.superseded_before(
            session, repo_full_name=proposal.repo_full_name, pr_number=proposal.pr_number, before_id=proposal.id
        )
        if older is None:
            return
        counted = {b.sequence for b in current_ballots(cast_ballots(await queries.ballots(session, proposal_id=older.id)))}
        for row in await queries.ballots(session, proposal_id=older.id):
            if row.id not in counted:
                continue
            session.add(
                Ballot(
                    proposal_id=proposal.id,
                    voter=row.voter,
                    choice=row.choice,
                    weight=row.weight,
                    permission=row.permission,
                    reason=row.reason,
                    comment_id=row.comment_id,
                    cast_at=row.cast_at,
                )
            )
            detail = f"{row.choice} (weight {row.weight}) carried over from {older.head_sha[:7]}"
            session.add(AuditEvent(proposal_id=proposal.id, actor=row.voter, action="vote carried over", detail=detail, at=now))
        await session.flush()

    async def apply_config(self, delivery: DeliveryRef | None, *, repo_full_name: str, lookup: RulesLookup) -> int:
        """A push changed `.github/pinkflow.yml`: open proposals that could not use the old file
        take the new one up (or show its new problems). Returns how many changed."""
        now = self._clock()
        async with self._transaction(delivery) as session:
            changed = 0
            for proposal in await queries.open_proposals_of_repo(session, repo_full_name=repo_full_name):
                changed += await self._refresh_config(session, proposal, lookup, now=now)
            return changed

    async def repositories_waiting_for_owner_rules(self, *, owner: str, installation_id: int | None) -> list[str]:
        """Repositories of `owner` in the installation with an open proposal that cannot be
        voted on because the owner's `.github/pinkflow.yml`, which applies to them, is unusable."""
        async with self.read() as session:
            proposals = await queries.open_proposals_of_owner(session, owner=owner)
        return sorted(
            {
                proposal.repo_full_name
                for proposal in proposals
                if proposal.installation_id == installation_id
                and any(problem.get("repository") for problem in proposal.config_problems or ())
            }
        )

    async def _refresh_config(
        self, session: AsyncSession, proposal: Proposal, lookup: RulesLookup, *, now: datetime, recount: bool = True
    ) -> bool:
        """A proposal opened under an unusable file takes up the file as it is now. One that
        opened under usable rules keeps them: a later change does not move its goalposts.

        Votes commented meanwhile were refused, not stored: once the file is usable, the pull
        request's comments are read again (`recount`) and the votes in them are counted."""
        if not proposal.config_problems:
            return False
        if lookup.problems:
            stored = problems_as_json(lookup.problems)
            if stored == proposal.config_problems:
                return False
            proposal.config_problems = stored
            await self._enqueue_sync(session, proposal, now=now)
            return True
        rules = lookup.rules
        proposal.config_problems = None
        proposal.rules = rules.as_dict()
        # Nobody could vote while the file was unusable: the voting period starts now.
        proposal.closes_at = now + rules.voting_period
        detail = f"{CONFIG_PATH} is usable again; voting is open until {proposal.closes_at:%Y-%m-%d %H:%M} UTC"
        session.add(AuditEvent(proposal_id=proposal.id, actor="pinkflow", action="configuration fixed", detail=detail, at=now))
        await self._enqueue_health_check(session, proposal, now=now)
        if recount:
            await self._enqueue_rebuild(session, proposal.installation_id, proposal.repo_full_name, proposal.pr_number, now=now)
        await self._settle(session, proposal, now=now)
        await self._enqueue_sync(session, proposal, now=now)
        return True

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
        written_at: datetime | None = None,
    ) -> None:
        """Runs a comment's commands in order, in one commit. `written_at`: when GitHub says
        the comment was written; a vote written before the voting period ended counts when
        it is taken up late (see LATE_DELIVERY_GRACE). A counted command is answered by
        the status comment and check run, not by a reaction; a comment with a command that was
        not counted gets one "confused" reaction, and the status comment says why."""
        now = self._clock()
        async with self._transaction(delivery) as session:
            proposal = await queries.current_proposal(
                session, repo_full_name=repo_full_name, pr_number=pr_number, for_update=True
            )
            # Where a command that cannot run says why: the proposal the status comment shows.
            shown = proposal or await queries.latest_proposal(session, repo_full_name=repo_full_name, pr_number=pr_number)
            limited = await self._rate_limited(session, repo_full_name, voter.login, len(commands), now=now)
            if limited is not None:
                if shown is not None:
                    await self._note(session, shown, f"@{voter.login}: {limited}", now=now)
                await self._react(session, installation_id, repo_full_name, comment_id, "confused", now=now)
                return
            refused = False
            for command in commands:
                if command.kind is CommandKind.HELP:
                    await outbox.enqueue_effect(
                        session,
                        kind="post_comment",
                        now=now,
                        installation_id=installation_id,
                        payload={"repo": repo_full_name, "number": pr_number, "body": HELP_TEXT},
                    )
                    continue
                if command.kind is CommandKind.STATUS:
                    # Read the pull request and its comments again: a missed webhook is made good.
                    await self._enqueue_rebuild(session, installation_id, repo_full_name, pr_number, now=now)
                    continue
                if proposal is None:
                    refused = True
                    if shown is not None:
                        await self._note(session, shown, f"@{voter.login}: `/{command.kind}` {_not_current(shown)}", now=now)
                    continue
                if command.kind in VOTE_CHOICES:
                    accepted = await self._cast(
                        session, proposal, voter=voter, command=command, comment_id=comment_id, now=now, written_at=written_at
                    )
                elif command.kind is CommandKind.PROMOTE:
                    accepted = await self._promote(
                        session, proposal, requester=voter, force=command.force, reason=command.reason, now=now
                    )
                elif command.kind is CommandKind.HOLD:
                    accepted = await self._hold(session, proposal, voter=voter, reason=command.reason, now=now)
                else:  # UNHOLD
                    accepted = await self._unhold(session, proposal, voter=voter, now=now)
                refused = refused or not accepted
            if proposal is not None:
                await self._settle(session, proposal, now=now)
            if refused:
                await self._react(session, installation_id, repo_full_name, comment_id, "confused", now=now)

    async def _react(
        self, session: AsyncSession, installation_id: int | None, repo_full_name: str, comment_id: int, content: str, *, now: datetime
    ) -> None:
        await outbox.enqueue_effect(
            session,
            kind="react",
            now=now,
            installation_id=installation_id,
            payload={"repo": repo_full_name, "comment_id": comment_id, "content": content},
        )

    async def _rate_limited(self, session: AsyncSession, repo_full_name: str, login: str, count: int, *, now: datetime) -> str | None:
        """Why `count` more commands of `login` in the repository are refused now (RATE_LIMIT_WINDOW,
        RATE_LIMIT_MAX_REQUESTS); None when they may run, and then they are counted."""
        window = self._settings.rate_limit_window
        limit = self._settings.rate_limit_max_requests
        since = now - window
        # One count at a time per person and repository, whichever replica and pull request:
        # two counting at once would both see room for their commands.
        await serialize_in_transaction(session, f"commands {repo_full_name.lower()} {login.lower()}")
        used, oldest = await queries.commands_since(session, repo_full_name=repo_full_name, login=login, since=since)
        if used + count > limit:
            again = (oldest or now) + window
            log.info("commands refused: rate limit", extra={"login": login, "used": used, "limit": limit})
            return (
                f"not run: at most {limit} commands per {format_duration(window)} in this repository; "
                f"try again after {again:%Y-%m-%d %H:%M} UTC"
            )
        await queries.forget_commands_before(session, repo_full_name=repo_full_name, login=login, before=since)
        session.add(CommandUse(repo_full_name=repo_full_name, login=login.lower(), commands=count, at=now))
        return None

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
        written_at: datetime | None = None,
    ) -> bool:
        rules = proposal_rules(proposal)
        if proposal.state not in queries.OPEN_STATES or vote_time(written_at, now=now) >= proposal.closes_at:
            refusal = "voting has closed; the vote was not counted"
        elif proposal.config_problems:
            refusal = f"not counted yet: {CONFIG_PATH} on the default branch is invalid; the vote counts once the file is fixed"
        else:
            refusal = vote_refusal(
                voter=voter.login, voter_is_bot=voter.is_bot, permission=voter.permission, author=proposal.pr_author, rules=rules
            )
            if refusal is not None and command.kind is CommandKind.RETRACT:
                # Withdrawing one's own vote needs no right to vote now (a permission lowered
                # since): deleting the comment would withdraw it all the same.
                latest = await queries.latest_ballot(session, proposal_id=proposal.id, voter=voter.login)
                if latest is not None and latest.choice != Choice.RETRACT.value:
                    refusal = None
            refusal = None if refusal is None else f"not counted: {refusal}"
        if refusal is not None:
            if explain_refusal:
                await self._note(session, proposal, f"@{voter.login}: {refusal}", now=now)
                # The note is one of the newest few; the trail keeps why for good, on the proposal's page too.
                why = refusal.removeprefix("not counted: ").removeprefix("not counted yet: ")
                detail = f"{VOTE_CHOICES[command.kind].value}: {why}"
                session.add(AuditEvent(proposal_id=proposal.id, actor=voter.login, action="vote not counted", detail=detail, at=now))
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
        action = "retraction" if choice is Choice.RETRACT else "vote"
        detail = f"{choice.value} (weight {weight})" + (f": {command.reason}" if command.reason else "")
        if voter.teams and choice is not Choice.RETRACT:
            detail += f" as a member of {', '.join(voter.teams)}"
        unseen = voter.unknown_teams if choice is not Choice.RETRACT and login_key(voter.login) not in rules.user_weights else ()
        if unseen:
            why = (
                f"the weight of {', '.join(unseen)} was not applied: GitHub did not show the App whether"
                f" @{voter.login} is a member (the App needs the organization's members: read permission)"
            )
            detail += f"; {why}"
            if explain_refusal:
                await self._note(session, proposal, f"@{voter.login}: counted with weight {weight}; {why}", now=now)
        session.add(AuditEvent(proposal_id=proposal.id, actor=voter.login, action=action, detail=detail, at=now))
        await session.flush()
        await self._enqueue_sync(session, proposal, now=now)
        return True

    async def _withdraw(
        self, session: AsyncSession, proposal: Proposal, *, voter: str, comment_id: int, actor: str, why: str, now: datetime
    ) -> bool:
        """Withdraws the vote `comment_id` cast, if it is still `voter`'s latest: a retraction is
        appended (ballots are never changed). False when there was nothing to withdraw."""
        latest = await queries.latest_ballot(session, proposal_id=proposal.id, voter=voter)
        if latest is None or latest.comment_id != comment_id or latest.choice == Choice.RETRACT.value:
            return False
        session.add(
            Ballot(
                proposal_id=proposal.id,
                voter=latest.voter,
                choice=Choice.RETRACT.value,
                weight=0,
                permission=latest.permission,
                reason="",
                comment_id=comment_id,
                cast_at=now,
            )
        )
        detail = f"{latest.choice} (weight {latest.weight}) of @{latest.voter} withdrawn: {why}"
        session.add(AuditEvent(proposal_id=proposal.id, actor=actor, action="retraction", detail=detail, at=now))
        await session.flush()
        await self._enqueue_sync(session, proposal, now=now)
        return True

    async def _note(self, session: AsyncSession, proposal: Proposal, line: str, *, now: datetime) -> None:
        """A line for the status comment; the newest few are kept, the audit trail keeps the rest."""
        proposal.notes = ([*proposal.notes, line])[-5:]
        await self._enqueue_sync(session, proposal, now=now)

    # -- holds -------------------------------------------------------------------------------

    async def _hold(self, session: AsyncSession, proposal: Proposal, *, voter: Voter, reason: str, now: datetime) -> bool:
        refusal = _hold_refusal(proposal, voter)
        if refusal is not None:
            await self._note(session, proposal, f"@{voter.login}: not held: {refusal}", now=now)
            return False
        holds = await queries.active_holds(session, proposal_id=proposal.id)
        if any(hold.login.lower() == voter.login.lower() for hold in holds):
            return True  # held already; a second /hold changes nothing
        session.add(Hold(proposal_id=proposal.id, login=voter.login, reason=reason, held_at=now))
        session.add(AuditEvent(proposal_id=proposal.id, actor=voter.login, action="hold", detail=reason, at=now))
        # Notes are shown as written: the reason is someone's text, so it is escaped here.
        because = f": {escape_text(reason)}" if reason else ""
        await self._note(session, proposal, f"@{voter.login} put the promotion on hold{because}", now=now)
        return True

    async def _unhold(self, session: AsyncSession, proposal: Proposal, *, voter: Voter, now: datetime) -> bool:
        refusal = _hold_refusal(proposal, voter)
        if refusal is not None:
            await self._note(session, proposal, f"@{voter.login}: nothing released: {refusal}", now=now)
            return False
        holds = await queries.active_holds(session, proposal_id=proposal.id)
        if not holds:
            return True
        for hold in holds:
            hold.released_at, hold.released_by = now, voter.login
        released = ", ".join(f"@{hold.login}" for hold in holds)
        session.add(AuditEvent(proposal_id=proposal.id, actor=voter.login, action="unhold", detail=f"released the hold of {released}", at=now))
        await self._note(session, proposal, f"@{voter.login} released the hold of {released}", now=now)
        return True

    # -- edited and deleted comments ---------------------------------------------------------

    async def apply_comment_edit(
        self,
        delivery: DeliveryRef | None,
        *,
        installation_id: int | None,
        repo_full_name: str,
        pr_number: int,
        comment_id: int,
        voter: Voter,
        commands: Sequence[Command],
        written_at: datetime | None = None,
        edited_at: datetime | None = None,
    ) -> None:
        """An edit by the comment's author: the vote it cast follows the new text. Only votes
        are re-read; other commands ran when the comment was written. A comment written
        before the current commit was put to a vote, and that cast no vote on it, stays out
        of it: editing an old approval must not approve a commit its author has not seen."""
        now = self._clock()
        votes = [command for command in commands if command.kind in VOTE_CHOICES]
        async with self._transaction(delivery) as session:
            proposal = await queries.current_proposal(
                session, repo_full_name=repo_full_name, pr_number=pr_number, for_update=True
            )
            if proposal is None:
                return
            latest = await queries.latest_ballot(session, proposal_id=proposal.id, voter=voter.login)
            cast_here = latest is not None and latest.comment_id == comment_id
            if not cast_here and not votes:
                return  # the comment neither voted nor votes now
            if not cast_here and written_at is not None and written_at < proposal.opened_at:
                detail = f"edited comment {comment_id}, written before {proposal.head_sha[:7]} was put to a vote"
                session.add(AuditEvent(proposal_id=proposal.id, actor=voter.login, action="edit ignored", detail=detail, at=now))
                await self._note(
                    session, proposal, f"@{voter.login}: an edit of a comment older than this vote casts no vote; comment anew", now=now
                )
                await self._react(session, installation_id, repo_full_name, comment_id, "confused", now=now)
                return
            if latest is not None and latest.comment_id is not None and latest.comment_id > comment_id:
                detail = f"edited comment {comment_id}; a later vote (comment {latest.comment_id}) stands"
                session.add(AuditEvent(proposal_id=proposal.id, actor=voter.login, action="edit ignored", detail=detail, at=now))
                return
            limited = await self._rate_limited(session, repo_full_name, voter.login, len(votes), now=now) if votes else None
            if limited is not None:
                await self._note(session, proposal, f"@{voter.login}: edit {limited}", now=now)
                await self._react(session, installation_id, repo_full_name, comment_id, "confused", now=now)
                return
            if proposal.state not in queries.OPEN_STATES or vote_time(edited_at, now=now) >= proposal.closes_at:
                await self._note(session, proposal, f"@{voter.login}: voting has closed; the edit changed no vote", now=now)
                await self._react(session, installation_id, repo_full_name, comment_id, "confused", now=now)
                return
            await self._withdraw(
                session, proposal, voter=voter.login, comment_id=comment_id, actor=voter.login, why="the comment was edited", now=now
            )
            accepted = [
                await self._cast(
                    session, proposal, voter=voter, command=command, comment_id=comment_id, now=now, written_at=edited_at
                )
                for command in votes
            ]
            await self._settle(session, proposal, now=now)
            if not all(accepted):
                await self._react(session, installation_id, repo_full_name, comment_id, "confused", now=now)

    async def record_tampering(
        self,
        delivery: DeliveryRef | None,
        *,
        repo_full_name: str,
        pr_number: int,
        comment_id: int,
        author: str,
        editor: str,
    ) -> None:
        """Someone edited another person's comment: the edit changes nothing and is audited."""
        now = self._clock()
        async with self._transaction(delivery) as session:
            proposal = await queries.current_proposal(
                session, repo_full_name=repo_full_name, pr_number=pr_number, for_update=True
            ) or await queries.latest_proposal(session, repo_full_name=repo_full_name, pr_number=pr_number)
            if proposal is None:
                return
            detail = f"edited comment {comment_id} of @{author}; the edit was ignored"
            session.add(AuditEvent(proposal_id=proposal.id, actor=editor, action="tampering", detail=detail, at=now))
            await self._note(
                session,
                proposal,
                f"@{editor} edited a comment of @{author}; only a comment's author can change the vote it casts",
                now=now,
            )

    async def withdraw_deleted_comment(
        self, delivery: DeliveryRef | None, *, repo_full_name: str, pr_number: int, comment_id: int, deleted_by: str
    ) -> None:
        """A deleted comment's vote is withdrawn, unless its voter voted again since."""
        now = self._clock()
        async with self._transaction(delivery) as session:
            proposal = await queries.current_proposal(
                session, repo_full_name=repo_full_name, pr_number=pr_number, for_update=True
            )
            if proposal is None or proposal.state not in queries.OPEN_STATES or now >= proposal.closes_at:
                return
            withdrawn = False
            for voter in await queries.voters_of_comment(session, proposal_id=proposal.id, comment_id=comment_id):
                withdrawn |= await self._withdraw(
                    session, proposal, voter=voter, comment_id=comment_id, actor=deleted_by,
                    why=f"comment {comment_id} was deleted", now=now,
                )
            if withdrawn:
                await self._settle(session, proposal, now=now)

    async def forget_status_comment(
        self, delivery: DeliveryRef | None, *, repo_full_name: str, pr_number: int, comment_id: int
    ) -> None:
        """The status comment was deleted at GitHub: the next sync posts a new one."""
        async with self._transaction(delivery) as session:
            pull = await queries.pull_request(session, repo_full_name=repo_full_name, number=pr_number)
            if pull is not None and pull.status_comment_id == comment_id:
                pull.status_comment_id = None

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

    async def _promote(
        self, session: AsyncSession, proposal: Proposal, *, requester: Voter, force: bool, now: datetime, reason: str = ""
    ) -> bool:
        rules = proposal_rules(proposal)
        current = await proposal_tally(session, proposal)
        existing = await queries.promotion(session, proposal_id=proposal.id)
        held = bool(await queries.active_holds(session, proposal_id=proposal.id))
        refusal = promotion_refusal(
            outcome=decide(current, now=now, closes_at=proposal.closes_at),
            held=held,
            requester_permission=requester.permission,
            rules=rules,
            opened_at=proposal.opened_at,
            now=now,
            force=force,
            # A promotion that failed for good may be asked for again.
            already_promoted=existing is not None and existing.state != "failed",
            preview_healthy=preview_health(proposal),
            closes_at=proposal.closes_at,
        )
        if proposal.config_problems:
            # Fails closed, forced or not: nobody knows which rules were meant.
            refusal = f"{CONFIG_PATH} on the default branch is invalid"
        if proposal.state not in (FORCEABLE_STATES if force else queries.OPEN_STATES):
            refusal = refusal or f"the proposal is {proposal.state}"
        if refusal is not None:
            await self._note(session, proposal, f"@{requester.login}: not promoted: {refusal}", now=now)
            return False
        try:
            async with session.begin_nested():
                if existing is not None:
                    existing.requested_by, existing.forced, existing.requested_at = requester.login, force, now
                    existing.state, existing.error, existing.completed_at = "pending", None, None
                    existing.provider = rules.promote_provider
                    promotion = existing
                else:
                    promotion = Promotion(
                        proposal_id=proposal.id,
                        provider=rules.promote_provider,
                        requested_by=requester.login,
                        forced=force,
                        state="pending",
                        requested_at=now,
                    )
                    session.add(promotion)
        except IntegrityError:
            # Another replica or a double click got there first: one promotion only.
            await self._note(session, proposal, f"@{requester.login}: not promoted: already promoted", now=now)
            return False
        action = "forced promotion" if force else "promotion requested"
        detail = rules.promote_provider + (f": {reason}" if reason else "")
        if force:
            detail += f" (the vote was {proposal.state}: {_tally_line(current)})"
        session.add(AuditEvent(proposal_id=proposal.id, actor=requester.login, action=action, detail=detail, at=now))
        if rules.promote_provider == "protection_rule":
            # Promoting is approving the workflow runs that wait on this commit, now and later.
            await self._promoted(session, proposal, promotion, result=PromotionResult(reference="deployment protection rule"), now=now)
        else:
            await outbox.enqueue_effect(
                session, kind="promote", now=now, proposal_id=proposal.id, installation_id=proposal.installation_id,
                # Asked again after a failure: an earlier call may have gone through unseen.
                payload={"look_first": True} if existing is not None else None,
            )
        await self._enqueue_sync(session, proposal, now=now)
        return True

    async def promotion_blocker_now(self, proposal_id: int) -> str | None:
        """Why the pending promotion must not reach its provider now; None when it may.

        Asked right before each call to the provider: between the request and the call
        (a queued effect, a retry after minutes) a push, a close, a /hold or enough
        /reject votes may have taken away what the request stood on."""
        now = self._clock()
        async with self._sessions() as session:
            proposal = await session.get(Proposal, proposal_id)
            promotion = await queries.promotion(session, proposal_id=proposal_id)
            if proposal is None or promotion is None or promotion.state != "pending":
                return "nothing is waiting to be promoted"
            if proposal.config_problems:
                return f"{CONFIG_PATH} on the default branch is invalid"
            if proposal.state not in (FORCEABLE_STATES if promotion.forced else queries.OPEN_STATES):
                return f"the proposal is {proposal.state}"
            if promotion.forced:  # a forced promotion skips the vote and the holds, as when it was asked for
                return None
            current = await proposal_tally(session, proposal)
            held = bool(await queries.active_holds(session, proposal_id=proposal.id))
            return proposal_blocker(
                outcome=decide(current, now=now, closes_at=proposal.closes_at),
                held=held,
                rules=proposal_rules(proposal),
                opened_at=proposal.opened_at,
                now=now,
                preview_healthy=preview_health(proposal),
                closes_at=proposal.closes_at,
            )

    async def cancel_promotion(self, *, proposal_id: int, reason: str) -> None:
        """The pending promotion is not made: recorded as failed with why, so it can be asked
        for again once the reason is gone."""
        now = self._clock()
        async with self._transaction(None) as session:
            proposal = await queries.locked_proposal(session, proposal_id)
            promotion = await queries.promotion(session, proposal_id=proposal_id)
            if proposal is None or promotion is None or promotion.state != "pending":
                return
            promotion.state, promotion.error, promotion.completed_at = "failed", f"cancelled: {reason}", now
            session.add(AuditEvent(proposal_id=proposal_id, actor="pinkflow", action="promotion cancelled", detail=reason, at=now))
            await self._note(session, proposal, f"not promoted: {reason}", now=now)

    async def record_promotion_result(
        self,
        *,
        proposal_id: int,
        deployment_id: int | None = None,
        error: str | None = None,
        result: PromotionResult | None = None,
    ) -> None:
        """What the promotion provider answered: what it did, or why it did nothing."""
        now = self._clock()
        async with self._transaction(None) as session:
            proposal = await queries.locked_proposal(session, proposal_id)
            promotion = await queries.promotion(session, proposal_id=proposal_id)
            if proposal is None or promotion is None:
                return
            if error is None:
                result = result or PromotionResult(deployment_id=deployment_id)
                await self._promoted(session, proposal, promotion, result=result, now=now)
            else:
                promotion.completed_at = now
                promotion.state = "failed"
                promotion.error = error
                session.add(AuditEvent(proposal_id=proposal_id, actor="pinkflow", action="promotion failed", detail=error, at=now))
            await self._enqueue_sync(session, proposal, now=now)

    async def _promoted(
        self, session: AsyncSession, proposal: Proposal, promotion: Promotion, *, result: PromotionResult, now: datetime
    ) -> None:
        promotion.completed_at = now
        # The production deployment may already have reported; its state is newer.
        if promotion.state == "pending":
            promotion.state = "created"
        promotion.deployment_id = promotion.deployment_id or result.deployment_id
        promotion.reference = result.reference
        promotion.environment_url = promotion.environment_url or result.url
        proposal.state = "promoted"
        proposal.decided_at = proposal.decided_at or now
        what = [f"production deployment {result.deployment_id}" if result.deployment_id else None, result.reference, result.url]
        detail = f"{promotion.provider}: " + ", ".join(str(part) for part in what if part)
        session.add(AuditEvent(proposal_id=proposal.id, actor="pinkflow", action="promoted", detail=detail, at=now))
        await self._answer_protection_requests(session, proposal, approved=True, now=now)

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
            "answer_protection_rule": "answer the deployment protection rule",
            "check_preview": "check the preview",
        }.get(kind, kind)
        if kind == "promote":
            await self.record_promotion_result(proposal_id=proposal_id, error=error)
            return
        async with self._transaction(None) as session:
            proposal = await queries.locked_proposal(session, proposal_id)
            if proposal is None:
                return
            proposal.notes = [*proposal.notes, f"GitHub refused to {what}: {error[:300]}"][-5:]
            session.add(AuditEvent(proposal_id=proposal_id, actor="pinkflow", action="effect failed", detail=f"{kind}: {error}", at=now))
            # Not the kind that failed (it would fail again), nor one that has failed for good
            # already: two refusing outputs must not keep asking each other to try again.
            for other in SYNC_KINDS:
                if other != kind and not await outbox.has_failed(session, proposal_id=proposal_id, kind=other):
                    await outbox.enqueue_effect(
                        session, kind=other, now=now, proposal_id=proposal_id, installation_id=proposal.installation_id
                    )

    # -- the production deployment -------------------------------------------------------------

    async def followed_promotion(
        self, *, repo_full_name: str, deployment_id: int, sha: str, environment: str | None
    ) -> int | None:
        """The proposal whose promotion this production deployment is: the one created for it,
        or (providers whose CD makes its own deployment) one to the production environment at
        the promoted commit. None for any other deployment."""
        async with self.read() as session:
            promotion = await queries.promotion_by_deployment(session, deployment_id=deployment_id)
            if promotion is not None:
                proposal = await session.get(Proposal, promotion.proposal_id)
                if proposal is not None and proposal.repo_full_name == repo_full_name:
                    return proposal.id
            proposal = await queries.proposal_for_commit(session, repo_full_name=repo_full_name, head_sha=sha)
            if proposal is None or not is_production_environment(environment, proposal_rules(proposal).production_environment):
                return None
            promotion = await queries.promotion(session, proposal_id=proposal.id)
            if promotion is None or promotion.state not in FOLLOWED_PROMOTIONS:
                return None
            if promotion.deployment_id not in (None, deployment_id) and not _newer_attempt(promotion, deployment_id):
                return None  # another deployment is the promotion's
            return proposal.id

    async def record_deployment_status(
        self,
        delivery: DeliveryRef | None,
        *,
        proposal_id: int,
        deployment_id: int,
        state: str,
        environment_url: str | None,
        description: str | None,
        creator: str,
    ) -> None:
        """The production deployment reports: in progress, success with its URL, or failure."""
        now = self._clock()
        async with self._transaction(delivery) as session:
            proposal = await queries.locked_proposal(session, proposal_id)
            promotion = await queries.promotion(session, proposal_id=proposal_id)
            followed = DEPLOYMENT_STATES.get(state)
            if proposal is None or promotion is None or followed is None:
                return  # `inactive`: a later deployment replaced this one, which says nothing new
            newer = _newer_attempt(promotion, deployment_id)
            if promotion.deployment_id is None or newer:
                promotion.deployment_id = deployment_id
            if promotion.state in ("success", "failure") and followed == "in_progress" and not newer:
                return  # a late delivery of an earlier status
            if promotion.state == followed and (environment_url or None) == promotion.environment_url:
                return
            promotion.state = followed
            if environment_url:
                promotion.environment_url = environment_url
            action = {"in_progress": "deploying", "success": "deployed", "failure": "deployment failed"}[followed]
            what = f"deployment {deployment_id} {state}"
            extra = environment_url if followed == "success" else description
            detail = what + (f": {extra}" if extra else "")
            session.add(AuditEvent(proposal_id=proposal_id, actor=creator, action=action, detail=detail, at=now))
            await self._enqueue_sync(session, proposal, now=now)

    # -- deployment protection rules -----------------------------------------------------------

    async def record_protection_request(
        self,
        delivery: DeliveryRef | None,
        *,
        installation_id: int | None,
        repo_full_name: str,
        head_sha: str,
        run_id: int,
        environment: str,
    ) -> None:
        """A workflow run waits on this App before deploying `head_sha` to `environment`: it is
        answered once the proposal for that commit is decided, and kept until then."""
        now = self._clock()
        async with self._transaction(delivery) as session:
            request = await queries.protection_request(
                session, repo_full_name=repo_full_name, run_id=run_id, environment=environment
            )
            if request is None:
                try:
                    async with session.begin_nested():
                        request = ProtectionRuleRequest(
                            installation_id=installation_id,
                            repo_full_name=repo_full_name,
                            head_sha=head_sha,
                            run_id=run_id,
                            environment=environment,
                            requested_at=now,
                        )
                        session.add(request)
                except IntegrityError:
                    return  # another replica stored it
            elif request.answer is not None:
                # Decided before, and asking again: its job was re-run, which keeps the run's
                # id, and waits anew; it is decided again below. (A redelivery of the same event
                # never gets here; an answer still on its way is then sent once, as decided now.)
                request.head_sha, request.requested_at = head_sha, now
                request.answer, request.answered_at = None, None
            proposal = await queries.proposal_for_commit(session, repo_full_name=repo_full_name, head_sha=head_sha)
            if proposal is None:
                return  # the proposal that opens for this commit will answer it
            proposal = await queries.locked_proposal(session, proposal.id)
            detail = f"workflow run {run_id} waits to deploy to {environment}"
            session.add(AuditEvent(proposal_id=proposal.id, actor="github-actions", action="deployment requested", detail=detail, at=now))
            promotion = await queries.promotion(session, proposal_id=proposal.id)
            if proposal.state == "promoted" or (promotion is not None and promotion.state not in ("pending", "failed")):
                await self._answer_protection_requests(session, proposal, approved=True, now=now)
            elif proposal.state in ("rejected", "expired", "superseded", "cancelled"):
                await self._answer_protection_requests(session, proposal, approved=False, now=now)
            else:
                await self._settle(session, proposal, now=now)
            await self._enqueue_sync(session, proposal, now=now)

    async def _answer_protection_requests(
        self, session: AsyncSession, proposal: Proposal, *, approved: bool, now: datetime
    ) -> None:
        """Decides the waiting workflow runs of the proposal's commit, once each; the answers
        leave through the outbox."""
        answer = "approved" if approved else "rejected"
        for request in await queries.protection_requests(
            session, repo_full_name=proposal.repo_full_name, head_sha=proposal.head_sha
        ):
            request.answer = answer
            detail = f"workflow run {request.run_id} to {request.environment}: {answer}"
            session.add(AuditEvent(proposal_id=proposal.id, actor="pinkflow", action="deployment reviewed", detail=detail, at=now))
            await outbox.enqueue_effect(
                session,
                kind="answer_protection_rule",
                now=now,
                proposal_id=proposal.id,
                installation_id=request.installation_id or proposal.installation_id,
                payload={"request_id": request.id},
            )

    async def protection_request_answered(
        self, *, request_id: int, proposal_id: int | None = None, refused: str | None = None
    ) -> None:
        """The answer left; `refused`: GitHub's words when it did not take it, kept in the
        proposal's audit trail, which otherwise says only what was decided."""
        now = self._clock()
        async with self._transaction(None) as session:
            request = await session.get(ProtectionRuleRequest, request_id)
            if request is None or request.answered_at is not None:
                return
            request.answered_at = now
            proposal = await session.get(Proposal, proposal_id) if refused is not None and proposal_id is not None else None
            if proposal is not None:
                detail = f"workflow run {request.run_id} to {request.environment}: {refused}"
                session.add(
                    AuditEvent(proposal_id=proposal.id, actor="pinkflow", action="deployment review refused", detail=detail, at=now)
                )
                await self._enqueue_sync(session, proposal, now=now)

    # -- preview health ------------------------------------------------------------------------

    async def _enqueue_health_check(self, session: AsyncSession, proposal: Proposal, *, now: datetime) -> None:
        if proposal.preview_url:
            await outbox.enqueue_effect(
                session, kind="check_preview", now=now, proposal_id=proposal.id, installation_id=proposal.installation_id
            )

    async def record_preview_health(
        self, *, proposal_id: int, preview_url: str, status: int | None, elapsed_ms: int | None, error: str | None
    ) -> None:
        """What the preview answered; with `preview_health.required`, promotion waits for a good answer."""
        now = self._clock()
        async with self._transaction(None) as session:
            proposal = await queries.locked_proposal(session, proposal_id)
            if proposal is None or proposal.preview_url != preview_url:
                return  # a newer preview is checked by its own effect
            proposal.health_status, proposal.health_elapsed_ms = status, elapsed_ms
            proposal.health_error, proposal.health_checked_at = error, now
            await self._settle(session, proposal, now=now)
            await self._enqueue_sync(session, proposal, now=now)

    # -- decisions ---------------------------------------------------------------------------

    async def _settle(self, session: AsyncSession, proposal: Proposal, *, now: datetime) -> None:
        """Brings the stored state in line with the tally; the one place a proposal is decided."""
        await self._decide(session, proposal, now=now)
        proposal.revisit_at = next_revisit(proposal, now=now)

    async def _decide(self, session: AsyncSession, proposal: Proposal, *, now: datetime) -> None:
        if proposal.state not in queries.OPEN_STATES:
            return
        if proposal.config_problems:
            # Nothing is decided under rules nobody can read: it stays open, failing, until the
            # file is fixed, and its voting period starts then.
            return
        closed = now >= proposal.closes_at
        if closed and proposal.decided_at is None and await self._in_time_deliveries_waiting(session, proposal, now=now):
            return  # closed once they are handled: the votes commented in time count
        current = await proposal_tally(session, proposal)
        outcome = decide(current, now=now, closes_at=proposal.closes_at)
        new_state = outcome.value
        if new_state != proposal.state or (closed and proposal.decided_at is None):
            if closed or new_state != Outcome.VOTING.value:
                session.add(AuditEvent(proposal_id=proposal.id, actor="pinkflow", action=f"decision: {new_state}", detail=_tally_line(current), at=now))
            proposal.state = new_state
            proposal.decided_at = now if closed else None
            await self._enqueue_sync(session, proposal, now=now)
        if proposal.state in ("rejected", "expired"):
            await self._answer_protection_requests(session, proposal, approved=False, now=now)
            return
        if proposal.state != "passed" or proposal.config_problems:
            return
        rules = proposal_rules(proposal)
        # A workflow run that waits on the protection rule asked for the promotion itself.
        waiting = rules.promote_provider == "protection_rule" and bool(
            await queries.protection_requests(session, repo_full_name=proposal.repo_full_name, head_sha=proposal.head_sha)
        )
        if not (rules.auto_promote or waiting) or await queries.promotion(session, proposal_id=proposal.id) is not None:
            return
        blocker = proposal_blocker(
            outcome=Outcome.PASSED,
            held=bool(await queries.active_holds(session, proposal_id=proposal.id)),
            rules=rules,
            opened_at=proposal.opened_at,
            now=now,
            preview_healthy=preview_health(proposal),
        )
        if blocker is None:
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
        lookup: RulesLookup | None = None,
        read_at: datetime | None = None,
    ) -> None:
        """Brings the stored proposal in line with what GitHub shows: the pull request's head
        and state, the repository's rules file if it was unusable, the preview's health, and
        votes from comments whose webhooks never arrived. Idempotent. When a delivery told
        the App about the pull request after `read_at` (the read), the head and state read
        are out of date and are left alone.

        A comment edited since it was written is not read for votes: GitHub's list does not
        say who edited it, and only its author's edits count (they arrive as webhooks)."""
        now = self._clock()
        async with self._transaction(None) as session:
            stored = await queries.pull_request(session, repo_full_name=repo_full_name, number=pull.number)
            if not _newer_than(stored, read_at):
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
            if lookup is not None:
                # The comments are read right below.
                await self._refresh_config(session, proposal, lookup, now=now, recount=False)
            if proposal.state in queries.OPEN_STATES:
                await self._enqueue_health_check(session, proposal, now=now)
            latest_comment = await queries.latest_comment_per_voter(session, proposal_id=proposal.id)
            for comment in sorted(comments, key=lambda c: c.comment_id):
                if comment.created_at < proposal.opened_at or comment.author_is_bot:
                    continue
                # A comment already counted, or older than one that was, changes nothing.
                if comment.comment_id <= latest_comment.get(comment.voter.login.lower(), 0):
                    continue
                if comment.edited:
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
            await self._settle(session, proposal, now=now)
            await self._enqueue_sync(session, proposal, now=now)

    async def close_due_proposals(self, *, limit: int = 100) -> int:
        """Closes voting periods that have ended, including those that ended while the App was
        down, and lets passed proposals whose minimum voting time has ended be promoted (on
        their own, with `promote.auto`; the Promote button shows)."""
        now = self._clock()
        async with self._transaction(None) as session:
            due = await queries.due_proposals(session, now=now, limit=limit)
            for proposal in due:
                await self._settle(session, proposal, now=now)
                await self._enqueue_sync(session, proposal, now=now)  # time changed what it shows
            return len(due)

    async def _in_time_deliveries_waiting(self, session: AsyncSession, proposal: Proposal, *, now: datetime) -> bool:
        """Whether deliveries about the proposal's pull request that GitHub made before its
        voting period ended are still to be handled (other than the one in hand), within
        LATE_DELIVERY_GRACE of the end."""
        if now >= proposal.closes_at + LATE_DELIVERY_GRACE:
            return False
        return await inbox.pull_request_deliveries_waiting(
            session,
            repo_full_name=proposal.repo_full_name,
            number=proposal.pr_number,
            received_before=proposal.closes_at,
            other_than=session.info.get(DELIVERY_IN_HAND),
        )

    async def _enqueue_sync(self, session: AsyncSession, proposal: Proposal, *, now: datetime) -> None:
        if proposal.id is None:
            await session.flush()
        for kind in SYNC_KINDS:
            await outbox.enqueue_effect(
                session, kind=kind, now=now, proposal_id=proposal.id, installation_id=proposal.installation_id
            )

    # -- installations -----------------------------------------------------------------------

    async def record_installation(
        self,
        delivery: DeliveryRef | None,
        *,
        installation_id: int,
        account_login: str,
        action: str,
        repositories: Sequence[str] = (),
    ) -> None:
        """`installation` created, deleted, suspend, unsuspend (and new permissions accepted)."""
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
            if action == "created":
                await self._repositories_added(session, installation_id, repositories, now=now)
        self._inactive.pop(installation_id, None)
        log.info("installation recorded", extra={"installation_id": installation_id, "change": action})

    async def record_installation_repositories(
        self,
        delivery: DeliveryRef | None,
        *,
        installation_id: int,
        account_login: str,
        added: Sequence[str],
        removed: Sequence[str],
    ) -> None:
        """`installation_repositories` added and removed."""
        now = self._clock()
        async with self._transaction(delivery) as session:
            if await session.get(Installation, installation_id) is None:
                session.add(Installation(id=installation_id, account_login=account_login, created_at=now))
            await self._repositories_added(session, installation_id, added, now=now)
            for full_name in removed:
                row = await _installation_repository(session, installation_id, full_name)
                if row is not None:
                    row.removed_at = now

    async def _repositories_added(self, session: AsyncSession, installation_id: int, names: Sequence[str], *, now: datetime) -> None:
        for full_name in names:
            row = await _installation_repository(session, installation_id, full_name)
            if row is None:
                session.add(InstallationRepository(installation_id=installation_id, repo_full_name=full_name, added_at=now))
            else:
                row.added_at, row.removed_at = now, None
        await session.flush()

    async def installation_inactive(self, installation_id: int | None) -> bool:
        """Whether the installation was suspended or deleted: its deliveries are not acted on."""
        if installation_id is None:
            return False
        known = self._inactive.get(installation_id)
        if known is not None:
            return known
        async with self.read() as session:
            installation = await session.get(Installation, installation_id)
        inactive = installation is not None and (installation.suspended_at is not None or installation.deleted_at is not None)
        self._inactive[installation_id] = inactive
        return inactive


async def _installation_repository(session: AsyncSession, installation_id: int, full_name: str) -> InstallationRepository | None:
    return await session.scalar(
        select(InstallationRepository).where(
            InstallationRepository.installation_id == installation_id,
            InstallationRepository.repo_full_name == full_name,
        )
    )


def _not_current(proposal: Proposal) -> str:
    """Why a command about `proposal`, which is no longer current, does nothing."""
    if proposal.state == "superseded":
        newer = f" by {proposal.superseded_by[:7]}" if proposal.superseded_by else ""
        return f"not run: this proposal was superseded{newer}; the newer commit's preview opens the next vote"
    return f"not run: the proposal is {proposal.state}"


def _take_preview(proposal: Proposal, url: str | None, deployment_id: int | None, environment: str | None) -> bool:
    """A preview reported again for the proposal's commit; whether its URL is a new one."""
    new = bool(url) and url != proposal.preview_url
    proposal.preview_url = url or proposal.preview_url
    proposal.preview_deployment_id = deployment_id or proposal.preview_deployment_id
    proposal.environment = environment or proposal.environment
    return new


def _newer_attempt(promotion: Promotion, deployment_id: int) -> bool:
    """Whether a production deployment at the promoted commit is a newer attempt at the same
    promotion: its job re-run (a protection rule's), or the receiver's CD deploying again.
    Not for the `github` provider, whose promotion is the one deployment the App created."""
    return (
        promotion.provider != "github"
        and promotion.deployment_id is not None
        and deployment_id > promotion.deployment_id
    )


def _newer_than(pull: PullRequest | None, read_at: datetime | None) -> bool:
    """Whether the stored pull request was updated by a delivery after GitHub was read."""
    return pull is not None and read_at is not None and pull.updated_at is not None and pull.updated_at > read_at


def next_revisit(proposal: Proposal, *, now: datetime) -> datetime | None:
    """When time alone next changes what the open proposal shows or allows: the end of its
    minimum voting time (if still ahead), else the end of its voting period; for a proposal
    that closed as passed, the end of a minimum voting time still ahead."""
    if proposal.state not in queries.OPEN_STATES or proposal.config_problems:
        return None  # over, or waiting for its rules file to be fixed
    minimum_ends = proposal.opened_at + proposal_rules(proposal).min_voting_time
    if proposal.decided_at is not None:
        # Closed as passed before a minimum voting time longer than its period had ended:
        # it becomes promotable then (on its own, with `promote.auto`).
        return minimum_ends if proposal.state == "passed" and now < minimum_ends else None
    return minimum_ends if now < minimum_ends < proposal.closes_at else proposal.closes_at


def _hold_refusal(proposal: Proposal, voter: Voter) -> str | None:
    if voter.is_bot:
        return "bots cannot hold promotions"
    if voter.permission < Permission.WRITE:
        return f"needs write permission or above (has {voter.permission.label})"
    if proposal.state not in queries.OPEN_STATES:
        return f"the proposal is {proposal.state}"
    return None


def _tally_line(current: Tally) -> str:
    # The weights are said to be weights: "5 for" beside "3 votes" would not add up.
    votes = "1 vote" if current.total == 1 else f"{current.total} votes"
    return (
        f"{votes}, {current.approval_rate:g}% weighted approval "
        f"(weights {current.approve_weight} for, {current.reject_weight} against, {current.abstain_weight} abstaining)"
    )
