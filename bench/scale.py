"""Scale: a PostgreSQL database holding many proposals and votes, and what the App does with it.

Proposals, their pull requests, votes, audit trail, promotions, delivered effects and
handled deliveries are bulk-loaded with COPY (asyncpg), then measured: the status API
and the dashboard pages (p50 and p99, one at a time and 16 at once), a pass of the
sweeper (`GovernanceService.close_due_proposals`) over proposals whose voting period
has ended, `app.py migrate` on an empty database, and the App's resident memory idle
and under load. `--scale-proposals` and `--scale-votes` set the size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg

from bench.common import (
    PYTHON,
    REPO_ROOT,
    DurablePostgres,
    ObservedGitHub,
    app_env,
    app_key,
    machine,
    rss_kib,
    start_app,
)
from bench.loadgen import LoadResult, generate_get_load
from bench.report import Section, load_average, stamp, table

PREVIEW_IDS = 50_000_000
PROMOTION_IDS = 80_000_000
COMMENT_IDS = 900_000_000
VOTERS = 2_000
# Share of proposals in each state; the rest of the voting ones are due for the sweeper.
DECIDED = (("promoted", 0.35), ("rejected", 0.15), ("expired", 0.15), ("superseded", 0.15), ("passed", 0.08),
           ("cancelled", 0.05))
OPEN_SHARE = 0.05
WEIGHTS = {"admin": 3, "maintain": 2, "write": 1}
SWEEP_SECONDS = 300.0


class Dataset:
    """Deterministic rows for every table, generated as they are copied."""

    def __init__(self, *, proposals: int, votes: int, seed: int = 20261123) -> None:
        self.proposals = proposals
        self.votes = votes
        self.now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
        self.repos = [f"org{r % 40:02d}/service-{r:04d}" for r in range(max(10, proposals // 100))]
        rng = random.Random(seed)
        self.due = max(100, proposals // 50)
        states = []
        for name, share in DECIDED:
            states += [name] * int(proposals * share)
        states += ["voting"] * max(0, proposals - len(states) - self.due)
        rng.shuffle(states)
        # The due ones last: their ids are the newest, as a backlog after downtime would be.
        self.states = ["?"] + states[: proposals - self.due] + ["due"] * self.due
        self.opened = [self.now]
        for proposal_id in range(1, proposals + 1):
            state = self.states[proposal_id]
            if state == "voting":
                self.opened.append(self.now - timedelta(seconds=rng.uniform(60, 20 * 3600)))
            elif state == "due":
                self.opened.append(self.now - timedelta(seconds=rng.uniform(25 * 3600, 48 * 3600)))
            else:
                self.opened.append(self.now - timedelta(days=2, seconds=rng.uniform(0, 360 * 86400)))
        self.seed = seed
        from pinkflow_bot.services import default_rules
        from pinkflow_bot.settings import Settings

        self.rules = json.dumps(default_rules(Settings()).as_dict())

    def repo(self, proposal_id: int) -> str:
        return self.repos[proposal_id % len(self.repos)]

    def private(self, proposal_id: int) -> bool:
        return (proposal_id % len(self.repos)) % 10 == 0

    def pr_number(self, proposal_id: int) -> int:
        return proposal_id // len(self.repos) + 1

    def sha(self, proposal_id: int) -> str:
        return f"{proposal_id * 2654435761 % 2**160:040x}"

    def decided_state(self, proposal_id: int) -> str:
        state = self.states[proposal_id]
        return "voting" if state == "due" else state

    def public_ids(self, count: int) -> list[int]:
        rng = random.Random(self.seed + 1)
        ids = []
        while len(ids) < count:
            candidate = rng.randint(1, self.proposals)
            if not self.private(candidate):
                ids.append(candidate)
        return ids

    # -- rows, by column name ---------------------------------------------------------

    def proposal_rows(self) -> Iterator[dict]:
        for i in range(1, self.proposals + 1):
            opened = self.opened[i]
            state = self.decided_state(i)
            closes = opened + timedelta(hours=24)
            yield dict(
                id=i, installation_id=1 + i % 50, repo_full_name=self.repo(i), repo_private=self.private(i),
                pr_number=self.pr_number(i), pr_author="author-" + str(i % 300), head_sha=self.sha(i),
                preview_deployment_id=PREVIEW_IDS + i, preview_url=f"https://pr-{i}.preview.example.dev",
                environment="Preview", state=state,
                superseded_by=self.sha(i + 1) if state == "superseded" else None, rules=self.rules,
                # Every proposal but the voting ones is past its period, so decided; passed ones
                # closed passed. The voting ones are looked at again when their period ends.
                opened_at=opened, closes_at=closes, decided_at=None if state == "voting" else closes,
                revisit_at=closes if state == "voting" else None,
                check_run_id=10_000_000 + i, check_run_completed=state not in ("voting", "passed"), notes="[]",
            )

    def pull_request_rows(self) -> Iterator[dict]:
        for i in range(1, self.proposals + 1):
            yield dict(
                id=i, installation_id=1 + i % 50, repo_full_name=self.repo(i), number=self.pr_number(i),
                head_sha=self.sha(i), author="author-" + str(i % 300),
                state="open" if self.decided_state(i) in ("voting", "passed") else "closed",
                status_comment_id=20_000_000 + i, updated_at=self.opened[i],
            )

    def _votes_of(self, proposal_id: int) -> int:
        base, extra = divmod(self.votes, self.proposals)
        return base + (1 if proposal_id <= extra else 0)

    def ballot_rows(self) -> Iterator[dict]:
        rng = random.Random(self.seed + 2)
        ballot_id = 0
        for i in range(1, self.proposals + 1):
            for offset, voter in enumerate(rng.sample(range(VOTERS), min(self._votes_of(i), VOTERS))):
                ballot_id += 1
                roll = rng.random()
                choice = "approve" if roll < 0.65 else "reject" if roll < 0.87 else "abstain"
                permission = ("admin", "maintain", "write", "write", "write")[voter % 5]
                yield dict(
                    id=ballot_id, proposal_id=i, voter=f"dev{voter:04d}", choice=choice,
                    weight=WEIGHTS[permission], permission=permission,
                    reason="" if roll % 0.1 > 0.03 else "checked the preview on mobile and desktop",
                    comment_id=COMMENT_IDS + ballot_id, cast_at=self.opened[i] + timedelta(minutes=offset + 1),
                )

    def audit_rows(self) -> Iterator[dict]:
        audit_id = 0
        for ballot in self.ballot_rows():
            if ballot["comment_id"] == COMMENT_IDS + ballot["id"] and ballot["cast_at"] == self.opened[
                ballot["proposal_id"]
            ] + timedelta(minutes=1):
                audit_id += 1
                yield dict(id=audit_id, proposal_id=ballot["proposal_id"], actor="pinkflow", action="opened",
                           detail=f"preview https://pr-{ballot['proposal_id']}.preview.example.dev",
                           at=self.opened[ballot["proposal_id"]])
            audit_id += 1
            yield dict(id=audit_id, proposal_id=ballot["proposal_id"], actor=ballot["voter"], action="vote",
                       detail=f"{ballot['choice']} (weight {ballot['weight']})", at=ballot["cast_at"])

    def promotion_rows(self) -> Iterator[dict]:
        for i in range(1, self.proposals + 1):
            if self.states[i] == "promoted":
                at = self.opened[i] + timedelta(hours=24, minutes=5)
                yield dict(
                    id=i, proposal_id=i, provider="github", requested_by=f"dev{i % VOTERS:04d}", forced=False,
                    state="created", deployment_id=PROMOTION_IDS + i, requested_at=at, completed_at=at,
                )

    def effect_rows(self) -> Iterator[dict]:
        for i in range(1, self.proposals + 1):
            for offset, kind in enumerate(("sync_check_run", "sync_comment")):
                at = self.opened[i] + timedelta(seconds=1)
                yield dict(
                    id=2 * i - 1 + offset, proposal_id=i, installation_id=1 + i % 50, kind=kind, payload="{}",
                    status="done", attempts=1, not_before=at, created_at=at, done_at=at,
                )

    def delivery_rows(self) -> Iterator[dict]:
        for seq in range(1, self.proposals + self.votes + 1):
            i = 1 + seq % self.proposals
            yield dict(
                seq=seq, delivery_id=f"bench-{seq:012d}", event="issue_comment", action="created",
                installation_id=1 + i % 50, serial_key=f"{self.repo(i)}#{self.pr_number(i)}",
                # GitHub's bodies are 5 to 30 kB; tiny ones keep the load to minutes and the disk small.
                body="{}", status="done", attempts=1, received_at=self.opened[i], processed_at=self.opened[i],
            )


# Table, rows, primary key column.
LOAD_ORDER = (
    ("proposals", Dataset.proposal_rows, "id"),
    ("pull_requests", Dataset.pull_request_rows, "id"),
    ("ballots", Dataset.ballot_rows, "id"),
    ("audit_events", Dataset.audit_rows, "id"),
    ("promotions", Dataset.promotion_rows, "id"),
    ("effects", Dataset.effect_rows, "id"),
    ("deliveries", Dataset.delivery_rows, "seq"),
)


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _copy(connection: asyncpg.Connection, table: str, rows: Iterator[dict], key: str) -> int:
    columns = await connection.fetch(
        "SELECT column_name, is_nullable, column_default FROM information_schema.columns WHERE table_name = $1",
        table,
    )
    first = next(rows, None)
    if first is None:
        return 0
    names = [name for name in first if any(column["column_name"] == name for column in columns)]
    required = {
        column["column_name"] for column in columns if column["is_nullable"] == "NO" and column["column_default"] is None
    }
    missing = required - set(names)
    if missing:
        raise RuntimeError(f"{table} has required columns the benchmark does not fill: {sorted(missing)}")

    count = 0

    def records() -> Iterator[tuple]:
        nonlocal count
        for row in _chain(first, rows):
            count += 1
            yield tuple(row[name] for name in names)

    await connection.copy_records_to_table(table, records=records(), columns=names)
    await connection.execute(
        "SELECT setval(pg_get_serial_sequence($1, $2), (SELECT max(" + key + ") FROM " + table + "))", table, key
    )
    return count


def _chain(first: dict, rest: Iterator[dict]) -> Iterator[dict]:
    yield first
    yield from rest


async def _load(url: str, dataset: Dataset) -> list[list[object]]:
    connection = await asyncpg.connect(_asyncpg_dsn(url))
    rows = []
    try:
        for table_name, generate, key in LOAD_ORDER:
            started = time.perf_counter()
            count = await _copy(connection, table_name, generate(dataset), key)
            took = time.perf_counter() - started
            print(f"  loaded {count:>9,} {table_name} in {took:5.1f} s", flush=True)
            rows.append([table_name, f"{count:,}", f"{took:.1f}"])
        started = time.perf_counter()
        await connection.execute("ANALYZE")
        rows.append(["ANALYZE", "", f"{time.perf_counter() - started:.1f}"])
        size = await connection.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
        rows.append(["database size", size, ""])
    finally:
        await connection.close()
    return rows


async def _sweep(url: str, dataset: Dataset) -> dict[str, float]:
    """Passes of the sweeper until every due proposal is closed, then passes with nothing due."""
    from pinkflow_bot.services import GovernanceService
    from pinkflow_bot.settings import Settings
    from pinkflow_bot.storage.database import create_engine, session_factory

    engine = create_engine(url)
    service = GovernanceService(sessions=session_factory(engine), settings=Settings.from_mapping({"DATABASE_URL": url}))
    passes, closed = [], 0
    deadline = time.monotonic() + SWEEP_SECONDS
    try:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            count = await service.close_due_proposals()
            if not count:
                break
            passes.append(time.perf_counter() - started)
            closed += count
        idle = []
        for _ in range(20):
            started = time.perf_counter()
            await service.close_due_proposals()
            idle.append(time.perf_counter() - started)
    finally:
        await engine.dispose()
    # What the sweep enqueued would go to GitHub: the benchmark's installations are not there.
    connection = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        await connection.execute("UPDATE effects SET status = 'done', done_at = now() WHERE status <> 'done'")
    finally:
        await connection.close()
    total = sum(passes)
    print(f"  sweeper: {closed} closed in {len(passes)} passes, {total:.1f} s; idle pass p50 "
          f"{statistics.median(idle) * 1000:.1f} ms", flush=True)
    return {
        "due": dataset.due, "closed": closed, "passes": len(passes), "total_s": total,
        "pass_p50_ms": statistics.median(passes) * 1000 if passes else 0.0,
        "pass_max_ms": max(passes) * 1000 if passes else 0.0,
        "idle_p50_ms": statistics.median(idle) * 1000, "idle_max_ms": max(idle) * 1000,
    }


def _migrate_once(url: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [PYTHON, str(REPO_ROOT / "app.py"), "migrate"], check=True, capture_output=True,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": url, "LOG_LEVEL": "warning"}, cwd=tempfile.gettempdir(),
    )
    return time.perf_counter() - started


async def _startup_only() -> float:
    """How long `python app.py --help` takes: the interpreter and imports, without migrating."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        PYTHON, str(REPO_ROOT / "app.py"), "--help", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    await process.wait()
    return time.perf_counter() - started


async def run(args: argparse.Namespace) -> Section:
    load = load_average()
    proposals, votes = args.scale_proposals, args.scale_votes
    print(f"scale: {proposals:,} proposals, {votes:,} votes", flush=True)
    dataset = Dataset(proposals=proposals, votes=votes)
    private_key, public_key = app_key()
    postgres = DurablePostgres().start()
    github = ObservedGitHub(app_public_key_pem=public_key)
    await github.start()
    routes: list[tuple[str, LoadResult]] = []
    memory: dict[str, int] = {}
    try:
        migrations = []
        for _ in range(3):
            empty = await postgres.create_database()
            migrations.append(await asyncio.to_thread(_migrate_once, empty))
        startup = await _startup_only()
        print(f"  app.py migrate on an empty database: {statistics.median(migrations):.2f} s "
              f"(interpreter and imports alone {startup:.2f} s)", flush=True)
        url = await postgres.create_database()
        await asyncio.to_thread(_migrate_once, url)
        started = time.perf_counter()
        loaded = await _load(url, dataset)
        load_seconds = time.perf_counter() - started
        sweep = await _sweep(url, dataset)

        with tempfile.TemporaryDirectory(prefix="pinkflow-bench-scale-") as folder:
            app = await start_app(Path(folder), app_env(database_url=url, github_url=github.url, private_key=private_key))
            try:
                await asyncio.sleep(5)
                memory["idle"] = rss_kib(app.process.pid)
                ids = dataset.public_ids(500)
                paths = {
                    "GET /api/deployments/status": [f"/api/deployments/status?deploymentId={PREVIEW_IDS + i}" for i in ids],
                    "GET / (dashboard)": ["/"],
                    "GET /proposals/{id}": [f"/proposals/{i}" for i in ids],
                    "GET /api/proposals/{id}": [f"/api/proposals/{i}" for i in ids],
                }
                peak = memory["idle"]

                async def sample_memory(stop: asyncio.Event) -> None:
                    nonlocal peak
                    while not stop.is_set():
                        peak = max(peak, rss_kib(app.process.pid))
                        await asyncio.sleep(0.1)

                for label, route_paths in paths.items():
                    for concurrency in (1, 16):
                        stop = asyncio.Event()
                        sampler = asyncio.create_task(sample_memory(stop))
                        result = await generate_get_load(
                            app.url, route_paths, concurrency=concurrency, max_requests=args.scale_requests,
                            max_seconds=30, warmup=20,
                        )
                        stop.set()
                        await sampler
                        routes.append((label, result))
                        print(f"  {label:<30} c={concurrency:<3} {result.rate:7.0f}/s p50 "
                              f"{result.percentile(0.5) * 1000:7.1f} ms p99 {result.percentile(0.99) * 1000:7.1f} ms "
                              f"statuses {dict(result.statuses)}", flush=True)
                memory["peak under load"] = peak
                memory["after load"] = rss_kib(app.process.pid)
            finally:
                await app.stop()
        version = postgres.version()
    finally:
        await github.close()
        postgres.stop()
    print(f"  memory: {memory}", flush=True)
    return Section("scale", _markdown(args, dataset, load, version, loaded, load_seconds, sweep, migrations,
                                      startup, routes, memory))


def _markdown(args, dataset, load, version, loaded, load_seconds, sweep, migrations, startup, routes, memory) -> str:
    route_rows = [
        [label, result.concurrency, f"{result.accepted:,}", f"{result.rate:,.0f}",
         f"{result.percentile(0.5) * 1000:.1f}", f"{result.percentile(0.99) * 1000:.1f}"]
        for label, result in routes
    ]
    other_rows = [
        ["sweeper pass closing 100 due proposals (p50 / max)", f"{sweep['pass_p50_ms']:.0f} / {sweep['pass_max_ms']:.0f} ms"],
        [f"sweeper, all {sweep['closed']:,} due proposals ({sweep['passes']} passes)", f"{sweep['total_s']:.1f} s"],
        ["sweeper pass with nothing due (p50 / max)", f"{sweep['idle_p50_ms']:.1f} / {sweep['idle_max_ms']:.1f} ms"],
        ["`app.py migrate` on an empty database (median of 3)", f"{statistics.median(migrations):.2f} s"],
        ["of which interpreter and imports (`app.py --help`)", f"{startup:.2f} s"],
        ["resident memory (VmRSS), idle", f"{memory['idle'] / 1024:.0f} MiB"],
        ["resident memory, peak under the load above", f"{memory['peak under load'] / 1024:.0f} MiB"],
        ["resident memory, after the load", f"{memory['after load'] / 1024:.0f} MiB"],
    ]
    return "\n\n".join([
        "## Scale",
        stamp(args.command, f"{machine()}, {version}", load),
        f"Figures for **{dataset.proposals:,} proposals and {dataset.votes:,} votes** in a durable PostgreSQL, "
        f"over {len(dataset.repos):,} repositories (a tenth private), {VOTERS:,} voters, one pull request, two "
        "delivered effects and an audit entry per proposal and per vote, and one handled delivery per "
        "proposal and per vote (with a tiny body: GitHub's are 5 to 30 kB, which would only add disk). "
        f"{dataset.due:,} proposals are past their voting period, as after downtime. Loaded with COPY "
        f"through asyncpg in {load_seconds:.0f} s:",
        table(["table", "rows", "seconds"], loaded),
        "Routes of the running `python app.py` (web and worker), for random public proposals, 20 warm-up "
        f"requests, then up to {args.scale_requests:,} requests or 30 s:",
        table(["route", "concurrency", "answered 200", "per second", "p50 ms", "p99 ms"], route_rows),
        table(["what", "figure"], other_rows),
    ])
