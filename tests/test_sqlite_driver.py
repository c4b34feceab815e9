"""The App's SQLite engine: each statement is one trip to the connection's thread, and
what SQLAlchemy reads back (rows, counts, errors) is as the driver gave it."""

from __future__ import annotations

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from pinkflow_bot.storage.database import create_engine

metadata = MetaData()
things = Table(
    "things",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(20), nullable=False, unique=True),
    Column("size", Integer, nullable=False),
)


@pytest.fixture
async def engine(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def trips(monkeypatch):
    """Every function handed to an aiosqlite connection's thread, counted."""
    count = [0]
    original = aiosqlite.Connection._execute

    async def counted(self, fn, *args, **kwargs):
        count[0] += 1
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return count


async def test_each_statement_is_one_trip_to_the_thread(engine, trips):
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))  # the pool's first checkout and BEGIN are not counted below
        before = trips[0]
        await connection.execute(insert(things).values(name="a", size=1))
        await connection.execute(select(things))
        await connection.execute(update(things).values(size=2))
        assert trips[0] - before == 3


async def test_rows_counts_and_ids_come_back(engine):
    async with engine.begin() as connection:
        inserted = await connection.execute(insert(things).values(name="a", size=1))
        assert inserted.inserted_primary_key == (1,)
        await connection.execute(insert(things), [{"name": "b", "size": 2}, {"name": "c", "size": 3}])
        returned = await connection.execute(insert(things).values(name="d", size=4).returning(things.c.id, things.c.name))
        assert returned.all() == [(4, "d")]
        changed = await connection.execute(update(things).where(things.c.size >= 2).values(size=9))
        assert changed.rowcount == 3
        rows = (await connection.execute(select(things.c.name, things.c.size).order_by(things.c.id))).all()
        assert rows == [("a", 1), ("b", 9), ("c", 9), ("d", 9)]
        assert (await connection.execute(select(things).where(things.c.size > 100))).all() == []


async def test_a_constraint_violation_is_sqlalchemys_integrity_error_and_the_connection_goes_on(engine):
    async with engine.connect() as connection:
        await connection.execute(insert(things).values(name="a", size=1))
        await connection.commit()
        with pytest.raises(IntegrityError):
            await connection.execute(insert(things).values(name="a", size=2))
        await connection.rollback()
        assert (await connection.execute(select(things.c.size))).scalars().all() == [1]


async def test_streamed_results_still_arrive_in_full(engine):
    async with engine.begin() as connection:
        await connection.execute(insert(things), [{"name": f"n{index}", "size": index} for index in range(250)])
    async with engine.connect() as connection:
        result = await connection.stream(select(things.c.size).order_by(things.c.id))
        sizes = [size async for (size,) in result]
    assert sizes == list(range(250))
