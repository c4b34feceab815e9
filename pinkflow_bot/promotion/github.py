"""The `github` provider: a GitHub deployment to the production environment, which the
repository's CD picks up from the `deployment` event (DESIGN section 4)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import gidgethub
import gidgethub.abc

from ..github.errors import GitHubRateLimited
from .base import (
    PromotionRefused,
    PromotionRequest,
    PromotionResult,
    PromotionUnavailable,
    is_retryable_status,
    no_answer_words,
    retry_after_seconds,
)

MAX_DESCRIPTION = 140  # GitHub's limit on a deployment's description


class GitHubDeploymentProvider:
    """Creates one production deployment per proposal, found again by its payload."""

    name = "github"

    def __init__(self, gh: gidgethub.abc.GitHubAPI) -> None:
        self._gh = gh  # acting as the repository's installation

    async def promote(self, request: PromotionRequest, *, attempt: int) -> PromotionResult:
        owner, repo = request.owner_and_repo
        async with github_failures("create the production deployment"):
            if attempt > 1:
                # The earlier attempt may have created it before its answer was lost.
                existing = await self._find_deployment(request)
                if existing is not None:
                    return PromotionResult(deployment_id=existing)
            created = await self._gh.post(f"/repos/{owner}/{repo}/deployments", data=deployment_body(request))
        if not isinstance(created, dict) or "id" not in created:
            # 202 "auto-merged" answers create nothing; with auto_merge off they should not happen.
            message = created.get("message") if isinstance(created, dict) else None
            raise PromotionRefused(f"GitHub created no deployment: {message or 'no deployment in its answer'}")
        return PromotionResult(deployment_id=created["id"])

    async def find_earlier(self, request: PromotionRequest) -> PromotionResult | None:
        async with github_failures("look for the production deployment"):
            existing = await self._find_deployment(request)
        return PromotionResult(deployment_id=existing) if existing is not None else None

    async def _find_deployment(self, request: PromotionRequest) -> int | None:
        owner, repo = request.owner_and_repo
        query = urlencode(
            {"sha": request.head_sha, "environment": request.production_environment, "per_page": 100}, quote_via=quote
        )
        async for deployment in self._gh.getiter(f"/repos/{owner}/{repo}/deployments?{query}"):
            if proposal_of(deployment) == request.proposal_id:
                return deployment["id"]
        return None


def deployment_body(request: PromotionRequest) -> dict[str, Any]:
    """The request body of `POST /repos/{owner}/{repo}/deployments` for this promotion."""
    if request.forced:
        description = f"Forced promotion by {request.requested_by} (pinkflow proposal {request.proposal_id})"
    else:
        description = f"Promoted by vote (pinkflow proposal {request.proposal_id})"
    return {
        "ref": request.head_sha,
        "environment": request.production_environment,
        # Deploy exactly the commit that was voted on: no merge, no wait for other checks.
        "auto_merge": False,
        "required_contexts": [],
        "production_environment": True,
        "description": description[:MAX_DESCRIPTION],
        "payload": {
            "pinkflow": {
                "proposal_id": request.proposal_id,
                "pull_request": request.pr_number,
                "preview_url": request.preview_url,
                "requested_by": request.requested_by,
                "forced": request.forced,
            }
        },
    }


def proposal_of(deployment: dict[str, Any]) -> int | None:
    """The pinkflow proposal a deployment was created for, from its payload; None for others."""
    payload = deployment.get("payload")
    if isinstance(payload, str):  # GitHub keeps a payload sent as a string as one
        try:
            payload = json.loads(payload)
        except ValueError:
            return None
    if not isinstance(payload, dict) or not isinstance(payload.get("pinkflow"), dict):
        return None
    proposal_id = payload["pinkflow"].get("proposal_id")
    return proposal_id if isinstance(proposal_id, int) and not isinstance(proposal_id, bool) else None


@asynccontextmanager
async def github_failures(action: str) -> AsyncIterator[None]:
    """Turns what gidgethub and aiohttp raise into PromotionRefused or PromotionUnavailable."""
    try:
        yield
    except GitHubRateLimited as error:  # the App's client recognises rate limits itself
        raise PromotionUnavailable(
            f"GitHub asked to slow down ({error.reason}); could not {action}", retry_after=error.retry_after
        ) from error
    except gidgethub.RateLimitExceeded as error:
        raise PromotionUnavailable(
            f"GitHub's rate limit is spent; could not {action}", retry_after=retry_after_seconds(error.headers)
        ) from error
    except gidgethub.GitHubBroken as error:
        status = error.status_code.value
        raise PromotionUnavailable(
            f"GitHub answered {status} when asked to {action}", retry_after=retry_after_seconds(error.headers)
        ) from error
    except gidgethub.HTTPException as error:
        status = error.status_code.value
        message = str(error)
        if is_retryable_status(status) or (status == 403 and _is_secondary_rate_limit(error)):
            raise PromotionUnavailable(
                f"GitHub answered {status} when asked to {action}: {message}",
                retry_after=retry_after_seconds(error.headers),
            ) from error
        raise PromotionRefused(f"GitHub refused to {action} ({status}): {message}") from error
    except (aiohttp.ClientError, asyncio.TimeoutError) as error:
        raise PromotionUnavailable(f"GitHub did not answer when asked to {action} ({no_answer_words(error)})") from error


def _is_secondary_rate_limit(error: gidgethub.HTTPException) -> bool:
    headers = {name.lower() for name in error.headers}
    return "retry-after" in headers or "rate limit" in str(error).lower()
