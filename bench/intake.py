"""Intake: accepted deliveries per second and acknowledgement latency.

The App runs as the real `python app.py web` (no worker, so the figure is intake
alone) on SQLite and on PostgreSQL, beside `bench/bare_server.py`, which only checks
the HMAC: this machine's ceiling for an aiohttp server answering a signed delivery.
The App's fake GitHub is started and must not be called.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
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
    machine_busy_seconds,
    start_app,
)
from bench.loadgen import comment_bodies, generate_load, percentile
from bench.report import Section, aim, load_average, stamp, table

CONCURRENCIES = (1, 16, 64)
CEILING = "bare aiohttp + HMAC"
AIM_SHARE = 0.60
AIM_P99_MS = 10.0


@dataclass
class Measurement:
    """One target at one concurrency, over every round: the windows' rates, all latencies."""

    target: str
    concurrency: int
    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    cpu_shares: list[float] = field(default_factory=list)  # of one core, the server process
    generator_shares: list[float] = field(default_factory=list)  # of one core, this process (the load generator)
    machine_costs: list[float] = field(default_factory=list)  # machine CPU seconds per accepted delivery
    accepted: int = 0

    @property
    def rate(self) -> float:
        return statistics.median(self.rates) if self.rates else 0.0

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 0.50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 0.99) * 1000

    @property
    def server_cpu(self) -> float:
        return statistics.median(self.cpu_shares) if self.cpu_shares else 0.0

    @property
    def machine_us(self) -> float:
        return statistics.median(self.machine_costs) * 1e6 if self.machine_costs else 0.0

    @property
    def generator_cpu(self) -> float:
        return statistics.median(self.generator_shares) if self.generator_shares else 0.0


async def _window(measurement: Measurement, url: str, pid: int, *, seconds: float, max_requests: int) -> None:
    bodies = comment_bodies(WEBHOOK_SECRET)
    # Warm up connections, caches and the database file before the clock starts.
    await generate_load(url, bodies, concurrency=measurement.concurrency, max_requests=0, max_seconds=5, warmup=200)
    cpu_before, generator_before, wall_before = cpu_seconds(pid), time.process_time(), time.perf_counter()
    machine_before = machine_busy_seconds()
    result = await generate_load(
        url, bodies, concurrency=measurement.concurrency, max_requests=max_requests, max_seconds=seconds
    )
    wall = time.perf_counter() - wall_before
    cpu_share = (cpu_seconds(pid) - cpu_before) / wall
    generator_share = (time.process_time() - generator_before) / wall
    machine_cost = (machine_busy_seconds() - machine_before) / max(result.accepted, 1)
    if result.errors or set(result.statuses) - {202}:
        raise AssertionError(f"{measurement.target}: unexpected answers {dict(result.statuses)} {dict(result.errors)}")
    measurement.rates.append(result.rate)
    measurement.latencies += result.latencies
    measurement.cpu_shares.append(cpu_share)
    measurement.generator_shares.append(generator_share)
    measurement.machine_costs.append(machine_cost)
    measurement.accepted += result.accepted
    print(
        f"  {measurement.target:<36} c={measurement.concurrency:<3} {result.rate:7.0f}/s  "
        f"p50 {result.percentile(0.5) * 1000:7.2f} ms  p99 {result.percentile(0.99) * 1000:8.2f} ms  "
        f"server CPU {cpu_share:4.0%}  generator CPU {generator_share:4.0%}  machine {machine_cost * 1e6:4.0f} µs/delivery",
        flush=True,
    )


async def run(args: argparse.Namespace) -> Section:
    seconds, max_requests, rounds = args.intake_seconds, args.intake_requests, args.intake_rounds
    load = load_average()
    private_key, public_key = app_key()
    postgres = DurablePostgres().start()
    github = ObservedGitHub(app_public_key_pem=public_key)
    await github.start()
    servers: list = []
    try:
        print("intake", flush=True)
        with tempfile.TemporaryDirectory(prefix="pinkflow-bench-intake-") as folder:
            # Every server runs from the start, idle until its turn: the rounds then take their
            # turns in the same moments, so a burst of other work on the machine hits all alike.
            targets: dict[str, tuple[str, int]] = {}
            bare = ServerProcess("bare_server.py")
            await bare.start()
            servers.append(bare)
            targets[CEILING] = (f"{bare.url}/api/github/webhooks", bare.process.pid)
            for name in ("SQLite", "PostgreSQL"):
                url = (f"sqlite+aiosqlite:///{Path(folder) / 'pinkflow.db'}" if name == "SQLite"
                       else await postgres.create_database())
                app = await start_app(Path(folder) / name.lower(), app_env(
                    database_url=url, github_url=github.url, private_key=private_key), "web")
                servers.append(app)
                targets[f"App, {name}"] = (f"{app.url}/api/github/webhooks", app.process.pid)
            measurements = {
                (target, concurrency): Measurement(target, concurrency)
                for target in targets for concurrency in CONCURRENCIES
            }
            for round_number in range(1, rounds + 1):
                print(f" round {round_number} of {rounds}", flush=True)
                for concurrency in CONCURRENCIES:
                    for target, (url, pid) in targets.items():
                        await _window(measurements[target, concurrency], url, pid, seconds=seconds,
                                      max_requests=max_requests)
            for server in servers:
                await server.stop()
            servers.clear()
        postgres_version = postgres.version()
    finally:
        for server in servers:
            await server.stop()
        await github.close()
        postgres.stop()
    # Waiting for the App to be ready reads /api/health, which asks GitHub whether it accepts
    # the App (GET /app); intake itself must not call GitHub at all.
    called = [call for call in github.calls if call.operation_id != "apps/get-authenticated"]
    if called:
        raise AssertionError(f"intake called GitHub {len(called)} times")
    ordered = sorted(measurements.values(), key=lambda m: (list(targets).index(m.target), m.concurrency))
    return Section("intake", _markdown(ordered, args, f"{machine()}, {postgres_version}", load))


def _markdown(measurements: list[Measurement], args: argparse.Namespace, where: str, load: str) -> str:
    command = args.command
    ceiling = {m.concurrency: m.rate for m in measurements if m.target == CEILING}
    rows = []
    for m in measurements:
        share = m.rate / ceiling[m.concurrency] if ceiling.get(m.concurrency) else 0.0
        rows.append([
            m.target, m.concurrency, f"{m.rate:,.0f}", f"{m.p50_ms:.2f}", f"{m.p99_ms:.2f}",
            "ceiling" if m.target == CEILING else f"{share:.0%}", f"{m.server_cpu:.0%}", f"{m.generator_cpu:.0%}",
            f"{m.machine_us:,.0f}", f"{m.accepted:,}",
        ])
    aims = []
    for m in measurements:
        if not m.target.startswith("App") or m.concurrency != 16:
            continue
        share = m.rate / ceiling[16]
        wanted = AIM_SHARE * ceiling[16]
        aims.append(
            f"- {m.target}, concurrency 16: {share:.0%} of the ceiling (aim 60% or more: {aim(share >= AIM_SHARE)}), "
            f"p99 {m.p99_ms:.2f} ms (aim 10 ms or less: {aim(m.p99_ms <= AIM_P99_MS)}). "
            # What the aim asks of the machine at the cost per delivery measured here.
            f"At {wanted:,.0f}/s (60% of the ceiling) and {m.machine_us:,.0f} µs of machine CPU per delivery, "
            f"the generator and the App together would need {wanted * m.machine_us / 1e6:.1f} cores; "
            f"the machine has {os.cpu_count()}."
        )
    return "\n\n".join([
        "## Intake",
        stamp(command, where, load),
        "Signed `issue_comment` deliveries (GitHub's example, 10 kB compact JSON, a delivery id each) "
        "from `bench/loadgen.py` over loopback to the real `python app.py web` (no worker). SQLite runs "
        "as shipped (WAL, `synchronous=FULL`); PostgreSQL runs durable (`fsync`, `synchronous_commit` "
        "and `full_page_writes` on). The ceiling is `bench/bare_server.py`: aiohttp reading the body and "
        "checking its HMAC, nothing stored, on the App's event loop (uvloop). The App commits each "
        "delivery before answering; deliveries arriving together share one statement and one commit "
        "(`DeliveryWriter` in `pinkflow_bot/storage/inbox.py`). The load generator shares the machine's "
        f"{os.cpu_count()} cores with the server (and "
        "PostgreSQL). *Server CPU* is the share of one core the server process used (all its threads), "
        "*generator CPU* the load generator's; where the generator is near 100%, the figure is the "
        "generator's limit, not the server's. *Machine CPU per delivery* is what all cores spent (generator, server, "
        f"database and kernel) per accepted delivery; the machine has {os.cpu_count()} cores' worth a second. "
        "All servers run "
        f"side by side and take turns: {args.intake_rounds} rounds, each a {args.intake_seconds:g} s window "
        "per target and concurrency after 200 warm-up deliveries; *accepted/s* is the median of the "
        "rounds' rates, the latencies are over every delivery of all rounds.",
        table(
            ["target", "concurrency", "accepted/s", "p50 ms", "p99 ms", "of ceiling", "server CPU", "generator CPU",
             "machine CPU µs per delivery", "deliveries"],
            rows,
        ),
        "\n".join(aims),
    ])
