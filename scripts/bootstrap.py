"""Creates .venv and installs the project into it; re-runs only when pyproject.toml changed."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"


def main() -> int:
    with_tests = "--test" in sys.argv[1:]
    python = VENV / "bin" / "python"
    if not python.exists():
        print("creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    extra = "[test]" if with_tests else ""
    fingerprint = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extra.encode()).hexdigest()
    stamp = VENV / f".installed{'-test' if with_tests else ''}"
    if stamp.exists() and stamp.read_text() == fingerprint:
        return 0
    print(f"installing pinkflow-bot{extra} into .venv", flush=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", f"{ROOT}{extra}"],
        check=True,
    )
    stamp.write_text(fingerprint)
    return 0


if __name__ == "__main__":
    sys.exit(main())
