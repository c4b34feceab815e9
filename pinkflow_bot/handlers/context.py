"""What every handler receives besides the event and its GitHub client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..github.client import GitHubApp
    from ..services import DeliveryRef, GovernanceService


@dataclass(frozen=True)
class HandlerContext:
    delivery: "DeliveryRef"
    service: "GovernanceService"
    github: "GitHubApp"
    installation_id: int | None


def repo_full_name(event_data: dict) -> str:
    return event_data["repository"]["full_name"]


def is_bot(user: dict | None) -> bool:
    if not user:
        return True
    return user.get("type") == "Bot" or str(user.get("login", "")).endswith("[bot]")
