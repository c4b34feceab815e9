"""The aiohttp application: every route of the App in one table."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from ..runtime import Runtime
from . import api, clients, dashboard, intake, observability, proposals_api, setup
from .keys import RUNTIME
from .pages import error_page

log = logging.getLogger(__name__)

# Whether the application serves the pages (a worker's own health server does not).
SERVES_PAGES = web.AppKey("serves_pages", bool)


@web.middleware
async def no_tracebacks(request: web.Request, handler):
    """An unexpected error is logged in full and answered without internals; an address
    that leads nowhere is answered with a page (JSON under /api/), not aiohttp's bare text."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        if request.method not in ("GET", "HEAD") or not request.app.get(SERVES_PAGES, False):
            raise
        if request.path.startswith("/api/"):
            return web.json_response({"error": "not found"}, status=404)
        return error_page(404, "Page not found", "There is no page at this address.")
    except web.HTTPException:
        raise
    except Exception:
        log.exception("request failed", extra={"path": request.path, "method": request.method})
        return web.json_response({"error": "internal error"}, status=500)


# What operators probe and scrape: served by every process, a worker on its own included.
MONITORING_ROUTES = (web.get("/api/health", api.health), web.get("/metrics", observability.metrics_endpoint))
MIDDLEWARES = (observability.request_id, no_tracebacks)


def create_app(runtime: Runtime) -> web.Application:
    # Slightly over the limit so intake itself can answer 413 with a clear message.
    app = web.Application(client_max_size=runtime.settings.max_body_bytes + 1, middlewares=MIDDLEWARES)
    app[RUNTIME] = runtime
    app[SERVES_PAGES] = True
    app.router.add_post("/api/github/webhooks", intake.receive_webhook)
    app.router.add_routes(MONITORING_ROUTES)
    app.router.add_get("/api/deployments/status", api.deployment_status)
    app.router.add_get("/setup", setup.setup_page)
    app.router.add_get("/setup/callback", setup.setup_callback)
    app.router.add_get("/", dashboard.home)
    app.router.add_get("/proposals/{proposal_id}", dashboard.proposal_page)
    app.router.add_get("/api/proposals", proposals_api.list_proposals)
    app.router.add_get("/api/proposals/{proposal_id}", proposals_api.get_proposal)
    app.router.add_get("/api/stats", proposals_api.statistics)
    app.router.add_get("/api/openapi.json", proposals_api.openapi_description)
    app[setup.PENDING_STATES] = setup.PendingStates()
    app[setup.REGISTRATION_LOCK] = asyncio.Lock()
    app[clients.RATE_LIMITER] = clients.SlidingWindowLimiter()
    return app


def create_monitoring_app(runtime: Runtime) -> web.Application:
    """A worker process's own server (METRICS_PORT): its health and metrics, nothing else."""
    app = web.Application(middlewares=MIDDLEWARES)
    app[RUNTIME] = runtime
    app.router.add_routes(MONITORING_ROUTES)
    return app
