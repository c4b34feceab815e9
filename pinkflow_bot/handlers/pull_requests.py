"""Pull requests: their head and state decide which proposal is current."""

from __future__ import annotations

from gidgethub import routing, sansio

from .context import HandlerContext, repo_full_name

router = routing.Router()


@router.register("pull_request", action="opened")
@router.register("pull_request", action="reopened")
@router.register("pull_request", action="synchronize")
@router.register("pull_request", action="closed")
@router.register("pull_request", action="edited")
@router.register("pull_request", action="ready_for_review")
async def pull_request_changed(event: sansio.Event, gh, ctx: HandlerContext) -> None:
    pull = event.data["pull_request"]
    await ctx.service.record_pull_request(
        ctx.delivery,
        installation_id=ctx.installation_id,
        repo_full_name=repo_full_name(event.data),
        number=pull["number"],
        head_sha=pull["head"]["sha"],
        author=pull["user"]["login"],
        state=pull["state"],
    )
