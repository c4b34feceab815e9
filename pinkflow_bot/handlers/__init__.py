"""Every event the App handles, composed in one place."""

from gidgethub.routing import Router

from . import checks, comments, deployments, installations, pull_requests, pushes

router = Router(
    pull_requests.router,
    comments.router,
    deployments.router,
    checks.router,
    installations.router,
    pushes.router,
)
