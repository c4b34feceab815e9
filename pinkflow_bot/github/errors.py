"""GitHub's answers that say "later", with how much later."""

from __future__ import annotations

import time
from collections.abc import Mapping

import gidgethub

# GitHub's guidance for a secondary rate limit that names no time: wait at least a minute,
# and exponentially longer while it keeps failing (see `retries.secondary_limit_wait`).
SECONDARY_LIMIT_WAIT = 60.0
MAX_SECONDARY_LIMIT_WAIT = 900.0
MAX_WAIT = 3600.0
# The reason given when GitHub named no time to wait.
SECONDARY_LIMIT = "secondary rate limit"


class GitHubRateLimited(gidgethub.GitHubException):
    """A primary or secondary rate limit: retry after `retry_after` seconds, not before."""

    def __init__(self, *, status: int, retry_after: float, reason: str) -> None:
        super().__init__(f"{status} rate limited ({reason}); retry in {retry_after:.0f}s")
        self.status = status
        self.retry_after = retry_after
        self.reason = reason

    @property
    def wait_named(self) -> bool:
        """Whether GitHub said how long to wait (`Retry-After`, `X-RateLimit-Reset`); if not,
        `retry_after` is only the first wait of a backoff."""
        return self.reason != SECONDARY_LIMIT


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
        return SECONDARY_LIMIT_WAIT, SECONDARY_LIMIT
    return None
