"""Installations of the App: stored, so their deliveries can be told apart."""

from __future__ import annotations

from gidgethub import routing, sansio

from .context import HandlerContext

router = routing.Router()


@router.register("installation")
async def installation_changed(event: sansio.Event, gh, ctx: HandlerContext) -> None:
    installation = event.data["installation"]
    await ctx.service.record_installation(
        ctx.delivery,
        installation_id=installation["id"],
        account_login=installation["account"]["login"],
        action=event.data.get("action", ""),
    )
