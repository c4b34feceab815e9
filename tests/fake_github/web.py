"""GitHub's web pages that the App sends people to (not the REST API).

Only the manifest flow's "create an App from a manifest" page: github.com shows the
person the App's settings, and after they confirm, redirects to the manifest's
`redirect_url` with a one-time `code` and the `state` it was given. The fake skips the
confirmation and redirects at once. Manifests GitHub would refuse are answered 422 and
listed in `gh.errors`.
"""

from __future__ import annotations

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


def add_web_routes(app: web.Application, gh: FakeGitHub) -> None:
    async def create_app_from_manifest(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        where = request.path
        try:
            manifest = json.loads(str(form.get("manifest", "")))
        except ValueError:
            manifest = None
        problems = manifest_problems(manifest)
        if problems:
            gh.errors += [f"POST {where}: GitHub would refuse this manifest: {p}" for p in problems]
            return web.Response(status=422, text="Invalid GitHub App manifest:\n" + "\n".join(problems))
        gh.received_manifests.append(
            {"manifest": manifest, "state": request.query.get("state"), "organization": request.match_info.get("org")}
        )
        code = secrets.token_hex(10)
        gh.add_manifest_code(code, pem=gh.manifest_pem)
        # github.com sends the person to the redirect URL, or to the App's page without one.
        target = manifest.get("redirect_url")
        if not target:
            return web.Response(text="App created")
        query = {"code": code}
        if request.query.get("state") is not None:
            query["state"] = request.query["state"]
        raise web.HTTPFound(f"{target}?{urlencode(query)}")

    app.router.add_post("/settings/apps/new", create_app_from_manifest)
    app.router.add_post("/organizations/{org}/settings/apps/new", create_app_from_manifest)
