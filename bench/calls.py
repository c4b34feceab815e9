"""GitHub API calls per counted vote: every call the fake GitHub receives, token and
permission look-ups included, divided by the votes counted.

One at a time: each vote is sent once the App is idle again. In a burst: 50 votes
within one second on one proposal, then until the App is idle. Each is run twice: by
people voting for the first time, then by the same people changing their vote. The
App reads the repository's collaborators (who may vote, and with which role) as a
proposal opens and at most once a minute; those calls are counted with the opening,
which is reported on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.common import ObservedGitHub, app_key, machine
from bench.report import Section, aim, load_average, stamp, table
from bench.world import GovernanceWorld

AIM_SINGLE = 2.0
AIM_BURST = 0.5


def _voters(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{index:03d}" for index in range(count)]


def _changed_votes(before: dict, after: dict) -> int:
    """Votes counted between two tallies: new voters' approvals, and approvals turned into rejections."""
    return max(after["approvals"] - before["approvals"], 0) + max(after["rejections"] - before["rejections"], 0)


# `/api/health` asks GitHub whether it accepts the App (`GET /app`, at most every 30 s);
# the benchmark reads the backlog there to see when the App is idle. Those calls are the
# benchmark looking, not votes: they are counted apart.
HEALTH_CHECK = "apps/get-authenticated"
health_checks = 0


async def _counted(world: GovernanceWorld, action) -> Counter:
    """The calls GitHub received while `action` ran and until the App was idle again."""
    global health_checks
    start = len(world.github.calls)
    await action()
    await world.idle(settle=1.0)
    calls = Counter(call.operation_id or f"{call.method} {call.path}" for call in world.github.calls[start:])
    health_checks += calls.pop(HEALTH_CHECK, 0)
    return calls


async def run(args: argparse.Namespace) -> Section:
    load = load_average()
    print("API calls per vote", flush=True)
    single_voters = _voters("solo", args.single_votes)
    burst_voters = _voters("crowd", args.burst)
    private_key, public_key = app_key()
    github = ObservedGitHub(app_public_key_pem=public_key)
    await github.start()
    results: list[tuple[str, int, Counter]] = []
    with tempfile.TemporaryDirectory(prefix="pinkflow-bench-calls-") as folder:
        world = await GovernanceWorld.start(
            Path(folder), github, private_key=private_key,
            database_url=f"sqlite+aiosqlite:///{Path(folder) / 'pinkflow.db'}",
            people={login: "write" for login in single_voters + burst_voters},
        )
        try:
            openings: list[Counter] = []
            openings.append(await _counted(world, lambda: world.open_proposal(1)))

            async def one_at_a_time(body: str) -> tuple[int, Counter]:
                before = await world.tally(1)
                total: Counter = Counter()
                for voter in single_voters:
                    vote = world.comment(1, voter, body)
                    total += await _counted(world, lambda: world.send(vote))
                return _changed_votes(before, await world.tally(1)), total

            results.append(("one at a time, first votes", *await one_at_a_time("/approve")))
            results.append(("one at a time, changed votes", *await one_at_a_time("/reject not yet")))

            openings.append(await _counted(world, lambda: world.open_proposal(2)))

            async def burst(body: str) -> tuple[int, Counter]:
                before = await world.tally(2)
                votes = [world.comment(2, voter, body) for voter in burst_voters]
                started = time.monotonic()
                sent_at: list[float] = []

                async def send_at(offset: float, vote) -> None:
                    await asyncio.sleep(offset)
                    sent_at.append(time.monotonic() - started)
                    await world.send(vote)

                async def send_all() -> None:
                    # Each vote leaves at its own moment, evenly over just under one second.
                    await asyncio.gather(*(send_at(i * 0.95 / len(votes), vote) for i, vote in enumerate(votes)))

                calls = await _counted(world, send_all)
                if max(sent_at) > 1.0:
                    raise AssertionError(f"the burst was sent over {max(sent_at):.2f} s, not within one second")
                return _changed_votes(before, await world.tally(2)), calls

            results.append(("burst, first votes", *await burst("/approve")))
            results.append(("burst, changed votes", *await burst("/reject not yet")))
        finally:
            await world.close()
            await github.close()
    for label, votes, calls in results:
        print(f"  {label:<22} {votes} votes, {sum(calls.values())} calls: {sum(calls.values()) / votes:.2f} per vote",
              flush=True)
    for number, calls in enumerate(openings, start=1):
        print(f"  opening proposal {number}     {sum(calls.values())} calls: {dict(calls)}", flush=True)
    return Section("calls", _markdown(results, openings, args.command, load, len(single_voters), len(burst_voters)))


def _markdown(
    results: list[tuple[str, int, Counter]], openings: list[Counter], command: str, load: str, len_single: int, len_burst: int
) -> str:
    operations = sorted({op for _, _, calls in results for op in calls})
    rows = [
        [label, votes, sum(calls.values()), f"{sum(calls.values()) / votes:.2f}"] + [calls.get(op, 0) for op in operations]
        for label, votes, calls in results
    ]
    def per_vote(label: str) -> float:
        votes, calls = next((votes, calls) for name, votes, calls in results if name == label)
        return sum(calls.values()) / votes

    verdicts = []
    for label, aim_figure in (
        ("one at a time, first votes", AIM_SINGLE),
        ("one at a time, changed votes", AIM_SINGLE),
        ("burst, first votes", AIM_BURST),
        ("burst, changed votes", AIM_BURST),
    ):
        figure = per_vote(label)
        verdicts.append(f"- {label.capitalize()}: {figure:.2f} calls per vote "
                        f"(aim {aim_figure:g} or fewer: {aim(figure <= aim_figure)}).")
    return "\n\n".join([
        "## GitHub API calls per counted vote",
        stamp(command, machine(), load),
        "Every request the fake GitHub received (installation tokens, permission look-ups, reactions, "
        "check-run and comment edits) from sending the votes until the App was idle again, over the votes "
        "counted (read from the App's tally). Every voter has write permission; each vote is a new "
        f"comment. *One at a time*: {len_single} votes, the next sent once the App is idle. *Burst*: "
        f"{len_burst} votes arriving evenly within one second on one proposal. *First votes* are by people "
        "voting for the first time; *changed votes* by the same people again. The App reads the repository's "
        "collaborators (`repos/list-collaborators`, one call for up to 100 people) as a proposal opens and at "
        "most once a minute, so a first vote within that minute needs no permission look-up; that read is "
        "counted with the opening, below the table. The benchmark reads the App's backlog from `/api/health`, "
        f"which asks GitHub whether it accepts the App (`{HEALTH_CHECK}`, at most every 30 s, whatever the "
        f"votes): {health_checks} such {'call' if health_checks == 1 else 'calls'} over the whole run, not counted as the votes'.",
        table(["run", "votes counted", "calls", "calls per vote"] + [f"`{op}`" for op in operations], rows),
        "\n".join(verdicts),
        "Opening each proposal (the preview's success, until the App was idle): "
        + "; ".join(
            f"proposal {number}: {sum(calls.values())} calls ("
            + ", ".join(f"`{op}` {count}" for op, count in sorted(calls.items())) + ")"
            for number, calls in enumerate(openings, start=1)
        )
        + ".",
    ])
