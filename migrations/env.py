"""Alembic environment: runs on the App's live connection, or on its own from the CLI."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from pinkflow_bot.storage.database import MIGRATION_LOCK
from pinkflow_bot.storage.models import Base

config = context.config
target_metadata = Base.metadata


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite alters tables by copying them; batch mode does that for us.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_from_url() -> None:
    from pinkflow_bot.settings import Settings
    from pinkflow_bot.storage.database import create_engine

    url = config.get_main_option("sqlalchemy.url") or Settings.load().database_url

    async def run() -> None:
        engine = create_engine(url)
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # As the App's own migrate() does: one process at a time.
                await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            await connection.run_sync(run_on)
        await engine.dispose()

    asyncio.run(run())


connection = config.attributes.get("connection")
if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif connection is not None:
    run_on(connection)
else:
    run_from_url()
