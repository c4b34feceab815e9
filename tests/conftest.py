"""Shared pytest fixtures."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import AsyncIterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

# The suite imports its helpers as `tests.<module>`: make the repository root importable
# however pytest was started (`pytest`, `python -m pytest`, from any folder).
_REPO_ROOT = str(Path(__file__).resolve().parents[1])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.fake_github import FakeGitHub  # noqa: E402
from tests.process import kill_leftover_processes  # noqa: E402

# ---------------------------------------------------------------------------
# Fake GitHub and the App's key pair
# ---------------------------------------------------------------------------

APP_ID = 4242


@pytest.fixture(scope="session")
def _app_key() -> rsa.RSAPrivateKey:
    # One key per session: generating 2048-bit keys is slow enough to notice.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def app_private_key(_app_key: rsa.RSAPrivateKey) -> str:
    """The App's private key, PEM text, as `PRIVATE_KEY` holds it."""
    return _app_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="session")
def app_public_key(_app_key: rsa.RSAPrivateKey) -> bytes:
    """The public half, PEM bytes: what GitHub verifies the App's JWTs with."""
    return _app_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture
async def fake_github(app_public_key: bytes) -> AsyncIterator[FakeGitHub]:
    """A started fake GitHub; the test fails if any request to it was not one GitHub accepts.

    A test that sends bad requests on purpose clears `fake_github.errors` before it ends.
    """
    github = FakeGitHub(app_id=APP_ID, app_public_key_pem=app_public_key)
    await github.start()
    try:
        yield github
    finally:
        await github.close()
    assert github.errors == [], "requests GitHub would refuse:\n" + "\n".join(github.errors)


# --- end of fake GitHub fixtures ---------------------------------------------


# ---------------------------------------------------------------------------
# Databases: every test that takes `database_url` runs on SQLite and on PostgreSQL
# ---------------------------------------------------------------------------

DATABASES = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres_server():
    """One throwaway PostgreSQL for the session, started the first time a test needs it."""
    from tests.postgres import ThrowawayPostgres

    server = ThrowawayPostgres().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=DATABASES)
async def database_url(request, tmp_path) -> str:
    """An empty database of its own for the test: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'pinkflow.db'}"
    server = request.getfixturevalue("postgres_server")
    return await server.create_database()


@pytest.fixture(autouse=True)
def _no_app_process_outlives_its_test():
    yield
    kill_leftover_processes()
