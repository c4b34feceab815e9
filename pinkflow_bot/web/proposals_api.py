"""JSON API over proposals: one proposal, a list of public ones, statistics, and our OpenAPI description.

Every answer is JSON; errors are `{"error": "..."}` with 400, 404 or 429. Requests are
limited per client address (see clients.rate_limited).
"""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from ..governance.render import PROPOSAL_STATES, PromotionView, ProposalView, preview_health_words
from ..governance.rules import LOGIN_PATTERN, Rules
from ..governance.tally import Tally
from ..services import proposal_rules, utcnow
from ..storage.models import AuditEvent, Promotion, Proposal
from .clients import rate_limited
from .keys import RUNTIME
from ..links import proposal_link
from .pages import iso
from .proposal_data import ProposalDetails, parse_proposal_id, public_statistics, public_summaries, time_left, visible_proposal

OPENAPI_PATH = Path(__file__).with_name("openapi.json")
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
_REPOSITORY = re.compile(LOGIN_PATTERN + r"/[A-Za-z0-9._-]{1,100}")  # owners may be managed users (mona_octo)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


# --- Shapes -------------------------------------------------------------------------


def _rules(rules: Rules) -> dict[str, Any]:
    return {
        "threshold": rules.threshold,
        "min_votes": rules.min_votes,
        "voting_period_seconds": int(rules.voting_period.total_seconds()),
        "min_voting_time_seconds": int(rules.min_voting_time.total_seconds()),
        "min_permission": rules.min_permission.label,
        "allow_author": rules.allow_author,
        "production_environment": rules.production_environment,
        "promote_provider": rules.promote_provider,
        "auto_promote": rules.auto_promote,
    }


def _tally(tally: Tally, rules: Rules) -> dict[str, Any]:
    """The tally under the seed's field names, with the rules it is measured against."""
    return {**tally.as_seed_dict(), "threshold": rules.threshold, "minVotes": rules.min_votes}


def _promotion(promotion: Promotion | None, shown: PromotionView | None) -> dict[str, Any] | None:
    if promotion is None or shown is None:
        return None
    retrying = shown.retrying
    return {
        "state": promotion.state,
        "provider": promotion.provider,
        "requested_by": promotion.requested_by,
        "forced": promotion.forced,
        "deployment_id": promotion.deployment_id,
        "environment_url": promotion.environment_url,
        # While pending after a failed try: that try's error, and when and which try is next.
        "error": shown.error,
        "retry_at": (iso(shown.retry_at) or None) if retrying else None,
        "attempt": shown.attempt if retrying else None,
        "max_attempts": shown.max_attempts if retrying else None,
        "requested_at": iso(promotion.requested_at),
        "completed_at": iso(promotion.completed_at) or None,
    }


def _preview_health(proposal: Proposal, view: ProposalView) -> dict[str, Any] | None:
    """The preview's last check, in the status comment's words too; None until it was checked."""
    if view.health is None:
        return None
    return {
        "status": view.health.status,
        "elapsed_ms": view.health.elapsed_ms,
        "error": view.health.error,
        "ok": view.health.ok,
        "checked_at": iso(proposal.health_checked_at) or None,
        "summary": preview_health_words(view.health, view.rules),
    }


def _audit_event(event: AuditEvent) -> dict[str, Any]:
    return {"at": iso(event.at), "actor": event.actor, "action": event.action, "detail": event.detail}


def _summary(proposal: Proposal, tally: Tally, rules: Rules, *, settings, now: datetime) -> dict[str, Any]:
    left = time_left(proposal, now=now)
    return {
        "id": proposal.id,
        "repository": proposal.repo_full_name,
        "pr_number": proposal.pr_number,
        "pr_url": f"{settings.github_url}/{proposal.repo_full_name}/pull/{proposal.pr_number}",
        "sha": proposal.head_sha,
        "state": proposal.state,
        "opened_at": iso(proposal.opened_at),
        "closes_at": iso(proposal.closes_at),
        "decided_at": iso(proposal.decided_at) or None,
        "seconds_left": 0 if left is None else int(left.total_seconds()),
        "tally": _tally(tally, rules),
        "url": proposal_link(settings, proposal_id=proposal.id, private=proposal.repo_private),
    }


def _details(details: ProposalDetails, *, settings, now: datetime) -> dict[str, Any]:
    proposal, view = details.proposal, details.view
    return {
        **_summary(proposal, view.tally, view.rules, settings=settings, now=now),
        "private": proposal.repo_private,
        "pr_author": proposal.pr_author,
        "environment": proposal.environment,
        "preview_url": proposal.preview_url,
        "preview_health": _preview_health(proposal, view),
        "rules": _rules(view.rules),
        "promotable": details.promotion_blocker is None,
        "promotion_blocker": details.promotion_blocker,
        "votes": [
            {
                "voter": ballot.voter,
                "choice": ballot.choice.value,
                "weight": ballot.weight,
                "reason": ballot.reason,
                "cast_at": iso(ballot.cast_at) or None,
            }
            for ballot in view.tally.ballots
        ],
        "promotion": _promotion(details.promotion, view.promotion),
        "audit": [_audit_event(event) for event in details.audit],
    }


# --- Routes -------------------------------------------------------------------------


@rate_limited
async def get_proposal(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    proposal_id = parse_proposal_id(request.match_info["proposal_id"])
    if proposal_id is None:
        return _error(404, "no such proposal")
    now = utcnow()
    async with runtime.sessions() as session:
        details = await visible_proposal(
            session, runtime.settings, proposal_id=proposal_id, signature=request.query.get("sig"), now=now
        )
    # A private proposal without a valid signature is answered exactly like a missing one.
    if details is None:
        return _error(404, "no such proposal")
    return web.json_response({"proposal": _details(details, settings=runtime.settings, now=now)})


def _page_size(text: str | None) -> int:
    if text is None:
        return DEFAULT_PAGE_SIZE
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return int(text)


@rate_limited
async def list_proposals(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    query = request.query
    repo = query.get("repo")
    state = query.get("state")
    try:
        limit = _page_size(query.get("limit"))
        if repo is not None and not _REPOSITORY.fullmatch(repo):
            raise ValueError("repo must be owner/name")
        if state is not None and state not in PROPOSAL_STATES:
            raise ValueError(f"state must be one of {', '.join(PROPOSAL_STATES)}")
        before = None
        if query.get("before") is not None:
            before = parse_proposal_id(query["before"])
            if before is None:
                raise ValueError("before must be a proposal id")
    except ValueError as error:
        return _error(400, str(error))
    now = utcnow()
    async with runtime.sessions() as session:
        # One more than asked for tells whether there is a next page.
        summaries = await public_summaries(session, limit=limit + 1, repo_full_name=repo, state=state, before_id=before)
    shown = summaries[:limit]
    return web.json_response(
        {
            "proposals": [
                _summary(s.proposal, s.tally, proposal_rules(s.proposal), settings=runtime.settings, now=now)
                for s in shown
            ],
            "next_before": shown[-1].proposal.id if len(summaries) > limit else None,
        }
    )


@rate_limited
async def statistics(request: web.Request) -> web.Response:
    async with request.app[RUNTIME].sessions() as session:
        stats = await public_statistics(session)
    median = stats.median_time_to_decision
    return web.json_response(
        {
            "proposals": stats.proposals,
            "by_state": stats.by_state,
            "decided": stats.decided,
            "approval_rate": stats.approval_rate,
            "voter_participation": {"average_voters": stats.average_voters, "median_voters": stats.median_voters},
            "median_time_to_decision_seconds": None if median is None else round(median.total_seconds(), 3),
            "promotions": stats.promotions,
            "promotion_success_rate": stats.promotion_success_rate,
        }
    )


@functools.cache
def _openapi() -> dict[str, Any]:
    return json.loads(OPENAPI_PATH.read_text())


@rate_limited
async def openapi_description(request: web.Request) -> web.Response:
    """Our API's OpenAPI 3.0 description, with this server's public address as its server."""
    description = {**_openapi(), "servers": [{"url": request.app[RUNTIME].settings.public_url}]}
    return web.json_response(description)
