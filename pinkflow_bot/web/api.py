"""JSON API: health and the Pinkflow seed's deployment status."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from aiohttp import web

from ..services import proposal_rules, proposal_tally
from ..storage import inbox, outbox
from ..storage import proposals as queries
from ..storage.database import ping
from ..storage.models import Proposal
from .clients import rate_limited
from .keys import RUNTIME
from .pages import iso
from .proposal_data import time_left


async def health(request: web.Request) -> web.Response:
    """Ready when the database answers and the worker runs; the backlog says how far behind.

    GitHub's answer is shown but does not make the App unready: intake must go on storing
    deliveries while GitHub (or the App's key) has a problem, or they would be lost."""
    runtime = request.app[RUNTIME]
    checks: dict[str, object] = {}
    healthy = True
    try:
        await asyncio.wait_for(ping(runtime.engine), timeout=5)
        async with runtime.sessions() as session:
            waiting, oldest, parked = await inbox.backlog(session)
            effects_waiting, effects_failed = await outbox.backlog(session)
        checks["database"] = "ok"
        now = datetime.now(timezone.utc)
        checks["backlog"] = {
            "pending_deliveries": waiting,
            "oldest_pending_delivery_age_s": round((now - oldest).total_seconds(), 3) if oldest else 0.0,
            "failed_deliveries": parked,
            "pending_effects": effects_waiting,
            "failed_effects": effects_failed,
        }
    except Exception as error:  # any failure to reach the database means not ready
        checks["database"] = f"unreachable: {type(error).__name__}"
        healthy = False
    if runtime.worker is not None:
        checks["worker"] = "running" if runtime.worker_alive else "stopped"
        healthy = healthy and runtime.worker_alive
    else:
        checks["worker"] = "not in this process" if runtime.settings.configured else "not configured"
    checks["github"] = await runtime.github.reachability() if runtime.github is not None else "not configured"
    return web.json_response({"status": "ok" if healthy else "unavailable", **checks}, status=200 if healthy else 503)


@rate_limited
async def deployment_status(request: web.Request) -> web.Response:
    """`?deploymentId=` takes the preview's GitHub deployment id, or a proposal id."""
    runtime = request.app[RUNTIME]
    raw = request.query.get("deploymentId", "")
    try:
        wanted = int(raw)
    except ValueError:
        return web.json_response({"error": "deploymentId must be a number"}, status=400)
    # GitHub's ids, like ours, are positive 64-bit numbers: anything else names nothing.
    if not 0 < wanted < 2**63:
        return web.json_response({"error": "no such deployment"}, status=404)
    async with runtime.sessions() as session:
        proposal = await queries.proposal_by_preview_deployment(session, deployment_id=wanted)
        if proposal is None:
            proposal = await session.get(Proposal, wanted)
        # Private repositories are not shown to the public.
        if proposal is None or proposal.repo_private:
            return web.json_response({"error": "no such deployment"}, status=404)
        current = await proposal_tally(session, proposal)
        promotion = await queries.promotion(session, proposal_id=proposal.id)
    rules = proposal_rules(proposal)
    # A decided vote has no time left, whatever its deadline said.
    left = time_left(proposal, now=datetime.now(timezone.utc))
    votes = current.as_seed_dict()
    votes.update(threshold=rules.threshold, minVotes=rules.min_votes)
    return web.json_response(
        {
            "deployment": {
                "id": proposal.preview_deployment_id or proposal.id,
                "proposal_id": proposal.id,
                "project": proposal.repo_full_name,
                "pr_number": proposal.pr_number,
                "sha": proposal.head_sha,
                "environment": proposal.environment,
                "deploy_url": proposal.preview_url,
                "status": proposal.state,
                "created_at": iso(proposal.opened_at),
                "closes_at": iso(proposal.closes_at),
                "seconds_left": 0 if left is None else int(left.total_seconds()),
                "votes": votes,
                "promotion": None
                if promotion is None
                else {
                    "state": promotion.state,
                    "requested_by": promotion.requested_by,
                    "deployment_id": promotion.deployment_id,
                },
            }
        }
    )
