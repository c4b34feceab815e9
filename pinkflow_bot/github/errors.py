"""GitHub's answers that say "later", with how much later."""

from __future__ import annotations

import time
from collections.abc import Mapping

import gidgethub

# GitHub's guidance for a secondary rate limit that names no time: wait at least a minute.
SECONDARY_LIMIT_WAIT = 60.0
MAX_WAIT = 3600.0


class GitHubRateLimited(gidgethub.GitHubException):
    """A primary or secondary rate limit: retry after `retry_after` seconds, not before."""

    def __init__(self, *, status: int, retry_after: float, reason: str) -> None:
        super().__init__(f"{status} rate limited ({reason}); retry in {retry_after:.0f}s")
        self.status = status
        self.retry_after = retry_after
        self.reason = reason


def rate_limit_wait(
    status: int, headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> tuple[float, str] | None:
    """How long GitHub asks us to wait, or None when the answer is not a rate limit."""
    if status not in (403, 429):
        return None
    now = time.time() if now is None else now
    lowered = {key.lower(): value for key, value in headers.items()}
    retry_after = lowered.get("retry-after")
    if retry_after is not None:
        try:
            return min(MAX_WAIT, max(0.0, float(retry_after))), "retry-after"
        except ValueError:
            pass
    if lowered.get("x-ratelimit-remaining") == "0" and lowered.get("x-ratelimit-reset"):
        try:
            return min(MAX_WAIT, max(0.0, float(lowered["x-ratelimit-reset"]) - now) + 1.0), "primary rate limit"
        except ValueError:
            pass
    if b"secondary rate limit" in body.lower() or status == 429:
        return SECONDARY_LIMIT_WAIT, "secondary rate limit"
    return None
