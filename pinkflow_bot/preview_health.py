"""Does the preview answer? A GET of the preview URL plus `preview_health.path`.

The URL comes from whoever reported the deployment, so the request is kept from reaching
inside the network the App runs in: the host must resolve to public addresses only
(loopback is accepted when the preview URL itself names this machine), redirects are
followed only to the same host, and the whole check has a short time limit.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from .promotion.base import no_answer_words

TIMEOUT_SECONDS = 5.0
MAX_REDIRECTS = 5
USER_AGENT = "pinkflow-bot (preview health check)"
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain"})


@dataclass(frozen=True)
class HealthResult:
    status: int | None
    elapsed_ms: int | None
    error: str | None = None


class RefusedAddress(Exception):
    """The preview's host names an address the App must not reach."""


def health_url(preview_url: str, path: str) -> str:
    """The preview URL with `path` in place of its own path (`https://x.dev/pr` + `/api/health`)."""
    parts = urlsplit(preview_url.strip())
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _parsed(url: str) -> yarl.URL | None:
    """The URL as aiohttp will request it, or None when it cannot be one. Its host is
    the one connected to: yarl folds full-width digits and other look-alikes
    (`１２７.０.０.１` is 127.0.0.1), so every check below reads this host, never the text."""
    try:
        parsed = yarl.URL(url)
        host = parsed.raw_host
    except (ValueError, UnicodeError):
        return None
    if parsed.scheme not in ("http", "https") or not host or not host.isascii():
        return None
    return parsed


def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _is_loopback_host(host: str) -> bool:
    if host.lower() in _LOCAL_NAMES:
        return True
    literal = _literal_address(host)
    return literal is not None and literal.is_loopback


def address_refusal(address: str, *, allow_loopback: bool) -> str | None:
    """Why the App must not connect to `address`; None when it may."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address} is not an address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return None if allow_loopback else f"{ip} is a loopback address"
    if ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_multicast or ip.is_unspecified or not ip.is_global:
        return f"{ip} is not a public address"
    return None


class _PublicResolver(AbstractResolver):
    """Resolves as usual and refuses names whose addresses are not public, so that the
    addresses checked are the ones connected to."""

    def __init__(self, *, allow_loopback: bool) -> None:
        self._resolver = DefaultResolver()
        self._allow_loopback = allow_loopback

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        for result in results:
            refusal = address_refusal(result["host"], allow_loopback=self._allow_loopback)
            if refusal is not None:
                raise RefusedAddress(f"{host} resolves to {refusal}")
        return results

    async def close(self) -> None:
        await self._resolver.close()


async def check_preview(
    preview_url: str, *, path: str = "/", timeout: float = TIMEOUT_SECONDS, allow_loopback: bool = False
) -> HealthResult:
    """GETs the preview; the answer's status and the time it took, or why there was none."""
    try:
        url = _parsed(health_url(preview_url, path))
    except ValueError:  # urlsplit's own refusals, as of an unclosed IPv6 bracket
        url = None
    if url is None:
        return HealthResult(None, None, "the preview URL is not a valid http(s) URL")
    host = url.raw_host or ""
    # Loopback only where the operator said previews run on this machine, and only for a
    # preview URL that names it: otherwise a deployment status could probe the App's own ports.
    allow_loopback = allow_loopback and _is_loopback_host(host)
    if _literal_address(host) is not None:
        refusal = address_refusal(host, allow_loopback=allow_loopback)
        if refusal is not None:
            return HealthResult(None, None, f"not checked: {refusal}")
    connector = aiohttp.TCPConnector(resolver=_PublicResolver(allow_loopback=allow_loopback), force_close=True)
    started = time.perf_counter()
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            status = await _get(session, url, host=host)
    except RefusedAddress as error:
        return HealthResult(None, None, f"not checked: {error}")
    except asyncio.TimeoutError:
        return HealthResult(None, _ms(started), f"no answer within {timeout:g} s")
    except aiohttp.ClientError as error:
        cause = error.__cause__ if isinstance(error.__cause__, RefusedAddress) else None
        if cause is not None:
            return HealthResult(None, None, f"not checked: {cause}")
        return HealthResult(None, _ms(started), f"no answer: {no_answer_words(error)}")
    except _Redirected as error:
        return HealthResult(error.status, _ms(started), str(error))
    except (ValueError, UnicodeError):  # a host no resolver accepts (an empty or overlong label)
        return HealthResult(None, None, "the preview URL's host is not a valid name")
    return HealthResult(status, _ms(started), None)


class _Redirected(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _get(session: aiohttp.ClientSession, url: yarl.URL, *, host: str) -> int:
    headers: dict[str, Any] = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for _ in range(MAX_REDIRECTS + 1):
        async with session.get(url, allow_redirects=False, headers=headers) as response:
            status = response.status
            location = response.headers.get("Location")
        if status not in (301, 302, 303, 307, 308) or not location:
            return status
        try:
            target = _parsed(str(url.join(yarl.URL(location))))
        except (ValueError, UnicodeError):
            target = None
        if target is None or (target.raw_host or "").lower() != host.lower():
            shown = target.raw_host if target is not None else "an address that is not an http(s) URL"
            raise _Redirected(status, f"redirects to another host ({shown}); not followed")
        url = target
    raise _Redirected(status, f"more than {MAX_REDIRECTS} redirects")


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
