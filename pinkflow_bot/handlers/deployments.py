"""Deployments: a preview's success opens a proposal."""

from __future__ import annotations

import logging

from gidgethub import routing, sansio

from ..services import PullRequestFacts
from ..storage import proposals as queries
from .context import HandlerContext, repo_full_name

router = routing.Router()
log = logging.getLogger(__name__)


@router.register("deployment_status", action="created")
async def deployment_status_created(event: sansio.Event, gh, ctx: HandlerContext) -> None:
    status = event.data["deployment_status"]
    deployment = event.data["deployment"]
    repo = repo_full_name(event.data)
    environment = status.get("environment") or deployment.get("environment")
    if status.get("state") != "success" or not ctx.service.is_preview(repo, environment):
        return
    pull = await _open_pull_at(event, gh, ctx, sha=deployment["sha"])
    if pull is None:
        log.info("no open pull request at the preview's commit", extra={"head_sha": deployment["sha"]})
        return
    await ctx.service.open_proposal(
        ctx.delivery,
        installation_id=ctx.installation_id,
        repo_full_name=repo,
        repo_private=bool(event.data["repository"].get("private")),
        pull=pull,
        preview_deployment_id=deployment["id"],
        preview_url=status.get("environment_url") or status.get("target_url") or None,
        environment=environment,
    )


async def _open_pull_at(event: sansio.Event, gh, ctx: HandlerContext, *, sha: str) -> PullRequestFacts | None:
    """The open pull request whose head is this commit: from stored events, else from GitHub."""
    repo = repo_full_name(event.data)
    async with ctx.service.read() as session:
        stored = await queries.open_pull_requests_at(session, repo_full_name=repo, head_sha=sha)
    if stored:
        pull = min(stored, key=lambda p: p.number)
        return PullRequestFacts(number=pull.number, head_sha=pull.head_sha, author=pull.author)
    owner, name = repo.split("/", 1)
    found = await gh.getitem(f"/repos/{owner}/{name}/commits/{sha}/pulls")
    candidates = [p for p in found if p.get("state") == "open" and p["head"]["sha"] == sha]
    if not candidates:
        return None
    pull = min(candidates, key=lambda p: p["number"])
    return PullRequestFacts(number=pull["number"], head_sha=sha, author=pull["user"]["login"])
