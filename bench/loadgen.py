"""A load generator of signed webhook deliveries, for loopback targets only.

    python bench/loadgen.py http://127.0.0.1:3000/api/github/webhooks --secret S \
        --count 5000 --seconds 30 --concurrency 16

Every request carries a delivery id of its own and a body signed like GitHub's
(`X-Hub-Signature-256`). Runs are bounded in count and in time, and the target must
resolve to 127.0.0.0/8 only: the address is resolved once, checked with `ipaddress`,
and then connected to directly, so a name cannot point elsewhere between the check
and the requests.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import hmac
import ipaddress
import json
import math
import socket
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp

_REPO_ROOT = str(Path(__file__).resolve().parents[1])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.paths import shared_dir  # noqa: E402

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
# Hard ceilings, whatever a caller asks for.
MAX_REQUESTS = 1_000_000
MAX_SECONDS = 900.0
MAX_CONCURRENCY = 1024


class TargetRefused(ValueError):
    """The target is not a loopback address (or cannot be resolved to one)."""


def loopback_target(url: str) -> tuple[str, str]:
    """(the URL with its host replaced by the checked loopback address, the original Host header).

    Every IPv4 address the host name resolves to must lie in 127.0.0.0/8; IPv6 literals
    (including `::1` and IPv4-mapped forms) are refused, as is any scheme but http and https.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise TargetRefused(f"only http(s) targets, not {parts.scheme or 'no scheme'!r}")
    host = parts.hostname
    if not host:
        raise TargetRefused(f"no host in {url!r}")
    if ":" in host:
        raise TargetRefused(f"IPv6 address {host!r}: only 127.0.0.0/8 is a target")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise TargetRefused(f"bad port in {url!r}: {error}") from None
    try:
        # IPv4 only: the address connected to is the one checked here.
        infos = socket.getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise TargetRefused(f"cannot resolve {host!r}: {error}") from None
    addresses = set()
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if address.version != 4 or address not in LOOPBACK:
            raise TargetRefused(f"{host!r} resolves to {address}, outside {LOOPBACK}")
        addresses.add(address)
    if not addresses:
        raise TargetRefused(f"{host!r} resolves to nothing")
    pinned = str(min(addresses))
    netloc = f"{pinned}:{port}"
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), host_header


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class PreparedBody:
    event: str
    body: bytes
    signature: str


def comment_bodies(secret: str, *, variants: int = 64, repo: str = "octo-org/shop") -> list[PreparedBody]:
    """`issue_comment` deliveries from GitHub's own example, each a different comment, signed.

    Bodies are prepared before the clock starts, so the generator spends its time sending.
    """
    example = json.loads((shared_dir() / "github" / "webhooks" / "issue_comment" / "created.with-installation.json").read_text())
    owner, name = repo.split("/", 1)
    prepared = []
    for index in range(variants):
        payload = copy.deepcopy(example)
        payload["repository"].update(full_name=repo, name=name)
        payload["repository"]["owner"]["login"] = owner
        payload["installation"] = {"id": 1, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ=="}
        payload["issue"]["number"] = 1 + index % 16
        payload["comment"].update(id=90_000_000 + index, body=f"/approve variant {index}")
        body = json.dumps(payload, separators=(",", ":")).encode()
        prepared.append(PreparedBody("issue_comment", body, sign(secret, body)))
    return prepared


@dataclass
class LoadResult:
    concurrency: int
    sent: int = 0
    elapsed: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, accepted requests only

    @property
    def accepted(self) -> int:
        return sum(count for status, count in self.statuses.items() if 200 <= status < 300)

    @property
    def rate(self) -> float:
        return self.accepted / self.elapsed if self.elapsed else 0.0

    def percentile(self, fraction: float) -> float:
        return percentile(self.latencies, fraction)

    def summary(self) -> dict[str, object]:
        return {
            "concurrency": self.concurrency,
            "sent": self.sent,
            "accepted": self.accepted,
            "elapsed_s": round(self.elapsed, 3),
            "accepted_per_s": round(self.rate, 1),
            "p50_ms": round(self.percentile(0.50) * 1000, 2),
            "p99_ms": round(self.percentile(0.99) * 1000, 2),
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
        }


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


async def generate_load(
    url: str,
    bodies: Sequence[PreparedBody],
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    warmup: int = 0,
) -> LoadResult:
    """Sends up to `max_requests` deliveries (and stops after `max_seconds`) with
    `concurrency` requests in flight; `warmup` more go first and are not counted."""
    if not bodies:
        raise ValueError("no bodies to send")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be 1 to {MAX_CONCURRENCY}")
    max_requests = min(max_requests, MAX_REQUESTS)
    max_seconds = min(max_seconds, MAX_SECONDS)
    target, host_header = loopback_target(url)
    result = LoadResult(concurrency=concurrency)
    run_id = uuid.uuid4().hex[:12]
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:

        async def post(index: int, *, record: bool) -> None:
            prepared = bodies[index % len(bodies)]
            headers = {
                "Host": host_header,
                "X-GitHub-Event": prepared.event,
                "X-GitHub-Delivery": f"bench-{run_id}-{'w' if not record else 'r'}{index}",
                "X-Hub-Signature-256": prepared.signature,
                "Content-Type": "application/json",
                "User-Agent": "GitHub-Hookshot/bench",
            }
            started = time.perf_counter()
            try:
                async with session.post(target, data=prepared.body, headers=headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                if record:
                    result.errors[type(error).__name__] += 1
                return
            took = time.perf_counter() - started
            if record:
                result.statuses[status] += 1
                if 200 <= status < 300:
                    result.latencies.append(took)

        await _drive(post, result, concurrency=concurrency, warmup=warmup, max_requests=max_requests, max_seconds=max_seconds)
    return result


async def generate_get_load(
    base_url: str,
    paths: Sequence[str],
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    warmup: int = 0,
) -> LoadResult:
    """GETs `paths` (in turn) below `base_url`, with the same bounds and loopback check;
    latencies are kept for 200 answers."""
    if not paths:
        raise ValueError("no paths to get")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be 1 to {MAX_CONCURRENCY}")
    max_requests = min(max_requests, MAX_REQUESTS)
    max_seconds = min(max_seconds, MAX_SECONDS)
    target, host_header = loopback_target(base_url)
    target = target.rstrip("/")
    result = LoadResult(concurrency=concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency, ttl_dns_cache=None)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def get(index: int, *, record: bool) -> None:
            started = time.perf_counter()
            try:
                async with session.get(target + paths[index % len(paths)], headers={"Host": host_header}) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                if record:
                    result.errors[type(error).__name__] += 1
                return
            if record:
                result.statuses[status] += 1
                if status == 200:
                    result.latencies.append(time.perf_counter() - started)

        await _drive(get, result, concurrency=concurrency, warmup=warmup, max_requests=max_requests, max_seconds=max_seconds)
    return result


async def _drive(
    send, result: LoadResult, *, concurrency: int, warmup: int, max_requests: int, max_seconds: float
) -> None:
    """Warm-up requests (not recorded), then at most `max_requests` within `max_seconds`,
    `concurrency` at a time: the bounds every load here keeps."""
    warm = iter(range(max(0, warmup)))

    async def warmer() -> None:
        for index in warm:
            await send(index, record=False)

    await asyncio.gather(*(warmer() for _ in range(concurrency)))
    next_index = iter(range(max_requests))
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        for index in next_index:
            if time.perf_counter() >= deadline:
                return
            result.sent += 1
            await send(index, record=True)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="the intake route, e.g. http://127.0.0.1:3000/api/github/webhooks")
    parser.add_argument("--secret", required=True, help="the App's WEBHOOK_SECRET")
    parser.add_argument("--count", type=int, default=2000, help=f"deliveries to send (at most {MAX_REQUESTS})")
    parser.add_argument("--seconds", type=float, default=30.0, help=f"stop after this long (at most {MAX_SECONDS:.0f})")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args(argv)
    try:
        loopback_target(args.url)
    except TargetRefused as refusal:
        print(f"refused: {refusal}", file=sys.stderr)
        return 2
    result = asyncio.run(
        generate_load(
            args.url,
            comment_bodies(args.secret),
            concurrency=args.concurrency,
            max_requests=args.count,
            max_seconds=args.seconds,
            warmup=args.warmup,
        )
    )
    print(json.dumps(result.summary(), indent=2))
    if result.latencies:
        print(f"mean {statistics.fmean(result.latencies) * 1000:.2f} ms", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
