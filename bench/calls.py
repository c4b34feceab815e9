"""GitHub API calls per counted vote: every call the fake GitHub receives, token and
permission look-ups included, divided by the votes counted.

One at a time: each vote is sent once the App is idle again. In a burst: 50 votes
within one second on one proposal, then until the App is idle. The burst is run twice:
by 50 people voting for the first time, then by the same people changing their vote
within the minute their permission stays cached.
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


def _counted_votes(world: GovernanceWorld, votes) -> int:
    """Votes the App counted: their comments got the +1 reaction."""
    return sum("+1" in world.github.reaction_contents(vote.payload["comment"]["id"]) for vote in votes)


async def _counted(world: GovernanceWorld, action) -> Counter:
    """The calls GitHub received while `action` ran and until the App was idle again."""
    start = len(world.github.calls)
    await action()
    await world.idle(settle=1.0)
    return Counter(call.operation_id or f"{call.method} {call.path}" for call in world.github.calls[start:])


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
            await world.open_proposal(1)
            await world.idle(settle=1.0)

            async def one_at_a_time() -> tuple[int, Counter]:
                total: Counter = Counter()
                votes = []
                for voter in single_voters:
                    votes.append(world.comment(1, voter, "/approve"))
                    total += await _counted(world, lambda: world.send(votes[-1]))
                return _counted_votes(world, votes), total

            results.append(("one at a time", *await one_at_a_time()))

            await world.open_proposal(2)
            await world.idle(settle=1.0)

            sent: list = []

            async def burst(body: str) -> None:
                votes = [world.comment(2, voter, body) for voter in burst_voters]
                sent[:] = votes
                started = time.monotonic()
                sent_at: list[float] = []

                async def send_at(offset: float, vote) -> None:
                    await asyncio.sleep(offset)
                    sent_at.append(time.monotonic() - started)
                    await world.send(vote)

                # Each vote leaves at its own moment, evenly over just under one second.
                await asyncio.gather(*(send_at(i * 0.95 / len(votes), vote) for i, vote in enumerate(votes)))
                if max(sent_at) > 1.0:
                    raise AssertionError(f"the burst was sent over {max(sent_at):.2f} s, not within one second")

            calls = await _counted(world, lambda: burst("/approve"))
            results.append(("burst, first votes", _counted_votes(world, sent), calls))
            calls = await _counted(world, lambda: burst("/reject not yet"))
            results.append(("burst, changed votes", _counted_votes(world, sent), calls))
        finally:
            await world.close()
            await github.close()
    for label, votes, calls in results:
        print(f"  {label:<22} {votes} votes, {sum(calls.values())} calls: {sum(calls.values()) / votes:.2f} per vote",
              flush=True)
    return Section("calls", _markdown(results, args.command, load))


def _markdown(results: list[tuple[str, int, Counter]], command: str, load: str) -> str:
    operations = sorted({op for _, _, calls in results for op in calls})
    rows = [
        [label, votes, sum(calls.values()), f"{sum(calls.values()) / votes:.2f}"] + [calls.get(op, 0) for op in operations]
        for label, votes, calls in results
    ]
    single = next(calls for label, _, calls in results if label == "one at a time")
    single_votes = next(votes for label, votes, _ in results if label == "one at a time")
    first_burst = next((votes, calls) for label, votes, calls in results if label == "burst, first votes")
    per_single = sum(single.values()) / single_votes
    per_burst = sum(first_burst[1].values()) / first_burst[0]
    return "\n\n".join([
        "## GitHub API calls per counted vote",
        stamp(command, machine(), load),
        "Every request the fake GitHub received (installation tokens, permission look-ups, reactions, "
        "check-run and comment edits) from sending the votes until the App was idle again, over the votes "
        "counted. Every voter has write permission; each vote is a new comment. *One at a time*: the next "
        "vote is sent once the App is idle. *Burst*: the votes arrive evenly within one second on one "
        "proposal; *first votes* by people the App has not looked up yet, *changed votes* by the same "
        "people again within the minute their permission is cached.",
        table(["run", "votes counted", "calls", "calls per vote"] + [f"`{op}`" for op in operations], rows),
        f"- One at a time: {per_single:.2f} calls per vote (aim 2.0 or fewer: {aim(per_single <= AIM_SINGLE)}).\n"
        f"- Burst of {first_burst[0]} within a second: {per_burst:.2f} calls per vote "
        f"(aim 0.5 or fewer: {aim(per_burst <= AIM_BURST)}).",
    ])
