"""Deployments: a preview's success opens a proposal, the production deployment of a
promotion is followed, and workflow runs that wait on the App's protection rule are kept."""

from __future__ import annotations

import logging
import re

from gidgethub import routing, sansio

from ..governance.rules import is_preview_environment
from ..services import PullRequestFacts
from ..storage import proposals as queries
from .context import HandlerContext, learn_who_may_vote, repo_full_name

router = routing.Router()
log = logging.getLogger(__name__)

# `deployment_callback_url` ends in /repos/{owner}/{repo}/actions/runs/{run_id}/deployment_protection_rule.
_CALLBACK_RUN = re.compile(r"/actions/runs/(\d+)/deployment_protection_rule/?$")


@router.register("deployment_status", action="created")
async def deployment_status_created(event: sansio.Event, gh, ctx: HandlerContext) -> None:
    status = event.data["deployment_status"]
    deployment = event.data["deployment"]
    repository = event.data["repository"]
    repo = repo_full_name(event.data)
    environment = status.get("environment") or deployment.get("environment")
    promoted = await ctx.service.followed_promotion(
        repo_full_name=repo, deployment_id=deployment["id"], sha=deployment["sha"], environment=environment
    )
    if promoted is not None:
        await ctx.service.record_deployment_status(
            ctx.delivery,
            proposal_id=promoted,
            deployment_id=deployment["id"],
            state=str(status.get("state") or ""),
            environment_url=status.get("environment_url") or None,
            description=status.get("description") or None,
            creator=((status.get("creator") or {}).get("login")) or "github",
        )
        return
    if status.get("state") != "success" or gh is None:
        return
    lookup = await ctx.service.config.read(gh, repo_full_name=repo, default_branch=repository.get("default_branch"))
    if not is_preview_environment(environment, lookup.rules.preview_environments):
        return
    pull = await _open_pull_at(event, gh, ctx, sha=deployment["sha"])
    if pull is None:
        log.info("no open pull request at the preview's commit", extra={"head_sha": deployment["sha"]})
        return
    await ctx.service.open_proposal(
        ctx.delivery,
        installation_id=ctx.installation_id,
        repo_full_name=repo,
        repo_private=bool(repository.get("private")),
        pull=pull,
        preview_deployment_id=deployment["id"],
        preview_url=status.get("environment_url") or status.get("target_url") or None,
        environment=environment,
        lookup=lookup,
    )
    await learn_who_may_vote(ctx, gh, repo_full_name=repo)


@router.register("deployment_protection_rule", action="requested")
async def protection_rule_requested(event: sansio.Event, gh, ctx: HandlerContext) -> None:
    """A workflow job waits on this App (a custom deployment protection rule) to deploy."""
    deployment = event.data.get("deployment") or {}
    environment = event.data.get("environment") or deployment.get("environment")
    found = _CALLBACK_RUN.search(str(event.data.get("deployment_callback_url") or ""))
    if found is None or not deployment.get("sha") or not environment:
        log.warning("a deployment protection rule request without its run, commit or environment")
        return
    await ctx.service.record_protection_request(
        ctx.delivery,
        installation_id=ctx.installation_id,
        repo_full_name=repo_full_name(event.data),
        head_sha=deployment["sha"],
        run_id=int(found.group(1)),
        environment=environment,
    )


# At most this many open pull requests (three pages) are searched for a fork's head commit.
RECENT_PULLS_SEARCHED = 300


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
        # A pull request from a fork: its head commit lives in the fork, and GitHub does not
        # find it by commit. The recently updated open pull requests show their heads.
        seen = 0
        async for pull in gh.getiter(f"/repos/{owner}/{name}/pulls?state=open&sort=updated&direction=desc&per_page=100"):
            seen += 1
            if pull["head"]["sha"] == sha:
                candidates = [pull]
                break
            if seen >= RECENT_PULLS_SEARCHED:
                break
    if not candidates:
        return None
    pull = min(candidates, key=lambda p: p["number"])
    return PullRequestFacts(number=pull["number"], head_sha=sha, author=pull["user"]["login"])
