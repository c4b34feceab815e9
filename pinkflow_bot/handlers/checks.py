"""The check run's buttons: Promote, and Re-run to refresh what it shows."""

from __future__ import annotations

from gidgethub import routing, sansio

from ..governance.render import CHECK_RUN_NAME, PROMOTE_ACTION_ID
from ..services import Voter
from ..storage import proposals as queries
from ..storage.models import Proposal
from .context import HandlerContext, is_bot, repo_full_name

router = routing.Router()


@router.register("check_run", action="requested_action")
async def promote_clicked(event: sansio.Event, gh, ctx: HandlerContext) -> None:
    check_run = event.data["check_run"]
    requested = event.data.get("requested_action") or {}
    if check_run.get("name") != CHECK_RUN_NAME or requested.get("identifier") != PROMOTE_ACTION_ID:
        return
    sender = event.data["sender"]
    if is_bot(sender):
        return
    proposal = await _proposal_of(event, ctx)
    if proposal is None:
        return
    permission = await ctx.github.permission(
        gh, repo_full_name=repo_full_name(event.data), login=sender["login"], installation_id=ctx.installation_id
    )
    await ctx.service.request_promotion(
        ctx.delivery, proposal_id=proposal.id, requester=Voter(login=sender["login"], is_bot=False, permission=permission)
    )


@router.register("check_run", action="rerequested")
async def rerun_requested(event: sansio.Event, gh, ctx: HandlerContext) -> None:
    check_run = event.data["check_run"]
    if check_run.get("name") != CHECK_RUN_NAME:
        return
    proposal = await _proposal_of(event, ctx)
    if proposal is not None:
        await ctx.service.refresh(ctx.delivery, proposal_id=proposal.id)


async def _proposal_of(event: sansio.Event, ctx: HandlerContext) -> Proposal | None:
    """The proposal a check run shows: its `external_id`, checked against the repository."""
    check_run = event.data["check_run"]
    external_id = str(check_run.get("external_id") or "")
    async with ctx.service.read() as session:
        proposal = await session.get(Proposal, int(external_id)) if external_id.isdigit() else None
        if proposal is None:
            proposal = await queries.proposal_by_check_run(session, check_run_id=check_run["id"])
    if proposal is None or proposal.repo_full_name != repo_full_name(event.data):
        return None
    return proposal
