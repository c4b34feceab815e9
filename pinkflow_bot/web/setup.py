"""The first page a person sees."""

from __future__ import annotations

from html import escape

from aiohttp import web

from .keys import RUNTIME

_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title></head>
<body>
<main>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"""


def _page(title: str, body: str) -> web.Response:
    return web.Response(text=_PAGE.format(title=escape(title), body=body), content_type="text/html")


async def setup_page(request: web.Request) -> web.Response:
    settings = request.app[RUNTIME].settings
    if settings.configured:
        return _page("pinkflow-bot is set up", f"<p>GitHub App {escape(settings.app_id or '')} is configured.</p>")
    return _page(
        "Set up pinkflow-bot",
        "<p>pinkflow-bot puts the promotion of a pull request's preview deployment to production "
        "under a weighted vote of the repository's people.</p>"
        "<p>This App is not registered with GitHub yet. Register a GitHub App with the permissions and "
        "events of <code>app-manifest.yml</code>, then set <code>APP_ID</code>, <code>PRIVATE_KEY</code> "
        "(or <code>PRIVATE_KEY_PATH</code>) and <code>WEBHOOK_SECRET</code> in the environment or in "
        "<code>.env</code>, and start the App again.</p>",
    )


async def home(request: web.Request) -> web.Response:
    settings = request.app[RUNTIME].settings
    if not settings.configured:
        return await setup_page(request)
    return _page(
        "pinkflow-bot",
        "<p>pinkflow-bot is running. Webhooks are received at <code>/api/github/webhooks</code>; "
        "health is at <a href=\"/api/health\"><code>/api/health</code></a>.</p>",
    )
