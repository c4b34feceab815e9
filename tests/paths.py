"""Where the tests find the project and the shared GitHub data beside it."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The `shared/` folder: `PINKFLOW_SHARED_DIR`, else the one beside the repository,
    else the copy of its GitHub data in `tests/shared/` (a clone on its own)."""
    configured = os.environ.get("PINKFLOW_SHARED_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    beside = REPO_ROOT.parent / "shared"
    if (beside / "github").is_dir():
        return beside
    return REPO_ROOT / "tests" / "shared"


def github_data_dir() -> Path:
    """`shared/github/`: webhook examples, their schemas and the REST description."""
    return shared_dir() / "github"
