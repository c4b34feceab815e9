"""What every handler receives besides the event and its GitHub client."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import aiohttp
import gidgethub

if TYPE_CHECKING:
    from ..github.client import GitHubApp
    from ..services import DeliveryRef, GovernanceService


@dataclass(frozen=True)
class HandlerContext:
    delivery: "DeliveryRef"
    service: "GovernanceService"
    github: "GitHubApp"
    installation_id: int | None


log = logging.getLogger(__name__)


async def learn_who_may_vote(ctx: HandlerContext, gh, *, repo_full_name: str) -> None:
    """Reads the repository's collaborators as a proposal opens, so the first votes on it
    cost no permission look-up. Only a head start: a failure here changes nothing."""
    if gh is None or ctx.installation_id is None:
        return
    try:
        await ctx.github.roster(gh, repo_full_name=repo_full_name, installation_id=ctx.installation_id)
    except (gidgethub.GitHubException, aiohttp.ClientError, asyncio.TimeoutError) as error:
        log.info("collaborators not read as the proposal opened", extra={"error": type(error).__name__})


def github_time(value: object) -> datetime | None:
    """A timestamp as GitHub writes it (`2026-11-24T06:00:00Z`); None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def repo_full_name(event_data: dict) -> str:
    return event_data["repository"]["full_name"]


def is_bot(user: dict | None) -> bool:
    if not user:
        return True
    return user.get("type") == "Bot" or str(user.get("login", "")).endswith("[bot]")
