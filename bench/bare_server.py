"""The ceiling for intake on this machine: an aiohttp server that only checks the HMAC.

    WEBHOOK_SECRET=S python bench/bare_server.py --port 8123

It reads the body, compares `X-Hub-Signature-256` in constant time and answers 202,
storing nothing: what is left of the App's intake time beyond this is the durable
store and the App's own checks.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import event_loop_factory  # noqa: E402


def create_app(secret: str) -> web.Application:
    key = secret.encode()

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Hub-Signature-256", "")):
            return web.json_response({"error": "bad signature"}, status=401)
        return web.json_response({"ok": True}, status=202)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=25 * 1024 * 1024 + 1)
    app.router.add_post("/api/github/webhooks", receive)
    app.router.add_get("/api/health", health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", help="default: the WEBHOOK_SECRET environment variable")
    args = parser.parse_args()
    # The App's own event loop (uvloop where installed), so the ceiling is measured like the App.
    factory = event_loop_factory()
    web.run_app(
        create_app(args.secret or os.environ["WEBHOOK_SECRET"]),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        loop=factory() if factory else None,
    )


if __name__ == "__main__":
    main()
