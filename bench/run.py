"""Runs the benchmarks and writes their figures to docs/benchmarks.md.

    .venv/bin/python bench/run.py                 # every section
    .venv/bin/python bench/run.py --only intake   # one section (or several, comma-separated)

Sections: intake, decision, calls, scale. Each is bounded in requests and time and
uses loopback addresses only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import report  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(report.ORDER), help="comma-separated sections to run")
    parser.add_argument("--intake-seconds", type=float, default=4.0, help="intake: measuring window per turn")
    parser.add_argument("--intake-rounds", type=int, default=3, help="intake: turns per target and concurrency")
    parser.add_argument("--intake-requests", type=int, default=50_000, help="intake: most deliveries per turn")
    parser.add_argument("--proposals", type=int, default=50, help="decision latency: proposals decided")
    parser.add_argument("--burst", type=int, default=50, help="API calls: votes in the burst")
    parser.add_argument("--single-votes", type=int, default=20, help="API calls: votes sent one at a time")
    parser.add_argument("--scale-proposals", type=int, default=100_000, help="scale: proposals loaded")
    parser.add_argument("--scale-votes", type=int, default=1_000_000, help="scale: votes loaded")
    parser.add_argument("--scale-requests", type=int, default=2000, help="scale: requests per route measured")
    parser.add_argument("--no-write", action="store_true", help="print the figures, leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    args.sections = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(args.sections) - set(report.ORDER)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(report.ORDER)}")
    args.command = ".venv/bin/python bench/run.py" + (" " + shlex.join(sys.argv[1:] if argv is None else argv)).rstrip()
    return args


async def main(args: argparse.Namespace) -> None:
    from bench import calls, decision, intake, scale

    modules = {"intake": intake, "decision": decision, "calls": calls, "scale": scale}
    chosen = [name for name in report.ORDER if name in args.sections]
    for index, name in enumerate(chosen):
        if index:
            await _settle()
        started = time.monotonic()
        section = await modules[name].run(args)
        print(f"\n{section.markdown}\n\n({name} took {time.monotonic() - started:.0f} s)\n", flush=True)
        if not args.no_write:
            # Written as each section finishes, so a later failure keeps the earlier figures.
            report.write([section])


async def _settle(seconds: float = 10.0) -> None:
    """Lets the machine go idle between sections: the previous one's files are flushed and
    deleted, and the kernel's work on them (writeback, freeing blocks) is not measured next."""
    os.sync()
    await asyncio.sleep(seconds)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
