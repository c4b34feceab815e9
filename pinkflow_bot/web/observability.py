"""What operators watch: a request id on every answer, and the Prometheus metrics."""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
from datetime import datetime, timezone

from aiohttp import web

from .. import metrics
from ..logs import log_context
from .keys import RUNTIME

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
# A made-up id is this process's random prefix and a counter: unique, and cheaper than
# asking the kernel for fresh random bytes on every request.
_PROCESS_PREFIX = secrets.token_hex(8)
_request_numbers = itertools.count(1)


def new_request_id() -> str:
    return f"{_PROCESS_PREFIX}{next(_request_numbers):016x}"


@web.middleware
async def request_id(request: web.Request, handler):
    """Keeps a caller's (or a proxy's) request id, or makes one; every log line of the request has it."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    rid = given if given and _SAFE_ID.match(given) else new_request_id()
    with log_context(request_id=rid):
        try:
            response = await handler(request)
        except web.HTTPException as error:
            error.headers[REQUEST_ID_HEADER] = rid
            raise
    response.headers[REQUEST_ID_HEADER] = rid
    return response


# A scrape waits this long for the stored state, as the health check does.
STORED_STATE_TIMEOUT_SECONDS = 5


async def metrics_endpoint(request: web.Request) -> web.Response:
    """The process's counters, and the stored state's gauges when the database answers:
    while it does not, the scrape still shows what intake and the worker do about it
    (deliveries refused with 503, for one), with `pinkflow_database_up 0`."""
    runtime = request.app[RUNTIME]
    try:
        async with runtime.sessions() as session:
            await asyncio.wait_for(
                metrics.refresh_from_database(session, now=datetime.now(timezone.utc)), timeout=STORED_STATE_TIMEOUT_SECONDS
            )
    except Exception:  # whatever keeps the database from answering; the health check says which
        metrics.forget_stored_state()
    return web.Response(body=metrics.exposition(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
