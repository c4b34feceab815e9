"""Delivers the outbox: makes GitHub show the stored state, reacts, replies and promotes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import replace
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import aiohttp
import gidgethub
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from . import metrics
from .failure_logs import FailureLog, one_line
from .github.client import GitHubApp, TeamMemberships
from .governance.commands import parse_commands
from .governance.durations import format_duration
from .governance.permissions import Permission
from .governance.render import (
    CHECK_RUN_NAME,
    STATUS_MARKER,
    AuditLine,
    HealthView,
    PromotionView,
    ProposalView,
    render_check_run,
    render_status_comment,
)
from .governance.rules import is_preview_environment
from .handlers.context import is_bot
from .links import proposal_link
from .logs import log_context
from .preview_health import check_preview
from .promotion import (
    GitHubDeploymentProvider,
    PromotionError,
    PromotionRefused,
    PromotionRequest,
    VercelProvider,
    WebhookProvider,
    review_deployment_protection_rule,
)
from .repository_config import problems_from_json
from .retries import PermanentFailure, RetryPlan, plan_retry
from .services import (
    SYNC_KINDS,
    VOTE_CHOICES,
    CommentFacts,
    GovernanceService,
    PullRequestFacts,
    Voter,
    proposal_rules,
    proposal_tally,
    utcnow,
)
from .storage import leases, outbox
from .storage import proposals as queries
from .storage.database import exclusive, single_writer, write_transaction
from .storage.models import Effect, Proposal, ProtectionRuleRequest

log = logging.getLogger(__name__)

MAX_EFFECT_ATTEMPTS = 12
# Waits for GitHub's rate limit use up no attempt; they have this bound of their own
# (with the backoff capped at 15 minutes, about a day).
MAX_EFFECT_RATE_LIMIT_WAITS = 100
# The proposal views being read for the effects performed together (see EffectRunner.perform).
_views: ContextVar[dict[int, asyncio.Future] | None] = ContextVar("pinkflow_proposal_views", default=None)
# The check run shows the newest entries of the audit trail that fit in GitHub's limit.
MAX_AUDIT_SHOWN = 2000


async def proposal_view(
    session: AsyncSession, proposal: Proposal, *, now: datetime, details_url: str | None = None
) -> ProposalView:
    promotion = await queries.promotion(session, proposal_id=proposal.id)
    holds = await queries.active_holds(session, proposal_id=proposal.id)
    audit = await queries.audit_trail(session, proposal_id=proposal.id, limit=MAX_AUDIT_SHOWN)
    total = len(audit) if len(audit) < MAX_AUDIT_SHOWN else await queries.audit_count(session, proposal_id=proposal.id)
    promotion_shown = None
    if promotion is not None:
        promotion_shown = PromotionView(
            requested_by=promotion.requested_by,
            state=promotion.state,
            deployment_id=promotion.deployment_id,
            environment_url=promotion.environment_url,
            error=promotion.error,
            forced=promotion.forced,
        )
        if promotion.state == "pending":
            promotion_shown = await _retrying(session, promotion_shown, proposal_id=proposal.id)
    health = None
    if proposal.health_checked_at is not None:
        health = HealthView(status=proposal.health_status, elapsed_ms=proposal.health_elapsed_ms, error=proposal.health_error)
    return ProposalView(
        id=proposal.id,
        repo_full_name=proposal.repo_full_name,
        pr_number=proposal.pr_number,
        head_sha=proposal.head_sha,
        preview_url=proposal.preview_url,
        environment=proposal.environment,
        state=proposal.state,
        opened_at=proposal.opened_at,
        closes_at=proposal.closes_at,
        now=now,
        rules=proposal_rules(proposal),
        tally=await proposal_tally(session, proposal),
        promotion=promotion_shown,
        notes=tuple(proposal.notes or ()),
        superseded_by=proposal.superseded_by,
        details_url=details_url,
        held_by=tuple(hold.login for hold in holds),
        health=health,
        audit=tuple(AuditLine(at=e.at, actor=e.actor, action=e.action, detail=e.detail or "") for e in audit),
        audit_total=total,
        config_problems=problems_from_json(proposal.config_problems),
    )


async def _retrying(session: AsyncSession, promotion: PromotionView, *, proposal_id: int) -> PromotionView:
    """A pending promotion whose last try failed: that failure, and when and which try is next."""
    effect = await outbox.unfinished_effect(session, proposal_id=proposal_id, kind="promote")
    if effect is None or not effect.last_error:
        return promotion
    counted = effect.attempts - effect.rate_limit_waits  # the tries so far that count against the limit
    under_way = effect.status == "processing"
    return replace(
        promotion,
        error=effect.last_error,
        retry_at=None if under_way else effect.not_before,
        attempt=counted if under_way else counted + 1,
        max_attempts=MAX_EFFECT_ATTEMPTS,
    )


class EffectRunner:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        github: GitHubApp,
        service: GovernanceService,
        clock: Callable[[], datetime] = utcnow,
        lease: timedelta = timedelta(seconds=60),
        http: aiohttp.ClientSession | None = None,
        failures: FailureLog | None = None,
    ) -> None:
        self._lease = lease
        self._failures = failures or FailureLog()
        self._sessions = sessions
        self._single_writer = single_writer(sessions)
        self._github = github
        self._service = service
        self._clock = clock
        # For calls beyond GitHub: the Vercel API and promotion webhooks.
        self._http = http

    async def run_due(self, *, limit: int = 16, coalesce: bool = True) -> int:
        """Claims and performs the due effects; returns how many were taken. Without
        `coalesce`, edits are not held back to gather a burst (for draining at once)."""
        interval = outbox.CONVERGE_INTERVAL if coalesce else timedelta(0)
        if self._single_writer:
            # SQLite: look before taking the write lock, which a vote's transaction may want.
            async with self._sessions() as session:
                if not await outbox.any_due_effects(session, now=self._clock(), converge_interval=interval):
                    return 0
        async with write_transaction(self._sessions) as session:
            claimed = await outbox.claim_due_effects(
                session, now=self._clock(), lease=self._lease, limit=limit, converge_interval=interval,
                max_attempts=MAX_EFFECT_ATTEMPTS,
            )
        for effect in claimed.out_of_time:
            await self._show_out_of_time(effect)
        await self.perform(claimed.to_perform)
        return len(claimed.to_perform) + len(claimed.out_of_time)

    async def _show_out_of_time(self, effect: Effect) -> None:
        """An effect parked because every attempt it had outlasted its lease is shown like
        one GitHub refused for good."""
        with log_context(effect_id=effect.id, effect=effect.kind, proposal_id=effect.proposal_id):
            metrics.EFFECTS.labels(kind=effect.kind, outcome="failed").inc()
            log.warning("effect failed for good", extra={"error": effect.last_error})
            try:
                await self._service.record_effect_failure(
                    proposal_id=effect.proposal_id, kind=effect.kind, error=effect.last_error or "its attempts ran out of time"
                )
            except Exception:  # the effect is parked all the same; the others go on
                log.exception("the effect's failure could not be recorded")

    async def perform(self, effects: list[Effect]) -> None:
        """Performs claimed effects together; the check run and the comment of one proposal
        show the same state, so it is read once for them."""
        token = _views.set({})
        try:
            await asyncio.gather(*(self._perform(effect) for effect in effects))
        finally:
            _views.reset(token)

    async def _view(self, proposal_id: int) -> tuple[Proposal, ProposalView] | None:
        """The proposal and its view as stored now, read once for the effects performed together."""
        views = _views.get()
        reading = views.get(proposal_id) if views is not None else None
        if reading is None:
            reading = asyncio.ensure_future(self._read_view(proposal_id))
            if views is not None:
                views[proposal_id] = reading
        return await asyncio.shield(reading)

    async def _read_view(self, proposal_id: int) -> tuple[Proposal, ProposalView] | None:
        async with self._sessions() as session:
            proposal = await session.get(Proposal, proposal_id)
            if proposal is None:
                return None
            return proposal, await proposal_view(session, proposal, now=self._clock(), details_url=self._details_url(proposal))

    async def _perform(self, effect: Effect) -> None:
        with log_context(effect_id=effect.id, effect=effect.kind, proposal_id=effect.proposal_id):
            try:
                # Renewed while it runs: a slow one (a promotion) is not taken over and done twice.
                async with leases.kept(self._sessions, effect, lease=self._lease, clock=self._clock):
                    if await self._service.installation_inactive(effect.installation_id):
                        # Suspended or deleted: its token would be refused; nothing is done for it.
                        log.info("effect dropped: the installation is suspended or deleted")
                        if effect.kind == "promote" and effect.proposal_id is not None:
                            # Not left pending for ever: asked for again once the App is back.
                            await self._service.cancel_promotion(
                                proposal_id=effect.proposal_id,
                                reason="the App's installation is suspended; ask again once it is back",
                            )
                    else:
                        handler = getattr(self, f"_{effect.kind}")
                        await handler(effect)
            except Exception as error:  # whatever happened, the outbox goes on
                failures = effect.attempts - effect.rate_limit_waits
                plan = plan_retry(error, attempt=failures, rate_limit_waits=effect.rate_limit_waits)
                fields: dict[str, Any] = {"attempt": effect.attempts, "error": one_line(plan.reason)}
                if not isinstance(
                    error, (gidgethub.GitHubException, aiohttp.ClientError, asyncio.TimeoutError, PermanentFailure, PromotionError)
                ):
                    # Most likely a bug: its traceback, once a window while it repeats.
                    repeats = self._failures.repeats(error)
                    if repeats:
                        fields["same_error_since_traceback"] = repeats
                    else:
                        log.error("effect raised", exc_info=error)
                if plan.rate_limited:
                    retried = effect.rate_limit_waits < MAX_EFFECT_RATE_LIMIT_WAITS
                else:
                    retried = plan.retry and failures < MAX_EFFECT_ATTEMPTS
                metrics.EFFECTS.labels(kind=effect.kind, outcome="retried" if retried else "failed").inc()
                # The logs get the error's class; what people are shown (kept with the effect) does not.
                if retried:
                    log.info("effect will be retried", extra={**fields, "retry_in_s": round(plan.delay.total_seconds(), 2)})
                    async with write_transaction(self._sessions) as session:
                        await outbox.retry_effect(
                            session, effect, now=self._clock(), delay=plan.delay, error=plan.shown, rate_limited=plan.rate_limited
                        )
                        if effect.kind == "promote" and effect.proposal_id is not None:
                            # The people waiting for it see that it failed and when it is tried again.
                            for kind in SYNC_KINDS:
                                await outbox.enqueue_effect(
                                    session, kind=kind, now=self._clock(), proposal_id=effect.proposal_id,
                                    installation_id=effect.installation_id,
                                )
                else:
                    log.warning("effect failed for good", extra=fields)
                    shown = plan.shown if not plan.retry else f"{plan.shown} ({self._gave_up(effect, failures, plan)})"
                    async with write_transaction(self._sessions) as session:
                        await outbox.fail_effect(session, effect, now=self._clock(), error=shown)
                    await self._service.record_effect_failure(proposal_id=effect.proposal_id, kind=effect.kind, error=shown)
            else:
                metrics.EFFECTS.labels(kind=effect.kind, outcome="done").inc()
                async with write_transaction(self._sessions) as session:
                    await outbox.complete_effect(session, effect, now=self._clock())
                if effect.last_error:
                    # After its failures were logged, its end is too (a provider that answers again).
                    log.info("effect done", extra={"attempt": effect.attempts})

    def _gave_up(self, effect: Effect, failures: int, plan: RetryPlan) -> str:
        """How long an effect that might have healed was tried, e.g. "gave up after 12 tries in 18m"."""
        spent = format_duration(self._clock() - effect.created_at)
        if plan.rate_limited:
            return f"gave up after waiting {effect.rate_limit_waits} times for GitHub's rate limit, in {spent}"
        return f"gave up after {failures} tries in {spent}"

    def _details_url(self, proposal: Proposal) -> str:
        """The proposal's page; signed for a private repository, whose page is otherwise 404."""
        return proposal_link(self._service.settings, proposal_id=proposal.id, private=proposal.repo_private)

    async def _client(self, effect: Effect):
        if effect.installation_id is None:
            raise PermanentFailure("no installation to act for")
        return await self._github.installation_client(effect.installation_id)

    # -- kinds ---------------------------------------------------------------------------

    async def _sync_check_run(self, effect: Effect) -> None:
        read = await self._view(effect.proposal_id)
        if read is None:
            return
        proposal, view = read
        output = render_check_run(view)
        body: dict[str, Any] = {
            "name": CHECK_RUN_NAME,
            "status": output.status,
            "external_id": str(proposal.id),
            "output": {"title": output.title, "summary": output.summary, "text": output.text},
            "actions": list(output.actions),
        }
        if output.conclusion:
            body["conclusion"] = output.conclusion
            body["completed_at"] = view.now.strftime("%Y-%m-%dT%H:%M:%SZ")
        if view.details_url:
            body["details_url"] = view.details_url
        gh = await self._client(effect)
        owner, repo = proposal.repo_full_name.split("/", 1)
        check_run_id = proposal.check_run_id or await self._find_check_run(gh, proposal)
        reopening = proposal.check_run_completed and output.status != "completed"
        if check_run_id is None or reopening:
            created = await gh.post(f"/repos/{owner}/{repo}/check-runs", data={**body, "head_sha": proposal.head_sha})
            check_run_id = created["id"]
        else:
            await gh.patch(f"/repos/{owner}/{repo}/check-runs/{check_run_id}", data=body)
        completed = output.status == "completed"
        if (proposal.check_run_id, proposal.check_run_completed) != (check_run_id, completed):
            async with write_transaction(self._sessions) as session:
                stored = await session.get(Proposal, proposal.id)
                stored.check_run_id = check_run_id
                stored.check_run_completed = completed

    async def _find_check_run(self, gh, proposal: Proposal) -> int | None:
        """After an unknown outcome, the check run may exist already: find it, do not make another."""
        owner, repo = proposal.repo_full_name.split("/", 1)
        url = f"/repos/{owner}/{repo}/commits/{proposal.head_sha}/check-runs?check_name={quote(CHECK_RUN_NAME)}&filter=all"
        async for check_run in gh.getiter(url, iterable_key="check_runs"):
            if check_run.get("external_id") == str(proposal.id):
                return check_run["id"]
        return None

    async def _sync_comment(self, effect: Effect) -> None:
        """One status comment per pull request, showing its current proposal."""
        async with self._sessions() as session:
            proposal = await session.get(Proposal, effect.proposal_id)
            if proposal is None:
                return
            current = await queries.current_proposal(
                session, repo_full_name=proposal.repo_full_name, pr_number=proposal.pr_number
            )
            shown = current or proposal
            pull = await queries.pull_request(session, repo_full_name=proposal.repo_full_name, number=proposal.pr_number)
            comment_id = pull.status_comment_id if pull else None
        read = await self._view(shown.id)
        if read is None:
            return
        body = render_status_comment(read[1])
        gh = await self._client(effect)
        owner, repo = proposal.repo_full_name.split("/", 1)
        if comment_id is not None:
            edited = await self._edit_comment(gh, f"/repos/{owner}/{repo}/issues/comments/{comment_id}", body)
            if not edited:  # someone deleted the status comment: a new one takes its place
                comment_id = None
        if comment_id is None:
            # One writer of a pull request's first comment at a time: the syncs of two of its
            # proposals (a push right after opening) would each post one otherwise.
            async with exclusive(self._sessions.kw["bind"], f"status comment {proposal.repo_full_name}#{proposal.pr_number}"):
                # Found first: another sync, or an earlier attempt whose id was not stored, may have posted it.
                comment_id = await self._find_comment(gh, proposal, marker=STATUS_MARKER)
                if comment_id is not None:
                    await gh.patch(f"/repos/{owner}/{repo}/issues/comments/{comment_id}", data={"body": body})
                else:
                    created = await gh.post(f"/repos/{owner}/{repo}/issues/{proposal.pr_number}/comments", data={"body": body})
                    comment_id = created["id"]
            # Stored after the lock is let go: holding its connection while asking for another
            # could leave a busy pool waiting on itself; the next holder finds the comment anyway.
            await self._remember_status_comment(proposal, comment_id)
        elif pull is not None and pull.status_comment_id != comment_id:
            await self._remember_status_comment(proposal, comment_id)

    async def _remember_status_comment(self, proposal: Proposal, comment_id: int) -> None:
        async with write_transaction(self._sessions) as session:
            stored = await queries.pull_request(session, repo_full_name=proposal.repo_full_name, number=proposal.pr_number)
            if stored is not None and stored.status_comment_id != comment_id:
                stored.status_comment_id = comment_id

    async def _edit_comment(self, gh, url: str, body: str) -> bool:
        """Edits a comment; False when GitHub no longer has it (it was deleted)."""
        try:
            await gh.patch(url, data={"body": body})
        except gidgethub.BadRequest as error:
            if error.status_code == HTTPStatus.NOT_FOUND:
                return False
            raise
        return True

    async def _find_comment(self, gh, proposal: Proposal, *, marker: str) -> int | None:
        """The App's own comment that carries `marker`. Another App's comment may carry it too
        (a workflow repeating the pull request's description, a second Pinkflow App): that one
        is never taken over. Only while GitHub does not say who the App is does any bot's count."""
        owner, repo = proposal.repo_full_name.split("/", 1)
        async for comment in gh.getiter(f"/repos/{owner}/{repo}/issues/{proposal.pr_number}/comments?per_page=100"):
            user = comment.get("user") or {}
            if marker not in (comment.get("body") or "") or user.get("type") != "Bot":
                continue
            own = await self._github.bot_login()
            if own is None or str(user.get("login", "")).lower() == own.lower():
                return comment["id"]
        return None

    async def _react(self, effect: Effect) -> None:
        owner, repo = effect.payload["repo"].split("/", 1)
        gh = await self._client(effect)
        # GitHub answers 200 for a reaction that already exists: a retry cannot double it.
        await gh.post(
            f"/repos/{owner}/{repo}/issues/comments/{effect.payload['comment_id']}/reactions",
            data={"content": effect.payload["content"]},
        )

    async def _post_comment(self, effect: Effect) -> None:
        owner, repo = effect.payload["repo"].split("/", 1)
        number = effect.payload["number"]
        marker = f"<!-- pinkflow:reply:{effect.id} -->"
        gh = await self._client(effect)
        if effect.attempts > 1:
            async for comment in gh.getiter(f"/repos/{owner}/{repo}/issues/{number}/comments?per_page=100"):
                if marker in (comment.get("body") or ""):
                    return
        await gh.post(f"/repos/{owner}/{repo}/issues/{number}/comments", data={"body": f"{marker}\n{effect.payload['body']}"})

    async def _promote(self, effect: Effect) -> None:
        """Calls the proposal's promotion provider, at most once in effect: the promotion row
        says whether it is still wanted, and a provider called again after an unknown outcome
        finds what its earlier attempt did. A refusal is recorded; anything that may heal
        (`PromotionUnavailable`) is retried, after the wait the other side asked for."""
        async with self._sessions() as session:
            proposal = await session.get(Proposal, effect.proposal_id)
            promotion = await queries.promotion(session, proposal_id=effect.proposal_id)
        if proposal is None or promotion is None or promotion.state != "pending":
            return
        rules = proposal_rules(proposal)
        request = PromotionRequest(
            proposal_id=proposal.id,
            repo_full_name=proposal.repo_full_name,
            pr_number=proposal.pr_number,
            head_sha=proposal.head_sha,
            preview_url=proposal.preview_url,
            preview_deployment_id=proposal.preview_deployment_id,
            production_environment=rules.production_environment,
            requested_by=promotion.requested_by,
            forced=promotion.forced,
            details_url=self._details_url(proposal),
        )
        # An earlier call may have gone through unseen: a retry, or a promotion asked for again.
        attempt = max(effect.attempts, 2) if effect.payload.get("look_first") else effect.attempts
        try:
            provider = await self._provider(effect, promotion.provider, rules)
            blocker = await self._service.promotion_blocker_now(proposal.id)
            if blocker is not None:
                earlier = await provider.find_earlier(request) if attempt > 1 else None
                if earlier is not None:  # it happened before the reason came: it is what production runs
                    await self._service.record_promotion_result(proposal_id=proposal.id, result=earlier)
                elif attempt > 1 and promotion.provider == "webhook":
                    await self._service.cancel_promotion(
                        proposal_id=proposal.id,
                        reason=f"{blocker} (an earlier call to the promotion webhook may have reached it; its receiver knows)",
                    )
                else:
                    await self._service.cancel_promotion(proposal_id=proposal.id, reason=blocker)
                return
            result = await provider.promote(request, attempt=attempt)
        except PromotionRefused as refused:
            await self._service.record_promotion_result(proposal_id=proposal.id, error=str(refused))
            return
        await self._service.record_promotion_result(proposal_id=proposal.id, result=result)

    async def _provider(self, effect: Effect, name: str, rules):
        settings = self._service.settings
        if name == "github":
            return GitHubDeploymentProvider(await self._client(effect))
        if name == "vercel":
            return VercelProvider(
                self._http_session(),
                token=settings.vercel_token or "",
                team_id=settings.vercel_team_id,
                api_url=settings.vercel_api_url,
            )
        if name == "webhook":
            if not rules.promote_webhook_url:
                raise PromotionRefused("the webhook provider needs promote.webhook_url in .github/pinkflow.yml")
            return WebhookProvider(
                self._http_session(), url=rules.promote_webhook_url, secret=settings.promotion_webhook_secret or ""
            )
        raise PromotionRefused(f"provider {name!r} does not promote through this path")

    def _http_session(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise PermanentFailure("no HTTP client to promote with")
        return self._http

    async def _answer_protection_rule(self, effect: Effect) -> None:
        """Approves or rejects a workflow run that waits on the protection rule, once."""
        async with self._sessions() as session:
            request = await session.get(ProtectionRuleRequest, effect.payload["request_id"])
            proposal = await session.get(Proposal, effect.proposal_id) if effect.proposal_id else None
            promotion = await queries.promotion(session, proposal_id=proposal.id) if proposal is not None else None
        if request is None or request.answered_at is not None or request.answer is None:
            return
        approved = request.answer == "approved"
        if proposal is None:
            comment = "Promoted by vote." if approved else "Not promoted by vote."
        else:
            current = await self._tally_of(proposal)
            verdict = "passed" if approved else f"was not passed ({proposal.state})"
            if approved and promotion is not None and promotion.forced:
                # An admin's /promote --force overrode the vote: the review must not say it passed.
                verdict = f"was overridden: {promotion.requested_by} forced the promotion"
            votes = "1 vote" if current.total == 1 else f"{current.total} votes"
            comment = (
                f"The Pinkflow vote on pull request #{proposal.pr_number} {verdict}: {votes}, "
                f"{current.approval_rate:g}% weighted approval. {self._details_url(proposal)}"
            )
        gh = await self._client(effect)
        try:
            await review_deployment_protection_rule(
                gh,
                repo_full_name=request.repo_full_name,
                run_id=request.run_id,
                environment_name=request.environment,
                approved=approved,
                comment=comment,
            )
        except PromotionRefused as refused:
            # Mostly the run is no longer waiting (an earlier answer whose reply was lost, or it
            # was cancelled): there is nothing left to answer. GitHub's words go in the audit
            # trail, for whoever looks for why a job still waits.
            log.info("the protection rule was not answered", extra={"run_id": request.run_id, "error": str(refused)})
            await self._service.protection_request_answered(
                request_id=request.id, proposal_id=effect.proposal_id, refused=str(refused)
            )
            return
        await self._service.protection_request_answered(request_id=request.id)

    async def _tally_of(self, proposal: Proposal):
        async with self._sessions() as session:
            return await proposal_tally(session, proposal)

    async def _check_preview(self, effect: Effect) -> None:
        async with self._sessions() as session:
            proposal = await session.get(Proposal, effect.proposal_id)
        if proposal is None or not proposal.preview_url:
            return
        path = proposal_rules(proposal).preview_health_path
        result = await check_preview(
            proposal.preview_url, path=path, allow_loopback=self._service.settings.preview_health_allow_loopback
        )
        await self._service.record_preview_health(
            proposal_id=proposal.id,
            preview_url=proposal.preview_url,
            status=result.status,
            elapsed_ms=result.elapsed_ms,
            error=result.error,
        )

    async def _rebuild(self, effect: Effect) -> None:
        """What GitHub shows of a pull request, read again: its head and state, a preview
        whose success was never heard of, and votes from comments whose webhooks were lost."""
        repo_full_name, number = effect.payload["repo"], effect.payload["number"]
        owner, repo = repo_full_name.split("/", 1)
        gh = await self._client(effect)
        read_at = self._clock()  # what the App learns of the pull request after this is newer
        pull = await gh.getitem(f"/repos/{owner}/{repo}/pulls/{number}")
        facts = PullRequestFacts(number=number, head_sha=pull["head"]["sha"], author=pull["user"]["login"])
        # Read again, not from the copy kept for a minute: `/status` is how a fixed file is taken up.
        self._service.config.forget(repo_full_name)
        lookup = await self._service.config.read(
            gh, repo_full_name=repo_full_name, default_branch=pull["base"]["repo"].get("default_branch")
        )
        if pull["state"] == "open":
            await self._open_missed_proposal(gh, effect, pull, facts, lookup, read_at=read_at)
        async with self._sessions() as session:
            current = await queries.current_proposal(session, repo_full_name=repo_full_name, pr_number=number)
        weighed_teams = proposal_rules(current).team_weights if current is not None else {}
        if current is not None and current.config_problems and lookup.usable:
            # The file is fixed and taken up below, before these votes are counted: under its rules.
            weighed_teams = lookup.rules.team_weights
        comments = []
        async for comment in gh.getiter(f"/repos/{owner}/{repo}/issues/{number}/comments?per_page=100"):
            commands = tuple(c for c in parse_commands(comment.get("body")) if c.kind in VOTE_CHOICES)
            user = comment.get("user") or {}
            if not commands or not user.get("login"):
                continue
            bot = is_bot(user)
            permission = Permission.NONE if bot else await self._github.permission(
                gh, repo_full_name=repo_full_name, login=user["login"], installation_id=effect.installation_id
            )
            # Weighed as a vote arriving by webhook is: by role, and by the teams the rules name.
            memberships = TeamMemberships() if bot else await self._github.teams_of(gh, login=user["login"], teams=weighed_teams)
            comments.append(
                CommentFacts(
                    comment_id=comment["id"],
                    created_at=datetime.fromisoformat(comment["created_at"].replace("Z", "+00:00")),
                    voter=Voter(
                        login=user["login"], is_bot=bot, permission=permission,
                        teams=memberships.teams, unknown_teams=memberships.unknown,
                    ),
                    author_is_bot=bot,
                    commands=commands,
                    edited=comment.get("updated_at") not in (None, comment.get("created_at")),
                )
            )
        await self._service.apply_rebuild(
            installation_id=effect.installation_id,
            repo_full_name=repo_full_name,
            pull=facts,
            pull_state=pull["state"],
            comments=comments,
            lookup=lookup,
            read_at=read_at,
        )

    async def _open_missed_proposal(
        self, gh, effect: Effect, pull: dict[str, Any], facts: PullRequestFacts, lookup, *, read_at: datetime
    ) -> None:
        repo_full_name = effect.payload["repo"]
        async with self._sessions() as session:
            existing = await queries.proposal_at(
                session, repo_full_name=repo_full_name, pr_number=facts.number, head_sha=facts.head_sha
            )
        if existing is not None:
            return
        owner, repo = repo_full_name.split("/", 1)
        async for deployment in gh.getiter(f"/repos/{owner}/{repo}/deployments?sha={facts.head_sha}&per_page=100"):
            if not is_preview_environment(deployment.get("environment"), lookup.rules.preview_environments):
                continue
            statuses = await gh.getitem(f"/repos/{owner}/{repo}/deployments/{deployment['id']}/statuses?per_page=1")
            if statuses and statuses[0].get("state") == "success":
                await self._service.open_proposal(
                    None,
                    installation_id=effect.installation_id,
                    repo_full_name=repo_full_name,
                    repo_private=bool(pull["base"]["repo"].get("private")),
                    pull=facts,
                    preview_deployment_id=deployment["id"],
                    preview_url=statuses[0].get("environment_url") or statuses[0].get("target_url") or None,
                    environment=deployment.get("environment"),
                    lookup=lookup,
                    as_of=read_at,
                )
                return
        if lookup.rules.open_on == "pull_request":
            # The head is put to a vote whether or not a preview was deployed for it.
            await self._service.open_proposal(
                None,
                installation_id=effect.installation_id,
                repo_full_name=repo_full_name,
                repo_private=bool(pull["base"]["repo"].get("private")),
                pull=facts,
                preview_deployment_id=None,
                preview_url=None,
                environment=None,
                lookup=lookup,
                as_of=read_at,
            )
