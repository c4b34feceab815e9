"""The `webhook` provider: a signed JSON POST to the URL in `promote.webhook_url`.

Signed as GitHub signs its webhooks: `X-Pinkflow-Signature-256: sha256=<hex>` is the
HMAC-SHA256 of the exact body bytes with `PROMOTION_WEBHOOK_SECRET`. Every attempt for a
proposal carries the same `X-Pinkflow-Delivery` id and the same body, so a receiver that
remembers the ids it has handled promotes at most once however often it is called.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json

import aiohttp

from ..governance.rules import webhook_url_problem
from ..signatures import body_signature
from .base import (
    PromotionRefused,
    PromotionRequest,
    PromotionResult,
    PromotionUnavailable,
    is_retryable_status,
    no_answer_words,
    retry_after_seconds,
)

EVENT = "promote"
TIMEOUT_SECONDS = 10.0
MAX_ERROR_SHOWN = 200
USER_AGENT = "pinkflow-bot"


def delivery_id(request: PromotionRequest) -> str:
    """The idempotency key of a promotion: one per proposal, the same on every attempt."""
    return f"proposal-{request.proposal_id}"


def webhook_body(request: PromotionRequest) -> bytes:
    """The JSON sent, as bytes: keys sorted, so every attempt sends (and signs) the same bytes."""
    fields = dataclasses.asdict(request)
    document = {
        "event": EVENT,
        "delivery": delivery_id(request),
        **{name: value for name, value in fields.items() if name != "details_url"},
        "html_url": request.details_url,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class WebhookProvider:
    name = "webhook"

    def __init__(
        self, session: aiohttp.ClientSession, *, url: str, secret: str, timeout: float = TIMEOUT_SECONDS
    ) -> None:
        self._session = session
        self._url = url
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def __repr__(self) -> str:  # never the secret
        return f"WebhookProvider(url={self._url!r})"

    async def find_earlier(self, request: PromotionRequest) -> PromotionResult | None:
        return None  # the receiver knows; nothing here can ask it

    async def promote(self, request: PromotionRequest, *, attempt: int) -> PromotionResult:
        # Nothing to look up on a retry: the receiver dedupes on the delivery id.
        if not self._secret:
            raise PromotionRefused("PROMOTION_WEBHOOK_SECRET is not set; promotion webhooks are only sent signed")
        problem = webhook_url_problem(self._url)
        if problem is not None:
            raise PromotionRefused(f"promote.webhook_url {problem}")
        delivery = delivery_id(request)
        body = webhook_body(request)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Pinkflow-Event": EVENT,
            "X-Pinkflow-Delivery": delivery,
            "X-Pinkflow-Signature-256": body_signature(body, secret=self._secret),
        }
        try:
            # No redirects: a signed promotion goes to the configured URL or nowhere.
            async with self._session.post(
                self._url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as response:
                status = response.status
                answer = (await response.content.read(MAX_ERROR_SHOWN)).decode(errors="replace")
                retry_after = retry_after_seconds(response.headers)
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise PromotionUnavailable(f"the promotion webhook did not answer ({no_answer_words(error)})") from error
        if 200 <= status < 300:
            return PromotionResult(reference=delivery)
        shown = " ".join(answer.split())
        detail = f": {shown}" if shown else ""
        if is_retryable_status(status):
            raise PromotionUnavailable(f"the promotion webhook answered {status}{detail}", retry_after=retry_after)
        if 300 <= status < 400:
            raise PromotionRefused(
                f"the promotion webhook answered with a redirect ({status}); set promote.webhook_url to where it leads"
            )
        raise PromotionRefused(f"the promotion webhook refused the promotion ({status}){detail}")
