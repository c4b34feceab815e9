"""Webhook intake: verify, store, commit, then acknowledge. Nothing else on the request path."""

from __future__ import annotations

import logging
import time

import orjson
from aiohttp import web

from .. import metrics
from ..governance.characters import storable
from ..signatures import signature_matches
from ..storage import inbox
from .keys import RUNTIME

log = logging.getLogger(__name__)


# The inbox's label columns (event, action, delivery id) hold at most this many characters.
MAX_LABEL_LENGTH = 100


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _answer(status: int, body: bytes) -> web.Response:
    # Fixed answers skip json_response's encoding: this is the one path GitHub waits on.
    return web.Response(body=body, status=status, content_type="application/json")


_ACCEPTED = b'{"ok":true}'
_DUPLICATE = b'{"ok":true,"duplicate":true}'


def _label(value: object) -> str | None:
    """A payload's value as a label column holds it, or None when it cannot be one."""
    if isinstance(value, str) and len(value) <= MAX_LABEL_LENGTH and "\x00" not in value:
        return value
    return None


def _database_id(value: object) -> int | None:
    """A payload's id as a BIGINT column holds it (GitHub's ids are positive 64-bit numbers)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63:
        return value
    return None


async def receive_webhook(request: web.Request) -> web.Response:
    started = time.perf_counter()
    response = await _receive(request)
    metrics.INTAKE_SECONDS.observe(time.perf_counter() - started)
    if response.status == 202:
        outcome = "accepted"
    elif response.status == 200 and request.headers.get("X-GitHub-Event") == "ping":
        outcome = "ping"
    elif response.status == 200:
        outcome = "duplicate"
    else:
        outcome = f"refused_{response.status}"
    # Only a verified delivery's event name is a label: anyone can send any header.
    event = request.headers.get("X-GitHub-Event", "") if response.status < 300 else "unverified"
    metrics.count_delivery(event, outcome)
    return response


async def _receive(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    settings = runtime.settings
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        return _error(413, f"body over {settings.max_body_bytes} bytes")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"body over {settings.max_body_bytes} bytes")
    if len(body) > settings.max_body_bytes:  # sent without Content-Length (chunked)
        return _error(413, f"body over {settings.max_body_bytes} bytes")

    signature = request.headers.get("X-Hub-Signature-256")
    if not settings.webhook_secret:
        return _error(401, "this App has no webhook secret configured; deliveries are refused")
    if not signature:
        return _error(401, "missing X-Hub-Signature-256")
    event_name = request.headers.get("X-GitHub-Event")
    delivery_id = request.headers.get("X-GitHub-Delivery")
    if not signature_matches(body, signature, secret=settings.webhook_secret):
        return _error(401, "bad signature")
    if not event_name or not delivery_id:
        return _error(400, "missing X-GitHub-Event or X-GitHub-Delivery")
    if len(delivery_id) > MAX_LABEL_LENGTH:
        return _error(400, "X-GitHub-Delivery is too long")
    if len(event_name) > MAX_LABEL_LENGTH:
        return _error(400, "X-GitHub-Event is too long")
    media_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        return _error(415, "expected Content-Type application/json")
    try:
        text = body.decode("utf-8")
        data = orjson.loads(body)
    except ValueError:  # UnicodeDecodeError and orjson.JSONDecodeError are ValueErrors
        return _error(400, "body is not valid JSON")
    if not isinstance(data, dict):
        return _error(400, "body must be a JSON object")
    if event_name == "ping":
        return web.json_response({"ok": True, "zen": data.get("zen")})

    installation = data.get("installation")
    installation_id = installation.get("id") if isinstance(installation, dict) else None
    row = inbox.delivery_row(
        delivery_id=delivery_id,
        event=event_name,
        action=_label(data.get("action")),
        installation_id=_database_id(installation_id),
        # Text columns cannot hold NUL on PostgreSQL; a payload's names can.
        serial_key=storable(inbox.serial_key_for(event_name, data)),
        body=text,
        received_at=runtime.clock(),
    )
    try:
        stored = await runtime.deliveries.store(row)
    except Exception:
        log.exception("delivery not stored", extra={"delivery_id": delivery_id})
        # Not acknowledged, so GitHub shows the delivery as failed and it can be redelivered.
        return _error(503, "the delivery could not be stored; redeliver it later")
    if not stored:
        return _answer(200, _DUPLICATE)
    runtime.notify_worker()
    return _answer(202, _ACCEPTED)
