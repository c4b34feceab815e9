"""Pushes: a change of `.github/pinkflow.yml` on the default branch is read again at once,
also by the repositories that use the owner's file (in its `.github` repository)."""

from __future__ import annotations

import logging

from gidgethub import routing, sansio

from ..governance.config import CONFIG_PATH
from ..repository_config import OWNER_CONFIG_REPOSITORY
from .context import HandlerContext, repo_full_name

router = routing.Router()
log = logging.getLogger(__name__)

# GitHub lists at most this many commits in a push; a longer push may touch the file unseen.
MAX_LISTED_COMMITS = 20


def touches_config(data: dict) -> bool:
    """Whether the push may have changed the file: it lists a commit that did, or cannot tell."""
    commits = data.get("commits") or []
    if data.get("forced") or len(commits) >= MAX_LISTED_COMMITS:
        return True
    for commit in [*commits, data.get("head_commit") or {}]:
        for key in ("added", "modified", "removed"):
            if CONFIG_PATH in (commit.get(key) or ()):
                return True
    return False


@router.register("push")
async def pushed(event: sansio.Event, gh, ctx: HandlerContext) -> None:
    repository = event.data["repository"]
    default_branch = repository.get("default_branch")
    if event.data.get("ref") != f"refs/heads/{default_branch}" or not touches_config(event.data):
        return
    repo = repo_full_name(event.data)
    owner, _, name = repo.partition("/")
    if name.lower() == OWNER_CONFIG_REPOSITORY:
        ctx.service.config.forget_owner(owner)  # the file every repository of the owner may fall back to
    ctx.service.config.forget(repo)
    log.info("the rules file changed on the default branch", extra={"repository": repo})
    if gh is None:
        return
    if name.lower() == OWNER_CONFIG_REPOSITORY:
        # Open proposals elsewhere that wait for this file to be fixed take it up now.
        for other in await ctx.service.repositories_waiting_for_owner_rules(owner=owner, installation_id=ctx.installation_id):
            other_lookup = await ctx.service.config.read(gh, repo_full_name=other)
            await ctx.service.apply_config(None, repo_full_name=other, lookup=other_lookup)
    lookup = await ctx.service.config.read(gh, repo_full_name=repo, default_branch=default_branch)
    await ctx.service.apply_config(ctx.delivery, repo_full_name=repo, lookup=lookup)
