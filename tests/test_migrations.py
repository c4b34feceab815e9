"""Migrations: the models and the migrated schema never drift apart; `app.py migrate` works;
a release rolls back with its data on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, Table, inspect, select, text
from sqlalchemy.exc import IntegrityError

from pinkflow_bot.storage.database import DanglingReferences, create_engine, migrate, session_factory
from pinkflow_bot.storage.models import Ballot, Base
from tests import payloads
from tests.flow import (  # noqa: F401  (fixtures)
    REPO,
    clock_fixture,
    open_proposal,
    status,
    vote_fixture,
    world_fixture,
)
from tests.harness import app_under_test
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


async def test_an_in_memory_sqlite_database_starts_at_once():
    """`DATABASE_URL=sqlite+aiosqlite://`, to try the App out: memory has no journal file to
    turn to WAL, and nothing else can hold it, so there is nothing to wait for."""
    engine = create_engine("sqlite+aiosqlite://")
    try:
        await migrate(engine)
        async with engine.connect() as connection:
            assert await connection.run_sync(lambda sync: inspect(sync).has_table("deliveries"))
    finally:
        await engine.dispose()


async def test_a_file_system_that_cannot_hold_wal_runs_in_its_journal_mode_with_a_warning(tmp_path, caplog):
    """SQLite keeps the old journal mode where WAL's shared memory cannot be had (here: a
    file opened without locks, as on some network file systems): the App runs, and says so."""
    engine = create_engine(f"sqlite+aiosqlite:///file:{tmp_path / 'nolock.db'}?nolock=1&uri=true")
    try:
        await asyncio.wait_for(migrate(engine), timeout=20)
        async with engine.connect() as connection:
            assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "delete"
            assert await connection.run_sync(lambda sync: inspect(sync).has_table("deliveries"))
    finally:
        await engine.dispose()
    assert "SQLite kept journal mode 'delete' instead of WAL" in caplog.text


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


async def test_a_process_opening_a_new_database_waits_for_another_writing_to_it(tmp_path):
    """Processes starting together on a new file: while one writes in the file's first
    journal mode, another cannot turn it to WAL yet, and waits instead of stopping with
    "database is locked"."""
    import threading

    path = tmp_path / "new.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("CREATE TABLE starting (id INTEGER)")
    threading.Timer(0.3, writer.execute, ["COMMIT"]).start()
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await migrate(engine)
        async with engine.connect() as connection:
            assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert await connection.run_sync(lambda sync: inspect(sync).has_table("deliveries"))
    finally:
        await engine.dispose()
        writer.close()


def alembic_cli(database_url: str, *args: str) -> None:
    """Alembic's own command line, as an operator runs it next to alembic.ini."""
    result = subprocess.run(
        [sys.executable, "-m", "alembic", *args], cwd=REPO_ROOT,
        env={"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr


async def stored(database_url: str) -> tuple[str | None, dict[str, tuple[list[str], list[dict]]]]:
    """The schema's revision, and the columns and every row of every table."""

    def read(connection):
        tables = {}
        for name in inspect(connection).get_table_names():
            if name != "alembic_version":
                table = Table(name, MetaData(), autoload_with=connection)
                rows = connection.execute(select(table).order_by(*table.primary_key.columns)).mappings()
                tables[name] = (list(table.columns.keys()), [dict(row) for row in rows])
        revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return revision, tables

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(read)
    finally:
        await engine.dispose()


def kept(table: tuple[list[str], list[dict]], columns: list[str]) -> list[dict]:
    """The table's rows with only these columns."""
    return [{column: row[column] for column in columns} for row in table[1]]


async def test_a_release_rolls_back_one_step_at_a_time_with_its_data_and_forward_again(
    database_url, tmp_path, world, vote, app_private_key, clock
):
    """`alembic downgrade -1` with a promoted proposal, its votes, a hold and the work done
    in the tables: each older schema keeps what it can hold, and the App migrated forward
    again shows the same proposal."""
    settings = {"github_url": world.url, "private_key": app_private_key, "clock": clock, "database_url": database_url}
    async with app_under_test(tmp_path, **settings) as app:
        await app.deliver(payloads.installation_event("created", installation_id=1, repositories=(REPO,)))
        await open_proposal(app)
        await app.deliver(vote("/approve looks right", "ann"), vote("/hold waiting for QA", "dan"), vote("/approve", "max"))
        await app.deliver(vote("/unhold", "max"), vote("/reject footer", "dan"), vote("/approve", "alice"))
        await app.deliver(vote("/promote", "ann"))
        before = await status(app)
    assert before["status"] == "promoted"

    revision, head = await stored(database_url)
    assert revision == "0004"
    for table in ("deliveries", "installations", "pull_requests", "proposals", "ballots", "promotions", "effects",
                  "audit_events", "holds", "installation_repositories"):
        assert head[table][1], f"no rows in {table}"

    for older in ("0003", "0002", "0001"):
        alembic_cli(database_url, "downgrade", "-1")
        revision, tables = await stored(database_url)
        assert revision == older
        for name, (columns, rows) in tables.items():
            assert rows == kept(head[name], columns), f"{name} at {older}"
    assert set(tables) == {"deliveries", "installations", "pull_requests", "proposals", "ballots", "promotions",
                           "effects", "audit_events"}
    at_first = tables

    engine = create_engine(database_url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    revision, tables = await stored(database_url)
    assert revision == "0004"
    for name, (columns, rows) in at_first.items():
        assert kept(tables[name], columns) == rows, name
    async with app_under_test(tmp_path, **settings) as app:
        after = await status(app)
    assert (after["status"], after["votes"]) == (before["status"], before["votes"])

    alembic_cli(database_url, "downgrade", "base")
    assert await stored(database_url) == (None, {})


async def test_after_migrating_a_vote_for_no_proposal_is_still_refused(database_url):
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        async with session_factory(engine)() as session:
            session.add(Ballot(proposal_id=999, voter="ann", choice="approve", weight=3, permission="admin",
                               reason="", cast_at=datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)))
            with pytest.raises(IntegrityError):
                await session.commit()
    finally:
        await engine.dispose()


async def test_a_migration_on_sqlite_that_leaves_votes_for_no_proposal_is_rolled_back_and_says_so(tmp_path):
    path = tmp_path / "dangling.db"
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(url)
    try:
        await migrate(engine)
        alembic_cli(url, "downgrade", "-1")
        # A vote whose proposal is gone, as a migration that lost rows would leave it.
        with sqlite3.connect(path) as database:
            database.execute(
                "INSERT INTO ballots (proposal_id, voter, choice, weight, permission, reason, cast_at)"
                " VALUES (999, 'ann', 'approve', 3, 'admin', '', '2026-11-02 09:00:00')"
            )
        database.close()
        with pytest.raises(DanglingReferences, match=r"ballots -> proposals \(1 rows\)"):
            await migrate(engine)
    finally:
        await engine.dispose()
    revision, _ = await stored(url)
    assert revision == "0003"
