"""Where the tests find the project and the shared GitHub data beside it."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The `shared/` folder: `PINKFLOW_SHARED_DIR`, or the one beside the repository.

    CI clones the repository into a fresh folder with `shared/` next to it, so
    `<repo>/../shared` holds in every checkout.
    """
    configured = os.environ.get("PINKFLOW_SHARED_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    return REPO_ROOT.parent / "shared"


def github_data_dir() -> Path:
    """`shared/github/`: webhook examples, their schemas and the REST description."""
    return shared_dir() / "github"
