"""Migrations: the models and the migrated schema never drift apart; `app.py migrate` works."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from pinkflow_bot.storage.database import create_engine, migrate
from pinkflow_bot.storage.models import Base
from tests.paths import REPO_ROOT


async def test_the_migrated_schema_matches_the_models(database_url):
    engine = create_engine(database_url)
    await migrate(engine)
    await migrate(engine)  # a second run at start is a no-op

    def differences(connection):
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    async with engine.connect() as connection:
        assert await connection.run_sync(differences) == []
    await engine.dispose()


async def test_sqlite_runs_in_wal_mode(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    async with engine.connect() as connection:
        mode = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
    await engine.dispose()
    assert mode == "wal"


def test_app_py_migrate_creates_the_schema(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    result = subprocess.run(
        [sys.executable, "app.py", "migrate"], cwd=REPO_ROOT, env={"DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr

    from sqlalchemy import create_engine as create_sync_engine

    engine = create_sync_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"deliveries", "proposals", "ballots", "promotions", "effects", "audit_events", "alembic_version"} <= tables


async def test_replicas_starting_together_migrate_one_after_the_other(database_url):
    """Every process migrates as it starts: started together, none of them fails."""
    import asyncio

    engines = [create_engine(database_url) for _ in range(4)]
    try:
        await asyncio.gather(*(migrate(engine) for engine in engines))
        async with engines[0].connect() as connection:
            assert await connection.run_sync(lambda sync: inspect(sync).has_table("deliveries"))
    finally:
        for engine in engines:
            await engine.dispose()
