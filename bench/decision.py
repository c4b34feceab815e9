"""Decision latency: from the deciding vote's delivery to the concluded check run at GitHub.

The idle App (`python app.py`, web and worker in one process) gets a proposal with two
approvals; once nothing is waiting and the last edit is over half a second old, the
third approval (quorum 3, all approve) is sent and the clock runs until the fake
GitHub receives the check-run update with `conclusion: success`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
from pathlib import Path

from bench.common import DurablePostgres, ObservedGitHub, app_key, machine, percentile
from bench.report import Section, aim, load_average, stamp, table
from bench.world import REPO, GovernanceWorld

AIM_P99_MS = 50.0
VOTERS = {"ann": "write", "max": "write", "dan": "write"}


async def _decide(world: GovernanceWorld, number: int) -> tuple[float, float]:
    """(acknowledgement, decision) latency in seconds for one proposal."""
    sha = await world.open_proposal(number)
    for voter in ("ann", "max"):
        await world.send(world.comment(number, voter, "/approve"))
    # Idle: nothing waiting, and past the half second in which edits of a proposal are gathered.
    await world.idle(settle=0.7)
    [run] = world.github.check_runs_for(REPO, sha)
    concluded = asyncio.get_running_loop().create_future()

    def listener(call, arrived: float) -> None:
        body = call.json if isinstance(call.json, dict) else {}
        ours = call.path.endswith(f"/check-runs/{run['id']}") or body.get("head_sha") == sha
        if ours and body.get("conclusion") == "success" and not concluded.done():
            concluded.set_result(arrived)

    world.github.listeners.append(listener)
    # This process (the fake GitHub, with every call it received) collects its own garbage
    # before the clock starts, not during: its pauses are not the App's latency.
    gc.collect()
    gc.disable()
    try:
        deciding = world.comment(number, "dan", "/approve")
        started = time.perf_counter()
        await world.send(deciding)
        acknowledged = time.perf_counter()
        arrived = await asyncio.wait_for(concluded, timeout=30)
    finally:
        gc.enable()
        world.github.listeners.remove(listener)
    return acknowledged - started, arrived - started


async def _measure(label: str, folder: Path, database_url: str, *, proposals: int) -> dict:
    private_key, public_key = app_key()
    github = ObservedGitHub(app_public_key_pem=public_key)
    await github.start()
    world = await GovernanceWorld.start(folder, github, private_key=private_key, database_url=database_url, people=VOTERS)
    acks, decisions = [], []
    try:
        await _decide(world, 10_000)  # warm-up: token, permissions, first statements
        for number in range(1, proposals + 1):
            ack, decision = await _decide(world, number)
            acks.append(ack)
            decisions.append(decision)
        print(
            f"  {label:<12} {proposals} proposals: decision p50 {percentile(decisions, 0.5) * 1000:.1f} ms "
            f"p99 {percentile(decisions, 0.99) * 1000:.1f} ms (ack p50 {percentile(acks, 0.5) * 1000:.1f} ms)",
            flush=True,
        )
    finally:
        await world.close()
        await github.close()
    return {"label": label, "acks": acks, "decisions": decisions}


async def run(args: argparse.Namespace) -> Section:
    load = load_average()
    print("decision latency", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="pinkflow-bench-decision-") as folder:
        results.append(
            await _measure("SQLite", Path(folder) / "sqlite", f"sqlite+aiosqlite:///{Path(folder) / 'pinkflow.db'}",
                           proposals=args.proposals)
        )
        postgres = DurablePostgres().start()
        try:
            url = await postgres.create_database()
            results.append(await _measure("PostgreSQL", Path(folder) / "postgres", url, proposals=args.proposals))
            version = postgres.version()
        finally:
            postgres.stop()
    rows = []
    aims = []
    for result in results:
        p50, p99 = percentile(result["decisions"], 0.5) * 1000, percentile(result["decisions"], 0.99) * 1000
        rows.append([
            result["label"], len(result["decisions"]), f"{p50:.1f}", f"{p99:.1f}",
            f"{max(result['decisions']) * 1000:.1f}", f"{percentile(result['acks'], 0.5) * 1000:.1f}",
        ])
        aims.append(f"- {result['label']}: p99 {p99:.1f} ms (aim 50 ms or less: {aim(p99 <= AIM_P99_MS)}).")
    markdown = "\n\n".join([
        "## Decision latency",
        stamp(args.command, f"{machine()}, {version}", load),
        "From sending the deciding `/approve` (the third of three, quorum 3) to the moment the fake GitHub "
        "receives the check-run update with `conclusion: success`, on an idle `python app.py` (web and "
        "worker in one process). Each proposal is a pull request of its own; the two earlier votes are "
        "settled and their edits over half a second old before the deciding one is sent. The "
        "benchmark's own process (the fake GitHub) collects its garbage before each measurement, "
        "not during it.",
        table(["database", "proposals", "p50 ms", "p99 ms", "max ms", "intake ack p50 ms"], rows),
        "\n".join(aims),
    ])
    return Section("decision", markdown)
