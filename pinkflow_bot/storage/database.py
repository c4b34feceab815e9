"""Engine, sessions and migrations for SQLite (the default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import weakref
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import SessionTransaction
from sqlalchemy.util.concurrency import await_
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from .sqlite_driver import one_trip_dbapi

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


# Execution options of a transaction that will write: on SQLite it takes the write lock at
# BEGIN, so what it reads cannot change under it before it writes (PostgreSQL locks rows).
WRITE = {"sqlite_begin": "IMMEDIATE"}


def create_engine(url: str, **options: Any) -> AsyncEngine:
    if is_sqlite(url):
        # One writer at a time: waiting for the lock beats failing with "database is locked".
        # One trip to the connection's thread per statement (see sqlite_driver).
        engine = create_async_engine(url, connect_args={"timeout": 30}, module=one_trip_dbapi(), **options)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(url, pool_pre_ping=True, **options)


@asynccontextmanager
async def write_transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session in a transaction that writes; committed at the end of the block."""
    async with write_lock(sessions.kw["bind"]), sessions() as session, session.begin():
        await session.connection(execution_options=WRITE)
        yield session


def single_writer(sessions: async_sessionmaker[AsyncSession]) -> bool:
    """Whether the database lets one transaction write at a time (SQLite)."""
    return sessions.kw["bind"].dialect.name == "sqlite"


_noted: weakref.WeakKeyDictionary[SessionTransaction, dict[str, set[Any]]] = weakref.WeakKeyDictionary()


def noted_in_transaction(session: AsyncSession, topic: str) -> set[Any]:
    """A set that lives as long as the session's open transaction, for what it has done
    already (rows locked, effects asked for), so it is not done twice."""
    return _noted.setdefault(session.sync_session.get_transaction(), {}).setdefault(topic, set())


_write_locks: weakref.WeakKeyDictionary[Engine, tuple[asyncio.Lock, list[asyncio.Task | None]]] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def write_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    """SQLite lets one transaction write at a time. This process's writers queue for it
    here, in order, and start the moment it is free; left to SQLite's busy handler they
    would sleep and poll, up to 100 ms a time, while the lock sits idle. PostgreSQL
    locks rows, so its writers do not wait here."""
    if engine.dialect.name != "sqlite":
        yield
        return
    lock, holder = _write_locks.setdefault(engine.sync_engine, (asyncio.Lock(), [None]))
    task = asyncio.current_task()
    if holder[0] is task:  # nested in this task's own write: SQLite decides, as before
        yield
        return
    async with lock:
        holder[0] = task
        try:
            yield
        finally:
            holder[0] = None


_named_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


def _advisory_key(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


async def serialize_in_transaction(session: AsyncSession, name: str) -> None:
    """Transactions naming `name` run this point one at a time until they end: on
    PostgreSQL an advisory lock held to the end of the transaction; SQLite's write
    transactions run one at a time already."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _advisory_key(name)})


@asynccontextmanager
async def exclusive(engine: AsyncEngine, name: str) -> AsyncIterator[None]:
    """One holder of `name` at a time: in this process, and on PostgreSQL across replicas
    (a transaction-scoped advisory lock, so it ends with the holder's connection even if
    the process dies). For work that calls out (GitHub) and must not run twice at once;
    no write transaction is held meanwhile. SQLite runs one worker process, so the
    process-wide lock is all there is to take."""
    lock = _named_locks.get(name)
    if lock is None:
        lock = _named_locks[name] = asyncio.Lock()
    async with lock:
        if engine.dialect.name != "postgresql":
            yield
            return
        async with engine.connect() as connection, connection.begin():
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _advisory_key(name)})
            yield


def _sqlite_begin(connection: Any) -> None:
    # The driver's own transaction handling is off (see _sqlite_pragmas): BEGIN is ours.
    connection.exec_driver_sql(f"BEGIN {connection.get_execution_options().get('sqlite_begin', 'DEFERRED')}")


SQLITE_BUSY_TIMEOUT_MS = 30_000


def _use_wal(cursor: Any) -> None:
    """Turns the file to WAL, waiting for processes that start on a new file at the same
    time: while one of them writes in the old journal mode, SQLite answers "database is
    locked" at once instead of waiting. Where the file system cannot hold WAL's shared
    memory, SQLite keeps the old mode: the App runs on it, readers waiting for writers."""
    deadline = asyncio.get_running_loop().time() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            mode = str(cursor.fetchone()[0]).lower()
        except Exception as error:  # the driver's OperationalError, adapted
            if "locked" not in str(error) or asyncio.get_running_loop().time() > deadline:
                raise
            await_(asyncio.sleep(0.01))  # connecting runs in SQLAlchemy's greenlet: the loop goes on
            continue
        # An in-memory database has no journal file: it stays "memory", and nobody else holds it.
        if mode not in ("wal", "memory"):
            _warn_once(f"SQLite kept journal mode {mode!r} instead of WAL (the file system may not support it): readers wait for writers")
        return


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Reads then run inside the transaction too (the driver would begin only at the first write).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    # WAL lets readers (dashboard, API) run while the worker writes; FULL makes each
    # acknowledged delivery survive a power cut, not only a crash of the process.
    _use_wal(cursor)
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


# Any fixed number: the lock that keeps two processes from migrating one database at once.
MIGRATION_LOCK = 7_240_611_252_018_113


class DanglingReferences(SQLAlchemyError):
    """Migrating left rows that refer to rows that are not there; it was rolled back."""


@asynccontextmanager
async def migration_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """The connection and transaction that migrations run in, the App's (`migrate`) and
    Alembic's command line's alike. Processes migrate one after the other: SQLite's write
    lock taken at BEGIN (the others wait for it), an advisory lock on PostgreSQL.

    On SQLite foreign keys are not enforced meanwhile: batch mode rebuilds a table by
    copying it, dropping the old one and renaming the copy, and the drop fails while rows
    refer to it. The references are checked before the commit instead, and enforced again
    after."""
    sqlite = engine.dialect.name == "sqlite"
    async with engine.connect() as connection:
        if sqlite:
            await connection.run_sync(_enforce_foreign_keys, False)
        try:
            await connection.execution_options(**WRITE)
            async with connection.begin():
                if engine.dialect.name == "postgresql":
                    await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
                before = await connection.run_sync(_revisions) if sqlite else ()
                yield connection
                # Only after a change: a start with nothing to migrate reads no references.
                if sqlite and await connection.run_sync(_revisions) != before:
                    await connection.run_sync(_check_references)
        finally:
            if sqlite:
                await connection.run_sync(_enforce_foreign_keys, True)


def _enforce_foreign_keys(connection: Connection, on: bool) -> None:
    # On the driver's connection, outside any transaction: inside one SQLite ignores it.
    cursor = connection.connection.cursor()
    try:
        cursor.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    finally:
        cursor.close()


def _revisions(connection: Connection) -> tuple[str, ...]:
    return MigrationContext.configure(connection).get_current_heads()


def _check_references(connection: Connection) -> None:
    dangling = Counter(
        f"{table} -> {parent}" for table, _row, parent, _key in connection.exec_driver_sql("PRAGMA foreign_key_check")
    )
    if dangling:
        listed = ", ".join(f"{reference} ({count} rows)" for reference, count in sorted(dangling.items()))
        raise DanglingReferences(f"migration rolled back: rows refer to rows that are not there: {listed}")


async def migrate(engine: AsyncEngine) -> None:
    """Brings the schema to the newest revision through the live connection."""
    async with migration_transaction(engine) as connection:
        await connection.run_sync(_upgrade)


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
