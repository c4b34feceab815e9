"""Where the tests find the project and the shared GitHub data beside it."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The GitHub data and design page the tests read: `tests/shared/`, or
    `PINKFLOW_SHARED_DIR`. The copy in the repository is the one to use: its REST
    description also holds the operations the App added since (see its README)."""
    configured = os.environ.get("PINKFLOW_SHARED_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    return REPO_ROOT / "tests" / "shared"


def github_data_dir() -> Path:
    """`shared/github/`: webhook examples, their schemas and the REST description."""
    return shared_dir() / "github"
