"""The `protection_rule` provider's answer: approve or reject a GitHub Actions job that
waits on this App as a custom deployment protection rule (DESIGN section 4).

Nothing is created here, so there is nothing to look up after an unknown outcome:
the waiting job deploys once whatever number of times it is approved.
"""

from __future__ import annotations

import gidgethub.abc

from .base import PromotionRefused
from .github import github_failures

MAX_COMMENT = 1024


async def review_deployment_protection_rule(
    gh: gidgethub.abc.GitHubAPI,
    *,
    repo_full_name: str,
    run_id: int,
    environment_name: str,
    approved: bool,
    comment: str,
) -> None:
    """Tells GitHub whether workflow run `run_id` may deploy to `environment_name`.

    `gh` acts as the installation; GitHub only accepts reviews of the App's own rule.
    Raises PromotionRefused (4xx other than 408, 409 and 429) or PromotionUnavailable.
    """
    owner, _, repo = repo_full_name.partition("/")
    if not owner or not repo:
        raise PromotionRefused(f"{repo_full_name!r} is not an owner/repository name")
    body = {
        "environment_name": environment_name,
        "state": "approved" if approved else "rejected",
        "comment": comment[:MAX_COMMENT],
    }
    verdict = "approve" if approved else "reject"
    async with github_failures(f"{verdict} the deployment of run {run_id} to {environment_name}"):
        await gh.post(f"/repos/{owner}/{repo}/actions/runs/{run_id}/deployment_protection_rule", data=body)
