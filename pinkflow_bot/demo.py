"""`python app.py demo`: the App against an embedded fake GitHub, playing one whole vote.

For someone with no GitHub App yet: it registers nothing anywhere. It starts the fake
GitHub of the test suite (in this checkout's `tests/`), the App itself with a throwaway
database, sends it the webhooks GitHub would send for a pull request whose preview is
voted on and promoted, prints what the bot posted, and keeps the dashboard up.
"""

from __future__ import annotations

import asyncio
import errno
import json
import secrets
import signal
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .governance.render import CHECK_RUN_NAME, STATUS_MARKER
from .runtime import Runtime
from .settings import Settings
from .signatures import body_signature
from .web.app import create_app

REPO = "acme/storefront"
PR = 42
HEAD_SHA = "9f3c2a7e5b1d4c6f8a0e2b4d6f8a1c3e5b7d9f02"
# The pull request's preview deployment: a page the demo serves itself, so that its link
# opens and its health check answers, with nothing asked of the internet.
PREVIEW_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Preview of acme/storefront#42</title></head>
<body><h1>acme/storefront #42: the new checkout</h1>
<p>This page stands in for the pull request's preview deployment (Vercel's, Netlify's or an
Actions job's). The demo serves it so that the bot can check its health.</p></body>
</html>
"""
CAST = [  # (login, role, comment): who says what, in order
    ("rita", "read", "/approve love it"),
    ("sam-the-author", "admin", "/approve ship it"),
    ("olivia", "admin", "/approve checkout flow works on mobile and desktop"),
    ("max", "maintain", "/approve"),
    ("dan", "write", "/reject the footer overlaps the cookie banner"),
    ("dan", "write", "> /reject\n\nQuoting myself: the footer is fixed now.\n\n/abstain"),
]


def _fake_github_class():
    try:
        from tests.fake_github import FakeGitHub
    except ImportError as error:  # the demo runs from a checkout: tests/ holds the fake GitHub
        raise SystemExit(
            f"the demo needs this repository's tests/fake_github and the test packages ({error}); "
            "run it from a checkout with ./scripts/start demo"
        ) from None
    return FakeGitHub


def _user(login: str, user_id: int, kind: str = "User") -> dict[str, Any]:
    return {"login": login, "id": user_id, "type": kind, "node_id": f"U_{user_id}", "site_admin": False}


class DemoGitHub:
    """The fake GitHub with one organisation, one repository and one pull request."""

    def __init__(self, public_key: bytes) -> None:
        self.fake = _fake_github_class()(app_id=1, app_public_key_pem=public_key)

    async def start(self) -> None:
        await self.fake.start()
        self.fake.add_installation(1, "acme")
        self.fake.add_repo(REPO, installation_id=1)
        for login, role, _ in CAST:
            self.fake.add_user(login)
            self.fake.set_permission(REPO, login, role)
        self.fake.add_pull(REPO, PR, head_sha=HEAD_SHA, author="sam-the-author", head_ref="new-checkout")

    async def close(self) -> None:
        await self.fake.close()


class Webhooks:
    """Signed deliveries, as GitHub sends them, to the App's own intake."""

    def __init__(self, http: aiohttp.ClientSession, *, url: str, secret: str) -> None:
        self._http, self._url, self._secret = http, url, secret
        self._ids = iter(range(5_000_000, 6_000_000))

    async def send(self, event: str, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        headers = {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": body_signature(body, secret=self._secret),
            "Content-Type": "application/json",
        }
        async with self._http.post(self._url, data=body, headers=headers) as response:
            response.raise_for_status()

    def _base(self) -> dict[str, Any]:
        owner, name = REPO.split("/")
        return {
            "repository": {"id": 1, "name": name, "full_name": REPO, "private": False, "owner": _user(owner, 1, "Organization")},
            "installation": {"id": 1},
        }

    async def preview_ready(self, preview_url: str) -> None:
        deployment_id = next(self._ids)
        await self.send(
            "deployment_status",
            {
                **self._base(),
                "action": "created",
                "deployment": {"id": deployment_id, "sha": HEAD_SHA, "ref": HEAD_SHA, "environment": "Preview"},
                "deployment_status": {
                    "id": next(self._ids), "state": "success", "environment": "Preview",
                    "environment_url": preview_url, "target_url": preview_url,
                },
                "sender": _user("vercel[bot]", 35613825, "Bot"),
            },
        )

    async def comment(self, fake, login: str, body: str) -> None:
        posted = fake.add_comment(REPO, PR, author=login, body=body)
        await self.send(
            "issue_comment",
            {
                **self._base(),
                "action": "created",
                "issue": {"number": PR, "pull_request": {"url": f"https://api.github.com/repos/{REPO}/pulls/{PR}"}},
                "comment": {"id": posted["id"], "body": body, "user": posted["user"]},
                "sender": posted["user"],
            },
        )


async def _settled(runtime: Runtime, *, timeout: float = 30.0) -> None:
    from .storage import inbox, outbox

    for _ in range(int(timeout / 0.1)):
        async with runtime.sessions() as session:
            waiting, _, _ = await inbox.backlog(session)
            effects, _ = await outbox.backlog(session)
        if not waiting and not effects:
            return
        await asyncio.sleep(0.1)


def _report(fake, out: TextIO, *, dashboard: str) -> None:
    write = out.write
    write("\n=== What the bot posted on acme/storefront#42 ===\n\n")
    for comment in fake.comments_on(REPO, PR):
        if STATUS_MARKER in comment["body"]:
            write(comment["body"].replace(STATUS_MARKER, "").strip() + "\n\n")
    write("--- Reactions (😕: not counted, the status comment says why; counted commands get none) ---\n")
    for comment in fake.comments_on(REPO, PR):
        if comment["user"]["type"] == "User":
            # Every line: the first alone would show only the quoted command of a comment whose vote is below it.
            first, *more = [line for line in comment["body"].splitlines() if line.strip()]
            write(f"  {comment['user']['login']:>15}: {first[:50]:<50} {' '.join(fake.reaction_contents(comment['id'])) or '(none)'}\n")
            for line in more:
                write(f"  {'':>15}  {line[:50]}\n")
    for run in fake.check_runs_for(REPO, HEAD_SHA, name=CHECK_RUN_NAME):
        write(f"\n--- Check run '{CHECK_RUN_NAME}' ---\n  {run['status']} / {run['conclusion']}: {run['output']['title']}\n")
    production = [d for d in fake.deployments.values() if d["environment"] == "production"]
    for deployment in production:
        write(f"\n--- Production deployment ---\n  #{deployment['id']} of {deployment['sha'][:7]} to {deployment['environment']}\n")
    write(f"\nDashboard: {dashboard}  (Ctrl-C to stop)\n")
    out.flush()


async def run_demo(*, port: int = 3000, host: str = "127.0.0.1", out: TextIO = sys.stdout, keep_running: bool = True) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    github = DemoGitHub(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    await github.start()
    runtime: Runtime | None = None
    runner: web.AppRunner | None = None
    preview: web.AppRunner | None = None
    try:
        preview, preview_url = await _serve_preview(host)
        folder = Path(tempfile.mkdtemp(prefix="pinkflow-demo-"))
        settings = Settings.from_mapping(
            {
                "APP_ID": "1",
                "PRIVATE_KEY": pem.decode(),
                "WEBHOOK_SECRET": secrets.token_hex(16),
                "DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'demo.db'}",
                "GITHUB_API_URL": github.fake.url,
                "PORT": str(port),
                "PUBLIC_URL": f"http://{host}:{port}",
                # The preview is served on this machine.
                "PREVIEW_HEALTH_ALLOW_LOOPBACK": "true",
            }
        )
        runtime = await Runtime.create(settings)
        runner = web.AppRunner(create_app(runtime), access_log=None)
        await runner.setup()
        await _listen(runner, host, port)
        runtime.start_worker()
        out.write(f"pinkflow-bot demo: the App on http://{host}:{port}, a fake GitHub on {github.fake.url}\n")
        async with aiohttp.ClientSession() as http:
            hooks = Webhooks(http, url=f"http://{host}:{port}/api/github/webhooks", secret=settings.webhook_secret)
            out.write("1. Vercel reports the preview of acme/storefront#42 ready\n")
            await hooks.preview_ready(preview_url)
            await _settled(runtime)
            out.write("2. People vote in comments (the author, a read-only user and a quoted command do not count)\n")
            for login, _, body in CAST:
                await hooks.comment(github.fake, login, body)
            await _settled(runtime)
            out.write("3. The vote passed: olivia comments /promote\n")
            await hooks.comment(github.fake, "olivia", "/promote")
            await _settled(runtime)
        _report(github.fake, out, dashboard=f"http://{host}:{port}/")
        summary = {
            "status_comment": next(c["body"] for c in github.fake.comments_on(REPO, PR) if STATUS_MARKER in c["body"]),
            "check_run": github.fake.check_runs_for(REPO, HEAD_SHA, name=CHECK_RUN_NAME)[-1],
            "production_deployments": [d for d in github.fake.deployments.values() if d["environment"] == "production"],
        }
        if keep_running:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            await stop.wait()
        return summary
    finally:
        if runner is not None:
            await runner.cleanup()
        if runtime is not None:
            await runtime.close()
        if preview is not None:
            await preview.cleanup()
        await github.close()


async def _serve_preview(host: str) -> tuple[web.AppRunner, str]:
    """The preview deployment's page on a free port; its runner and address."""
    app = web.Application()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PREVIEW_PAGE, content_type="text/html")

    app.router.add_get("/", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, 0).start()
    return runner, f"http://{host}:{runner.addresses[0][1]}"


async def _listen(runner: web.AppRunner, host: str, port: int) -> None:
    """Serves the dashboard on `port`; a port already taken (often 3000, by a dev server)
    stops the demo with one line that says how to choose another."""
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as error:
        why = f"port {port} is taken" if error.errno == errno.EADDRINUSE else (error.strerror or str(error))
        raise SystemExit(f"the demo cannot listen on {host}:{port}: {why}; choose another port: PORT={port + 1} ./scripts/start demo") from None
