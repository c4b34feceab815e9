"""The `vercel` provider: promote the preview's Vercel deployment to production.

The preview is found from its URL (`GET /v13/deployments/{hostname}`); when Vercel says
which commit it built (`meta.githubCommitSha`), that must be the commit voted on. Then:

- a *staged production build* (a deployment with target `production` that has not
  served production yet) is promoted without a rebuild:
  `POST /v10/projects/{projectId}/promote/{deploymentId}`;
- a preview is rebuilt for production from the same source:
  `POST /v13/deployments` with `deploymentId`, `target: production` and a `meta` that
  names the proposal, so a retry can find the production deployment it created.

`VERCEL_TOKEN` goes in the Authorization header only: it is never logged, shown in an
error, or put in a URL.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from .base import (
    PromotionRefused,
    PromotionRequest,
    PromotionResult,
    PromotionUnavailable,
    is_retryable_status,
    no_answer_words,
    retry_after_seconds,
)

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.vercel.com"
TIMEOUT_SECONDS = 15.0
# How many recent production deployments are searched for one an earlier attempt made.
RECENT_PRODUCTION_DEPLOYMENTS = 20
MAX_ERROR_SHOWN = 200
# Keys of the `meta` put on production deployments this provider creates (values are strings).
META_PROPOSAL = "pinkflowProposalId"
META_REPOSITORY = "pinkflowRepository"
META_PULL_REQUEST = "pinkflowPullRequest"
META_PREVIEW = "pinkflowPreviewDeploymentId"
_BUILDING = frozenset({"QUEUED", "INITIALIZING", "BUILDING"})
_FAILED = frozenset({"ERROR", "CANCELED", "DELETED"})


class VercelProvider:
    name = "vercel"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        token: str,
        team_id: str | None,
        api_url: str = DEFAULT_API_URL,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self._session = session
        self._token = token
        self._team_id = team_id or None
        self._api_url = api_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def __repr__(self) -> str:  # never the token
        return f"VercelProvider(api_url={self._api_url!r}, team_id={self._team_id!r})"

    async def promote(self, request: PromotionRequest, *, attempt: int) -> PromotionResult:
        if not self._token:
            raise PromotionRefused("VERCEL_TOKEN is not set, so the vercel provider cannot promote")
        preview = await self._preview_deployment(request)
        deployment_id, project_id = preview.get("id"), preview.get("projectId")
        if not deployment_id or not project_id:
            raise PromotionRefused("Vercel's answer about the preview deployment names no deployment or project")
        state = str(preview.get("readyState") or "").upper()
        if state in _BUILDING:
            raise PromotionUnavailable(f"the preview deployment on Vercel is not ready yet ({state.lower()})")
        if state in _FAILED:
            raise PromotionRefused(f"the preview deployment on Vercel did not succeed ({state.lower()})")
        if preview.get("target") == "production":
            return await self._promote_staged(preview, request, attempt=attempt)
        return await self._rebuild_for_production(preview, request, attempt=attempt)

    async def find_earlier(self, request: PromotionRequest) -> PromotionResult | None:
        if not self._token:
            return None
        preview = await self._preview_deployment(request)
        if not preview.get("id") or not preview.get("projectId"):
            return None
        if preview.get("target") == "production":
            promoted = str(preview.get("readySubstate") or "").upper() == "PROMOTED"
            return PromotionResult(url=_https(preview.get("url")), reference=preview["id"]) if promoted else None
        return await self._find_production_deployment(preview["projectId"], request)

    async def _preview_deployment(self, request: PromotionRequest) -> dict[str, Any]:
        host = _hostname(request.preview_url)
        if host is None:
            raise PromotionRefused("the proposal has no preview URL to find its Vercel deployment by")
        return await self._call(
            "GET", f"/v13/deployments/{quote(host, safe='')}", what=f"look up the preview deployment {host}"
        )

    async def _promote_staged(
        self, deployment: dict[str, Any], request: PromotionRequest, *, attempt: int
    ) -> PromotionResult:
        result = PromotionResult(url=_https(deployment.get("url")), reference=deployment["id"])
        if attempt > 1 and str(deployment.get("readySubstate") or "").upper() == "PROMOTED":
            return result  # the earlier attempt's promotion went through
        _refuse_another_commit(deployment, request)
        path = f"/v10/projects/{quote(deployment['projectId'], safe='')}/promote/{quote(deployment['id'], safe='')}"
        await self._call("POST", path, what="promote the staged production deployment")
        return result

    async def _rebuild_for_production(
        self, preview: dict[str, Any], request: PromotionRequest, *, attempt: int
    ) -> PromotionResult:
        project_id = preview["projectId"]
        if attempt > 1:
            existing = await self._find_production_deployment(project_id, request)
            if existing is not None:
                return existing
        _refuse_another_commit(preview, request)
        body = {
            "deploymentId": preview["id"],
            "name": preview.get("name") or project_id,
            "project": project_id,
            "target": "production",
            "meta": {
                META_PROPOSAL: str(request.proposal_id),
                META_REPOSITORY: request.repo_full_name,
                META_PULL_REQUEST: str(request.pr_number),
                META_PREVIEW: str(preview["id"]),
            },
        }
        created = await self._call("POST", "/v13/deployments", what="create the production deployment", body=body)
        if not created.get("id"):
            raise PromotionUnavailable("Vercel's answer names no production deployment")
        return PromotionResult(url=_https(created.get("url")), reference=created["id"])

    async def _find_production_deployment(self, project_id: str, request: PromotionRequest) -> PromotionResult | None:
        """The production deployment an earlier attempt created for this proposal, if any."""
        listed = await self._call(
            "GET",
            "/v6/deployments",
            what="list the project's production deployments",
            query={"projectId": project_id, "target": "production", "limit": str(RECENT_PRODUCTION_DEPLOYMENTS)},
        )
        for deployment in listed.get("deployments") or ():
            meta = deployment.get("meta") or {}
            if (
                meta.get(META_PROPOSAL) == str(request.proposal_id)
                and meta.get(META_REPOSITORY) == request.repo_full_name
            ):
                reference = deployment.get("uid") or deployment.get("id")
                return PromotionResult(url=_https(deployment.get("url")), reference=reference)
        return None

    async def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        params = dict(query or {})
        if self._team_id:
            params["teamId"] = self._team_id
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        try:
            async with self._session.request(
                method, self._api_url + path, params=params, json=body, headers=headers, timeout=self._timeout
            ) as response:
                status = response.status
                retry_after = retry_after_seconds(response.headers)
                try:
                    answer = await response.json(content_type=None)
                except ValueError:
                    answer = None
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise PromotionUnavailable(f"Vercel did not answer when asked to {what} ({no_answer_words(error)})") from error
        log.debug("vercel answered", extra={"method": method, "path": path, "status": status})
        if 200 <= status < 300:
            return answer if isinstance(answer, dict) else {}
        raise self._failure(status, what=what, answer=answer, retry_after=retry_after)

    def _failure(self, status: int, *, what: str, answer: Any, retry_after: float | None) -> Exception:
        detail = _error_message(answer)
        shown = f": {detail}" if detail else ""
        if is_retryable_status(status):
            return PromotionUnavailable(
                f"Vercel answered {status} when asked to {what}{shown}", retry_after=retry_after
            )
        # Vercel answers a token it does not accept with 401, or 403 and `invalidToken`.
        if status == 401 or (status == 403 and _is_invalid_token(answer)):
            return PromotionRefused(f"VERCEL_TOKEN was refused by Vercel (401) when asked to {what}; is it valid?")
        if status == 403:
            team = (
                "; is VERCEL_TEAM_ID the team that owns the project?"
                if self._team_id
                else "; if the project belongs to a team, set VERCEL_TEAM_ID"
            )
            return PromotionRefused(f"VERCEL_TOKEN may not {what} (403){shown}{team}")
        if status == 404:
            team = "" if self._team_id else " (if the project belongs to a team, set VERCEL_TEAM_ID)"
            return PromotionRefused(f"Vercel found nothing when asked to {what} (404){team}")
        return PromotionRefused(f"Vercel refused to {what} ({status}){shown}")


def _hostname(url: str | None) -> str | None:
    if not url or not url.strip():
        return None
    text = url.strip()
    try:
        host = urlsplit(text if "://" in text else "https://" + text).hostname
    except ValueError:
        return None
    return host or None


def _refuse_another_commit(deployment: dict[str, Any], request: PromotionRequest) -> None:
    """The preview URL may name a moving alias (a branch's, say) that serves a newer commit by
    now: promoting what it serves would ship code nobody voted on."""
    built = _commit_of(deployment)
    if built is not None and built.lower() != request.head_sha.lower():
        raise PromotionRefused(
            f"the Vercel deployment at {_hostname(request.preview_url)} is of commit {built[:7]}, "
            f"not {request.head_sha[:7]}, which was voted on; nothing was promoted"
        )


def _commit_of(deployment: dict[str, Any]) -> str | None:
    """The commit Vercel built the deployment from, as its Git integration records it; None
    when it does not say (a deployment from the CLI, say)."""
    meta = deployment.get("meta")
    if not isinstance(meta, dict):
        return None
    for key in ("githubCommitSha", "gitlabCommitSha", "bitbucketCommitSha"):
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _https(host: str | None) -> str | None:
    if not host:
        return None
    return host if host.startswith(("https://", "http://")) else f"https://{host}"


def _is_invalid_token(answer: Any) -> bool:
    error = answer.get("error") if isinstance(answer, dict) else None
    return isinstance(error, dict) and bool(error.get("invalidToken"))


def _error_message(answer: Any) -> str:
    """Vercel's own words from `{"error": {"code", "message"}}`, short and on one line."""
    if not isinstance(answer, dict):
        return ""
    error = answer.get("error")
    if isinstance(error, dict):
        text = str(error.get("message") or error.get("code") or "")
    else:
        text = str(answer.get("message") or "")
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_SHOWN else text[: MAX_ERROR_SHOWN - 1] + "…"
