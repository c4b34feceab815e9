"""The dashboard: recent proposals of public repositories, and one proposal's page.

A private repository's proposal page answers only through its signed link; without
it the answer is the same 404 as for a proposal that does not exist.
"""

from __future__ import annotations

from aiohttp import web

from ..governance.durations import format_duration
from ..governance.permissions import Permission
from ..governance.render import PromotionView, next_try_words, preview_health_words, retry_count
from ..governance.rules import Rules
from ..governance.tally import Choice
from ..services import proposal_rules, utcnow
from .keys import RUNTIME
from .pages import error_page, render
from .proposal_data import parse_proposal_id, public_summaries, time_left, visible_proposal
from .setup import setup_page

PAGE_SIZE = 50

STATE_LABELS = {
    "voting": "Voting",
    "passed": "Passed",
    "rejected": "Rejected",
    "expired": "Expired",
    "superseded": "Superseded",
    "cancelled": "Cancelled",
    "promoted": "Promoted",
}
CHOICE_LABELS = {Choice.APPROVE: "Approve", Choice.REJECT: "Reject", Choice.ABSTAIN: "Abstain"}
PROMOTION_LABELS = {
    "pending": "starting",
    "created": "deployment created, waiting for it to start",
    "in_progress": "deploying",
    "success": "deployed",
    "failure": "the deployment failed",
    "failed": "the promotion failed",
}


def promotion_label(promotion: PromotionView) -> str:
    """The promotion's state in a few words; one whose last try failed says it is tried again."""
    if promotion.retrying:
        count = retry_count(promotion)
        return "the last try failed, trying again" + (f" ({count})" if count else "")
    return PROMOTION_LABELS.get(promotion.state, promotion.state)


def rules_line(rules: Rules) -> str:
    """The rules in one plain line (the check run's version is markdown)."""
    eligible = [level for level in sorted(Permission, reverse=True) if level >= rules.min_permission]
    parts = [
        f"passes at {rules.threshold}% weighted approval",
        f"quorum {rules.min_votes} voter{'s' if rules.min_votes != 1 else ''}",
        f"voting period {format_duration(rules.voting_period)}",
    ]
    if rules.min_voting_time:
        parts.append(f"promotion after at least {format_duration(rules.min_voting_time)} of voting")
    parts.append(f"voters need {rules.min_permission.label} or above")
    parts.append("weights " + ", ".join(f"{level.label} {rules.weights.get(level, 0)}" for level in eligible))
    if rules.user_weights:
        parts.append("user weights " + ", ".join(f"{login} {w}" for login, w in sorted(rules.user_weights.items())))
    if rules.team_weights:
        parts.append("team weights " + ", ".join(f"{team} {w}" for team, w in sorted(rules.team_weights.items())))
    parts.append("the author may vote" if rules.allow_author else "the author does not vote")
    parts.append(f"promotes through {rules.promote_provider}" + (" automatically" if rules.auto_promote else ""))
    return " · ".join(parts)


def _page_context(settings) -> dict:
    return {"github_url": settings.github_url, "state_labels": STATE_LABELS}


async def home(request: web.Request) -> web.Response:
    """The setup page until the App is registered; the dashboard after."""
    if not request.app[RUNTIME].settings.configured:
        return await setup_page(request)
    return await proposal_list(request)


async def proposal_list(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    before = parse_proposal_id(request.query.get("before", "")) if "before" in request.query else None
    async with runtime.sessions() as session:
        # One more than shown tells whether an older page exists.
        summaries = await public_summaries(session, limit=PAGE_SIZE + 1, before_id=before)
    older = summaries[PAGE_SIZE - 1].proposal.id if len(summaries) > PAGE_SIZE else None
    now = utcnow()
    rows = [
        {
            "proposal": summary.proposal,
            "tally": summary.tally,
            "rules": proposal_rules(summary.proposal),
            "time_left": time_left(summary.proposal, now=now),
        }
        for summary in summaries[:PAGE_SIZE]
    ]
    return render(
        "proposals.html",
        title="Recent proposals",
        rows=rows,
        older=older,
        paged=before is not None,
        **_page_context(runtime.settings),
    )


def _not_found() -> web.Response:
    # One answer for missing, private without a valid signature, and malformed ids alike.
    return error_page(404, "Proposal not found", "There is no proposal at this address, or it is not public.")


async def proposal_page(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    proposal_id = parse_proposal_id(request.match_info["proposal_id"])
    if proposal_id is None:
        return _not_found()
    now = utcnow()
    async with runtime.sessions() as session:
        details = await visible_proposal(
            session, runtime.settings, proposal_id=proposal_id, signature=request.query.get("sig"), now=now
        )
    if details is None:
        return _not_found()
    proposal, view = details.proposal, details.view
    return render(
        "proposal.html",
        title=f"{proposal.repo_full_name} #{proposal.pr_number}",
        private=proposal.repo_private,
        noindex=proposal.repo_private,
        proposal=proposal,
        view=view,
        tally=view.tally,
        rules=view.rules,
        rules_line=rules_line(view.rules),
        choice_labels=CHOICE_LABELS,
        promotion=details.promotion,
        promotion_label=promotion_label(view.promotion) if view.promotion else None,
        # The error shown (while it is tried again, the last try's) and when the next try is.
        promotion_error=view.promotion.error if view.promotion else None,
        next_try=next_try_words(view.promotion, now=now) if view.promotion and view.promotion.retrying else None,
        promotion_blocker=details.promotion_blocker,
        # In the status comment's words; none until the preview has been checked.
        preview_health=preview_health_words(view.health, view.rules) if view.health is not None else None,
        audit=details.audit,
        time_left=time_left(proposal, now=now),
        **_page_context(runtime.settings),
    )
