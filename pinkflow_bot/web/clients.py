"""Who a request came from, and the limit on JSON API requests kept per client
(RATE_LIMIT_WINDOW, RATE_LIMIT_MAX_REQUESTS; behind reverse proxies, TRUSTED_PROXY_HOPS
says how many to believe)."""

from __future__ import annotations

import functools
import ipaddress
import math
import time
from collections import OrderedDict, deque

from aiohttp import web

from .keys import RUNTIME


def client_address(request: web.Request, *, trusted_proxy_hops: int) -> str:
    """The client's address: the peer's, or behind `trusted_proxy_hops` reverse proxies,
    the address the outermost of them saw.

    Each proxy appends the address it received the request from to X-Forwarded-For, so
    the entry `trusted_proxy_hops` from the right is the one the outermost trusted proxy
    wrote. Entries further left are whatever the client sent and are never believed. A
    request that did not pass through that many proxies (too few entries), or whose
    entry is not an address, counts as its peer.
    """
    peer = request.remote or "unknown"
    if trusted_proxy_hops <= 0:
        return peer
    entries = [entry.strip() for header in request.headers.getall("X-Forwarded-For", ()) for entry in header.split(",")]
    entries = [entry for entry in entries if entry]
    if len(entries) < trusted_proxy_hops:
        return peer
    try:
        return str(ipaddress.ip_address(entries[-trusted_proxy_hops]))
    except ValueError:
        return peer


class SlidingWindowLimiter:
    """At most `limit` requests per client in any `window` seconds, in memory, per process.

    Tracks a bounded number of clients; the least recently seen are forgotten first.
    """

    def __init__(self, *, max_clients: int = 10_000, clock=time.monotonic) -> None:
        self._clock = clock
        self._max_clients = max_clients
        self._requests: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str, *, limit: int, window: float) -> int | None:
        """Records a request; None when it is allowed, else the seconds until it would be."""
        now = self._clock()
        times = self._requests.pop(client, None) or deque()
        while times and times[0] <= now - window:
            times.popleft()
        self._requests[client] = times
        while len(self._requests) > self._max_clients:
            self._requests.popitem(last=False)
        if len(times) >= limit:
            return max(1, math.ceil(times[0] + window - now))
        times.append(now)
        return None


RATE_LIMITER = web.AppKey("api_rate_limiter", SlidingWindowLimiter)


def rate_limited(handler):
    @functools.wraps(handler)
    async def limited(request: web.Request) -> web.StreamResponse:
        settings = request.app[RUNTIME].settings
        wait = request.app[RATE_LIMITER].retry_after(
            client_address(request, trusted_proxy_hops=settings.trusted_proxy_hops),
            limit=settings.rate_limit_max_requests,
            window=settings.rate_limit_window.total_seconds(),
        )
        if wait is not None:
            return web.json_response(
                {"error": f"too many requests; try again in {wait} s"}, status=429, headers={"Retry-After": str(wait)}
            )
        return await handler(request)

    return limited
