"""Writes benchmark sections into docs/benchmarks.md, each between its own markers, so a
section run alone replaces only its own figures and the prose around them stays."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
ORDER = ("intake", "decision", "calls", "scale")

HEADER = """# Benchmarks

Figures from `bench/`, written by the command shown in each section. Every run is
bounded in requests and in time and talks only to loopback addresses. Speed is never
asserted in the test suite: these pages are where it is measured.

"""


@dataclass(frozen=True)
class Section:
    name: str
    markdown: str


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def aim(met: bool) -> str:
    return "**met**" if met else "**not met**"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews the figures."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def code_revision() -> str:
    """The commit measured (`PINKFLOW_REVISION` for a copy without .git), marked when the code differs from it."""
    root = DOC.parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--", "app.py", "pinkflow_bot", "migrations"],
                                 cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        return commit + (" with uncommitted changes" if changed else "")
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("PINKFLOW_REVISION", "unknown")


def stamp(command: str, machine: str, load: str) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"Command: `{command}`  \nRun: {when}, code at {code_revision()}, on {machine}; "
        f"load average at the start {load}"
    )


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"


def write(sections: list[Section], path: Path = DOC) -> None:
    text = path.read_text() if path.exists() else HEADER
    for section in sections:
        start, end = _markers(section.name)
        block = f"{start}\n{section.markdown.strip()}\n{end}"
        pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
        if pattern.search(text):
            text = pattern.sub(lambda _match, block=block: block, text)
        else:
            # A new section goes before the next one in ORDER that is present, else before the analysis.
            later = [n for n in ORDER[ORDER.index(section.name) + 1 :] if _markers(n)[0] in text]
            anchor = _markers(later[0])[0] if later else "\n## What the figures say"
            if anchor in text:
                index = text.index(anchor)
                text = text[:index] + block + "\n\n" + text[index:]
            else:
                text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
