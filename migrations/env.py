"""Alembic environment: runs on the App's live connection, or on its own from the CLI."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

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
    from pinkflow_bot.storage.database import create_engine, migration_transaction

    url = config.get_main_option("sqlalchemy.url") or Settings.load().database_url

    async def run() -> None:
        engine = create_engine(url)
        try:
            # As the App's own migrate() does: one process at a time, references checked.
            async with migration_transaction(engine) as connection:
                await connection.run_sync(run_on)
        finally:
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
