"""Who a request came from, for limits kept per client."""

from __future__ import annotations

import ipaddress

from aiohttp import web


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
