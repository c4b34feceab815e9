"""Intake: accepted deliveries per second and acknowledgement latency.

The App runs as the real `python app.py web` (no worker, so the figure is intake
alone) on SQLite and on PostgreSQL, beside `bench/bare_server.py`, which only checks
the HMAC: this machine's ceiling for an aiohttp server answering a signed delivery.
The App's fake GitHub is started and must not be called.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    WEBHOOK_SECRET,
    ServerProcess,
    DurablePostgres,
    ObservedGitHub,
    app_env,
    app_key,
    cpu_seconds,
    machine,
    start_app,
)
from bench.loadgen import LoadResult, comment_bodies, generate_load
from bench.report import Section, aim, load_average, stamp, table

CONCURRENCIES = (1, 16, 64)
CEILING = "bare aiohttp + HMAC"
PROTOTYPE = "group-commit prototype"
AIM_SHARE = 0.60
AIM_P99_MS = 10.0


@dataclass
class Measurement:
    target: str
    result: LoadResult
    server_cpu: float  # share of one core the server process used during the window

    @property
    def p50_ms(self) -> float:
        return self.result.percentile(0.50) * 1000

    @property
    def p99_ms(self) -> float:
        return self.result.percentile(0.99) * 1000


async def _measure(target: str, url: str, pid: int, *, concurrency: int, seconds: float, max_requests: int) -> Measurement:
    bodies = comment_bodies(WEBHOOK_SECRET)
    # Warm up connections, caches and the database file before the clock starts.
    await generate_load(url, bodies, concurrency=concurrency, max_requests=0, max_seconds=5, warmup=200)
    cpu_before, wall_before = cpu_seconds(pid), time.perf_counter()
    result = await generate_load(url, bodies, concurrency=concurrency, max_requests=max_requests, max_seconds=seconds)
    cpu_share = (cpu_seconds(pid) - cpu_before) / (time.perf_counter() - wall_before)
    measurement = Measurement(target, result, cpu_share)
    print(
        f"  {target:<24} c={concurrency:<3} {result.rate:8.0f}/s  p50 {measurement.p50_ms:6.2f} ms  "
        f"p99 {measurement.p99_ms:6.2f} ms  server CPU {cpu_share:4.0%}  statuses {dict(result.statuses)}"
        + (f" errors {dict(result.errors)}" if result.errors else ""),
        flush=True,
    )
    return measurement


async def run(args: argparse.Namespace) -> Section:
    seconds, max_requests = args.intake_seconds, args.intake_requests
    load = load_average()
    private_key, public_key = app_key()
    measurements: list[Measurement] = []
    postgres = DurablePostgres().start()
    github = ObservedGitHub(app_public_key_pem=public_key)
    await github.start()
    try:
        print("intake", flush=True)

        async def measure_all(target: str, url: str, pid: int) -> None:
            for concurrency in CONCURRENCIES:
                measurements.append(
                    await _measure(target, url, pid, concurrency=concurrency, seconds=seconds, max_requests=max_requests)
                )

        bare = ServerProcess("bare_server.py")
        await bare.start()
        try:
            await measure_all(CEILING, f"{bare.url}/api/github/webhooks", bare.process.pid)
        finally:
            await bare.stop()
        with tempfile.TemporaryDirectory(prefix="pinkflow-bench-intake-") as folder:
            databases = {
                "SQLite": f"sqlite+aiosqlite:///{Path(folder) / 'pinkflow.db'}",
                "PostgreSQL": await postgres.create_database(),
            }
            for name, database_url in databases.items():
                env = app_env(database_url=database_url, github_url=github.url, private_key=private_key)
                app = await start_app(Path(folder) / name.lower(), env, "web")
                try:
                    await measure_all(f"App, {name}", f"{app.url}/api/github/webhooks", app.process.pid)
                finally:
                    await app.stop()
            if args.prototype:
                # The same rows into fresh databases, stored by the group-commit prototype.
                databases = {
                    "SQLite": f"sqlite+aiosqlite:///{Path(folder) / 'group-commit.db'}",
                    "PostgreSQL": await postgres.create_database(),
                }
                for name, database_url in databases.items():
                    prototype = ServerProcess("group_commit.py", DATABASE_URL=database_url)
                    await prototype.start()
                    try:
                        await measure_all(f"{PROTOTYPE}, {name}", f"{prototype.url}/api/github/webhooks",
                                          prototype.process.pid)
                    finally:
                        await prototype.stop()
        postgres_version = postgres.version()
    finally:
        await github.close()
        postgres.stop()
    if github.calls:
        raise AssertionError(f"intake called GitHub {len(github.calls)} times")
    return Section("intake", _markdown(measurements, args.command, f"{machine()}, {postgres_version}", load))


def _markdown(measurements: list[Measurement], command: str, where: str, load: str) -> str:
    ceiling = {m.result.concurrency: m.result.rate for m in measurements if m.target == CEILING}
    rows = []
    for m in measurements:
        share = m.result.rate / ceiling[m.result.concurrency] if ceiling.get(m.result.concurrency) else 0.0
        rows.append([
            m.target, m.result.concurrency, f"{m.result.rate:,.0f}", f"{m.p50_ms:.2f}", f"{m.p99_ms:.2f}",
            "ceiling" if m.target == CEILING else f"{share:.0%}", f"{m.server_cpu:.0%}",
            f"{m.result.accepted:,}",
        ])
    aims = []
    for m in measurements:
        if not m.target.startswith("App") or m.result.concurrency != 16:
            continue
        share = m.result.rate / ceiling[16]
        aims.append(
            f"- {m.target}, concurrency 16: {share:.0%} of the ceiling (aim 60% or more: {aim(share >= AIM_SHARE)}), "
            f"p99 {m.p99_ms:.2f} ms (aim 10 ms or less: {aim(m.p99_ms <= AIM_P99_MS)})."
        )
    return "\n\n".join([
        "## Intake",
        stamp(command, where, load),
        "Signed `issue_comment` deliveries (GitHub's example, 10 kB compact JSON, a delivery id each) "
        "from `bench/loadgen.py` over loopback to the real `python app.py web` (no worker). SQLite runs "
        "as shipped (WAL, `synchronous=FULL`); PostgreSQL runs durable (`fsync`, `synchronous_commit` "
        "and `full_page_writes` on). The ceiling is `bench/bare_server.py`: aiohttp reading the body and "
        "checking its HMAC, nothing stored. The load generator shares the machine's two cores with the "
        "server (and PostgreSQL). *Server CPU* is the share of one core the server process used.",
        table(
            ["target", "concurrency", "accepted/s", "p50 ms", "p99 ms", "of ceiling", "server CPU", "deliveries"],
            rows,
        ),
        "\n".join(aims),
    ])
