"""Installations of the App: stored, so that deliveries of suspended or deleted ones are
acknowledged and not acted on."""

from __future__ import annotations

from gidgethub import routing, sansio

from .context import HandlerContext

router = routing.Router()


def _names(repositories: list | None) -> list[str]:
    return [r["full_name"] for r in repositories or () if isinstance(r, dict) and r.get("full_name")]


@router.register("installation")
async def installation_changed(event: sansio.Event, gh, ctx: HandlerContext) -> None:
    installation = event.data["installation"]
    await ctx.service.record_installation(
        ctx.delivery,
        installation_id=installation["id"],
        account_login=installation["account"]["login"],
        action=event.data.get("action", ""),
        repositories=_names(event.data.get("repositories")),
    )


@router.register("installation_repositories")
async def installation_repositories_changed(event: sansio.Event, gh, ctx: HandlerContext) -> None:
    installation = event.data["installation"]
    await ctx.service.record_installation_repositories(
        ctx.delivery,
        installation_id=installation["id"],
        account_login=installation["account"]["login"],
        added=_names(event.data.get("repositories_added")),
        removed=_names(event.data.get("repositories_removed")),
    )
