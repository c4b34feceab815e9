"""GitHub's web pages that the App sends people to (not the REST API).

Only the manifest flow's "create an App from a manifest" page: github.com shows the
person the App's settings, and after they confirm, redirects to the manifest's
`redirect_url` with a one-time `code` and the `state` it was given. Manifests GitHub
would refuse are answered 422 and listed in `gh.errors`.
"""

from __future__ import annotations

import html
import json
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

if TYPE_CHECKING:
    from .server import FakeGitHub

# GitHub's manifest parameters: https://docs.github.com/apps/sharing-github-apps/registering-a-github-app-from-a-manifest
MANIFEST_KEYS = frozenset(
    {
        "name", "url", "hook_attributes", "redirect_url", "callback_urls", "request_oauth_on_install",
        "setup_url", "description", "public", "default_events", "default_permissions", "setup_on_update",
    }
)
PERMISSION_LEVELS = frozenset({"read", "write", "admin"})


def manifest_problems(manifest: Any) -> list[str]:
    if not isinstance(manifest, dict):
        return ["the manifest is not a JSON object"]
    problems = [f"unknown manifest key {key!r}" for key in manifest if key not in MANIFEST_KEYS]
    if not isinstance(manifest.get("url"), str) or not manifest["url"]:
        problems.append("url is required")
    hook = manifest.get("hook_attributes")
    if hook is not None and (not isinstance(hook, dict) or not isinstance(hook.get("url"), str)):
        problems.append("hook_attributes.url is required when hook_attributes is given")
    permissions = manifest.get("default_permissions", {})
    if not isinstance(permissions, dict) or any(level not in PERMISSION_LEVELS for level in permissions.values()):
        problems.append(f"default_permissions levels must be one of {sorted(PERMISSION_LEVELS)}")
    if not isinstance(manifest.get("default_events", []), list):
        problems.append("default_events must be a list")
    return problems


_CONFIRM_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Create GitHub App</title></head>
<body><main>
<h1>Create GitHub App</h1>
<p>{name} will be created{owner} with the permissions and events of its manifest.</p>
<form method="post" action="/settings/apps/new/confirm">
<input type="hidden" name="confirmation" value="{confirmation}">
<button type="submit">Create GitHub App for {name}</button>
</form>
</main></body></html>
"""


def add_web_routes(app: web.Application, gh: FakeGitHub) -> None:
    """The manifest pages: the form's POST shows a confirmation page, as github.com does;
    confirming creates the App and redirects to the manifest's `redirect_url`."""
    waiting: dict[str, dict[str, Any]] = {}

    async def create_app_from_manifest(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        try:
            manifest = json.loads(str(form.get("manifest", "")))
        except ValueError:
            manifest = None
        problems = manifest_problems(manifest)
        if problems:
            gh.errors += [f"POST {request.path}: GitHub would refuse this manifest: {p}" for p in problems]
            return web.Response(status=422, text="Invalid GitHub App manifest:\n" + "\n".join(problems))
        organization = request.match_info.get("org")
        received = {"manifest": manifest, "state": request.query.get("state"), "organization": organization}
        gh.received_manifests.append(received)
        confirmation = secrets.token_hex(8)
        waiting[confirmation] = received
        page = _CONFIRM_PAGE.format(
            name=html.escape(str(manifest.get("name") or "the App")),
            owner=f" for {html.escape(organization)}" if organization else "",
            confirmation=confirmation,
        )
        return web.Response(text=page, content_type="text/html")

    async def confirm(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        received = waiting.pop(str(form.get("confirmation", "")), None)
        if received is None:
            gh.errors.append("POST /settings/apps/new/confirm: no App waiting for this confirmation")
            return web.Response(status=404, text="Not Found")
        code = secrets.token_hex(10)
        gh.add_manifest_code(code, pem=gh.manifest_pem)
        # github.com sends the person to the redirect URL, or to the App's page without one.
        target = received["manifest"].get("redirect_url")
        if not target:
            return web.Response(text="App created")
        query = {"code": code}
        if received["state"] is not None:
            query["state"] = received["state"]
        raise web.HTTPFound(f"{target}?{urlencode(query)}")

    app.router.add_post("/settings/apps/new", create_app_from_manifest)
    app.router.add_post("/organizations/{org}/settings/apps/new", create_app_from_manifest)
    app.router.add_post("/settings/apps/new/confirm", confirm)
