"""When to try again after a failure at GitHub (or a promotion target), and how soon."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, replace
from datetime import timedelta

import aiohttp
import gidgethub

from .github.errors import MAX_SECONDARY_LIMIT_WAIT, SECONDARY_LIMIT_WAIT, GitHubRateLimited
from .promotion.base import PromotionError, PromotionUnavailable, no_answer_words

# Statuses that say "not now" rather than "never".
_TRANSIENT_STATUSES = frozenset({401, 408, 409, 425})


@dataclass(frozen=True)
class RetryPlan:
    retry: bool
    delay: timedelta
    reason: str  # for the logs: the error's class and message
    # A wait for GitHub's rate limit: it says nothing of whether the work can succeed,
    # so it does not use up an attempt (rate limits have a bound of their own).
    rate_limited: bool = False
    # For the people shown the failure (the status comment, the check run, the proposal's
    # page): plain words, no class names.
    shown: str = ""


class PermanentFailure(Exception):
    """Refused in a way a retry will not change."""


def backoff(attempt: int, *, base: float = 1.0, cap: float = 300.0) -> timedelta:
    """Exponential with full jitter, so many failing calls do not retry in step."""
    return timedelta(seconds=random.uniform(base / 2, min(cap, base * 2 ** max(0, attempt - 1))))


def secondary_limit_wait(earlier_waits: int) -> float:
    """A secondary rate limit that names no time: a minute, doubled for each rate-limit
    wait the same work had before, at most MAX_SECONDARY_LIMIT_WAIT."""
    return min(MAX_SECONDARY_LIMIT_WAIT, SECONDARY_LIMIT_WAIT * 2 ** min(max(0, earlier_waits), 16))


def rate_limit_of(error: BaseException) -> GitHubRateLimited | None:
    """GitHub's rate limit behind the error, also when it was wrapped (a promotion provider's)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, GitHubRateLimited):
            return error
        seen.add(id(error))
        error = error.__cause__
    return None


def failure_words(error: BaseException) -> str:
    """What went wrong, in words for the people shown it: the message of an error written
    for them (a promotion's, a refusal's), else what GitHub answered, never a class name."""
    if isinstance(error, (PromotionError, PermanentFailure)) and str(error).strip():
        return str(error)[:2000]
    limit = rate_limit_of(error)
    if limit is not None:
        named = "" if limit.reason == "retry-after" else f" ({limit.reason})"
        return f"GitHub asked the App to slow down{named}"
    if isinstance(error, gidgethub.HTTPException):
        status = error.status_code
        message = " ".join(str(error).split())
        detail = message if message and message != status.phrase else status.phrase
        return f"GitHub answered {status.value} ({detail})"[:2000]
    if isinstance(error, (aiohttp.ClientError, asyncio.TimeoutError)):
        return f"GitHub did not answer ({no_answer_words(error)})"
    if isinstance(error, ConnectionError):
        return f"a connection failed ({no_answer_words(error)})"
    return "an unexpected error; the App's log has the details"


def plan_retry(error: BaseException, *, attempt: int, rate_limit_waits: int = 0) -> RetryPlan:
    """`attempt` counts the attempts that were not rate-limit waits (this one included);
    `rate_limit_waits` the waits for rate limits before this one."""
    plan = _plan(error, attempt=attempt, rate_limit_waits=rate_limit_waits)
    return replace(plan, shown=failure_words(error))


def _plan(error: BaseException, *, attempt: int, rate_limit_waits: int) -> RetryPlan:
    description = f"{type(error).__name__}: {error}"[:2000]
    limit = rate_limit_of(error)
    if limit is not None:
        if limit.wait_named:
            # Exactly as long as GitHub asked, plus a little so replicas do not return in step.
            delay = limit.retry_after + random.uniform(0, 1)
        else:
            wait = secondary_limit_wait(rate_limit_waits)
            delay = wait + random.uniform(0, wait / 10)
        return RetryPlan(True, timedelta(seconds=delay), description, rate_limited=True)
    retry_after = getattr(error, "retry_after", None)
    if isinstance(retry_after, (int, float)) and retry_after >= 0:
        return RetryPlan(True, timedelta(seconds=retry_after + random.uniform(0, 1)), description)
    if isinstance(error, PromotionUnavailable):
        # The promotion target is busy or down: tried again with backoff, never given up early.
        return RetryPlan(True, backoff(attempt), description)
    if isinstance(error, PermanentFailure):
        return RetryPlan(False, timedelta(0), str(error))
    if isinstance(error, (gidgethub.GitHubBroken, aiohttp.ClientError, asyncio.TimeoutError, ConnectionError)):
        return RetryPlan(True, backoff(attempt), description)
    if isinstance(error, gidgethub.BadRequest):
        status = error.status_code.value
        # A 404 right after a creation can be GitHub's replicas catching up: a few tries.
        if status in _TRANSIENT_STATUSES or (status == 404 and attempt < 3):
            return RetryPlan(True, backoff(attempt), description)
        return RetryPlan(False, timedelta(0), f"GitHub answered {status}: {error}")
    # An unexpected error is most likely a bug; retried a bounded number of times.
    return RetryPlan(True, backoff(attempt), description)
