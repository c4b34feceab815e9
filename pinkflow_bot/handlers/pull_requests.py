"""Pull requests: their head and state decide which proposal is current."""

from __future__ import annotations

from gidgethub import routing, sansio

from .context import HandlerContext, learn_who_may_vote, repo_full_name

router = routing.Router()

# Actions after which the head may be new: with `open_on: pull_request` it is put to a vote.
_NEW_HEAD = frozenset({"opened", "reopened", "synchronize", "ready_for_review"})


@router.register("pull_request", action="opened")
@router.register("pull_request", action="reopened")
@router.register("pull_request", action="synchronize")
@router.register("pull_request", action="closed")
@router.register("pull_request", action="edited")
@router.register("pull_request", action="ready_for_review")
async def pull_request_changed(event: sansio.Event, gh, ctx: HandlerContext) -> None:
    pull = event.data["pull_request"]
    repository = event.data["repository"]
    repo = repo_full_name(event.data)
    if gh is not None:
        # GitHub does not deliver in order: a late `synchronize` or `closed` must not move the
        # App back to a head or state the pull request has left. It is read as it is now.
        owner, name = repo.split("/", 1)
        pull = await gh.getitem(f"/repos/{owner}/{name}/pulls/{pull['number']}")
    lookup = None
    if event.data.get("action") in _NEW_HEAD and pull["state"] == "open" and gh is not None:
        lookup = await ctx.service.config.read(gh, repo_full_name=repo, default_branch=repository.get("default_branch"))
    await ctx.service.record_pull_request(
        ctx.delivery,
        installation_id=ctx.installation_id,
        repo_full_name=repo,
        number=pull["number"],
        head_sha=pull["head"]["sha"],
        author=pull["user"]["login"],
        state=pull["state"],
        repo_private=bool(repository.get("private")),
        head_rules=lookup,
    )
    if lookup is not None and lookup.rules.open_on == "pull_request":
        await learn_who_may_vote(ctx, gh, repo_full_name=repo)
