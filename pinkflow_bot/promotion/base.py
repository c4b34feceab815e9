"""What every promotion provider is given and answers, and the two ways a promotion fails.

A provider is called from the outbox, which retries: it must be safe to call again
after an unknown outcome (a timeout, a lost answer). With `attempt > 1` it first looks
for what an earlier attempt may have done, so that a promotion happens at most once.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp

# Longer waits than this are not worth holding an effect for; the outbox's own backoff takes over.
MAX_RETRY_AFTER = 3600.0


@dataclass(frozen=True)
class PromotionRequest:
    """Promote the preview of proposal `proposal_id` (pull request `pr_number` at `head_sha`)."""

    proposal_id: int
    repo_full_name: str
    pr_number: int
    head_sha: str
    preview_url: str | None
    preview_deployment_id: int | None  # the preview's GitHub deployment, when it has one
    production_environment: str
    requested_by: str
    forced: bool
    details_url: str | None = None  # the proposal's page, for people who follow the promotion

    @property
    def owner_and_repo(self) -> tuple[str, str]:
        owner, _, repo = self.repo_full_name.partition("/")
        if not owner or not repo:
            raise PromotionRefused(f"{self.repo_full_name!r} is not an owner/repository name")
        return owner, repo


@dataclass(frozen=True)
class PromotionResult:
    deployment_id: int | None = None  # a GitHub deployment id when there is one
    url: str | None = None  # where production can be seen, when known
    reference: str | None = None  # the provider's own id (Vercel deployment id, webhook delivery id)


class PromotionError(Exception):
    """A promotion did not happen; catch the two kinds below to decide whether to retry."""


class PromotionRefused(PromotionError):
    """Will not heal by retrying: bad configuration, credentials refused, a 4xx other
    than 408, 409 and 429. The message says what to fix, for the people who can."""


class PromotionUnavailable(PromotionError):
    """Try again later: 5xx, 408, 409, 429, timeouts, connection errors.

    `retry_after` is the wait, in seconds, the other side asked for (None when it did not).
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PromotionProvider(Protocol):
    async def promote(self, request: PromotionRequest, *, attempt: int) -> PromotionResult:
        """Promote, or find that an earlier attempt did; `attempt` counts from 1."""
        ...

    async def find_earlier(self, request: PromotionRequest) -> PromotionResult | None:
        """What an earlier attempt did, when the provider can tell; None when it finds nothing
        (or, for a provider that cannot look, when it cannot know)."""
        ...


def is_retryable_status(status: int) -> bool:
    """Answers that may change if the same request is made again later."""
    return status in (408, 409, 429) or status >= 500


def no_answer_words(error: BaseException) -> str:
    """Why a call got no answer, in words for the people shown it (not aiohttp's class name)."""
    if isinstance(error, asyncio.TimeoutError):
        return "no answer in time"
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return "its host name was not found"
    if isinstance(error, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError)):
        return "its TLS certificate or handshake was refused"
    if isinstance(error, (aiohttp.ClientConnectorError, ConnectionRefusedError)):
        return "could not connect"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "the connection was closed before an answer"
    if isinstance(error, aiohttp.ClientPayloadError):
        return "its answer was cut off"
    if isinstance(error, aiohttp.TooManyRedirects):
        return "it redirected too many times"
    if isinstance(error, aiohttp.ClientResponseError):  # a status line or headers that are not HTTP
        return "its answer was not valid HTTP"
    return "the connection failed"


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The wait asked for by `Retry-After` (seconds or an HTTP date) or, failing that, by
    the reset time of a spent rate limit (`X-RateLimit-Reset`, epoch seconds, as GitHub
    and Vercel send it); None when the answer asks for no particular wait."""
    now = time.time() if now is None else now
    lowered = {name.lower(): value for name, value in headers.items()}
    seconds: float | None = None
    retry_after = (lowered.get("retry-after") or "").strip()
    if retry_after:
        try:
            seconds = float(retry_after)
        except ValueError:
            try:
                moment = email.utils.parsedate_to_datetime(retry_after)
                seconds = moment.timestamp() - now
            except (TypeError, ValueError, IndexError, OverflowError):
                seconds = None
    # Every GitHub answer carries a reset time; it only means "wait" once the quota is spent.
    if seconds is None and (lowered.get("x-ratelimit-remaining") or "").strip() == "0":
        reset = (lowered.get("x-ratelimit-reset") or "").strip()
        try:
            seconds = float(reset) - now if reset else None
        except ValueError:
            seconds = None
    if seconds is None or seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
