"""The inbox: deliveries stored at intake and claimed by the worker, oldest first."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import aliased

from .. import metrics
from .database import write_lock
from .models import Delivery, UTCDateTime

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# Waits for GitHub's rate limit are counted apart: with the backoff capped at 15 minutes,
# this many cover about a day of GitHub saying "later".
MAX_RATE_LIMIT_WAITS = 100


def serial_key_for(event: str, payload: dict[str, Any]) -> str:
    """Deliveries about one pull request are handled one at a time, in order of arrival."""
    full_name = _field(payload, "repository", "full_name")
    scope = str(full_name or f"installation:{_field(payload, 'installation', 'id')}")
    number = pull_number_of(event, payload)
    if number is not None:
        return pull_request_key(scope, number)
    scope = scope.lower()[:200]
    sha = _sha(event, payload)
    return f"{scope}@{sha}"[:300] if sha else scope


def pull_request_key(repo_full_name: str, number: int | str) -> str:
    """The serial key of a pull request's deliveries."""
    return f"{repo_full_name.lower()[:200]}#{number}"[:300]


async def pull_request_deliveries_waiting(
    session: AsyncSession, *, repo_full_name: str, number: int, received_before: datetime, other_than: int | None = None
) -> bool:
    """Whether a delivery about this pull request that arrived before `received_before` is
    still to be handled (waiting, in hand, or waiting for its retry); `other_than` is the
    one being handled now."""
    query = select(Delivery.seq).where(
        Delivery.serial_key == pull_request_key(repo_full_name, number),
        Delivery.status.in_(("pending", "processing")),
        Delivery.received_at < received_before,
    )
    if other_than is not None:
        query = query.where(Delivery.seq != other_than)
    return await session.scalar(query.limit(1)) is not None


def _field(payload: Any, *path: str) -> Any:
    """A nested value, or None where the payload is not shaped as expected."""
    for key in path:
        if not isinstance(payload, dict):
            return None
        payload = payload.get(key)
    return payload if isinstance(payload, (str, int)) and not isinstance(payload, bool) else None


def pull_number_of(event: str, payload: dict[str, Any]) -> int | str | None:
    if event == "pull_request":
        return _field(payload, "pull_request", "number")
    if event == "issue_comment":
        return _field(payload, "issue", "number")
    if event == "check_run":
        check_run = payload.get("check_run")
        pulls = check_run.get("pull_requests") if isinstance(check_run, dict) else None
        return _field(pulls[0], "number") if isinstance(pulls, list) and pulls else None
    return None


def _sha(event: str, payload: dict[str, Any]) -> str | int | None:
    if event in ("deployment", "deployment_status", "deployment_protection_rule"):
        return _field(payload, "deployment", "sha")
    if event == "check_run":
        return _field(payload, "check_run", "head_sha")
    return None


def delivery_row(
    *,
    delivery_id: str,
    event: str,
    action: str | None,
    installation_id: int | None,
    serial_key: str,
    body: str,
    received_at: datetime,
) -> dict[str, Any]:
    """A new delivery's row, waiting for the worker."""
    return dict(
        delivery_id=delivery_id,
        event=event,
        action=action,
        installation_id=installation_id,
        serial_key=serial_key,
        body=body,
        status="pending",
        attempts=0,
        received_at=received_at,
        lease_until=None,
        processed_at=None,
        error=None,
    )


def _insert_new(dialect: str):
    """INSERT of delivery rows that passes over ids stored before and names the ones it stored."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = Delivery.__table__
    return insert(table).on_conflict_do_nothing(index_elements=["delivery_id"]).returning(table.c.delivery_id)


async def store_delivery(session: AsyncSession, **fields: Any) -> bool:
    """Stores a delivery once; False when this id was stored before (a redelivery)."""
    result = await session.execute(_insert_new(session.bind.dialect.name), [delivery_row(**fields)])
    return result.first() is not None


# SQLite's default: the log is copied into the database file once it holds this many pages.
SQLITE_AUTOCHECKPOINT_PAGES = 1000
CHECKPOINT_SECONDS = 0.2


class DeliveryWriter:
    """Group commit for intake: deliveries arriving together share one commit.

    Each request hands its row over and waits until the row is committed (or found to
    be a redelivery). One writer stores every row waiting with one INSERT statement,
    committed on its own (one fsync), then answers them all: under load a commit's
    cost is shared by the batch, and a delivery arriving alone is committed at once.
    A 2xx still means the delivery is on disk.

    The statement goes straight to the database driver: SQLAlchemy's per-row handling
    of 10 kB bodies cost more than the database's own work, on the one path GitHub
    waits for. The rows are the ones `delivery_row` makes for the ORM.

    On SQLite, intake's commits never copy the write-ahead log into the database file
    (a checkpoint, several milliseconds): a checkpointer on a connection of its own does
    that shortly after writes, while intake goes on committing.
    """

    def __init__(self, engine: AsyncEngine, *, max_batch: int = 512) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._insert = _insert_postgresql if engine.dialect.name == "postgresql" else _insert_sqlite
        self._waiting: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._connection: AsyncConnection | None = None  # held while the writer runs
        self._driver: Any = None  # its driver connection, which the statements go to
        self._closing = False
        self._checkpoints = engine.dialect.name == "sqlite"
        self._written = asyncio.Event()  # something was committed since the last checkpoint
        self._checkpointer: asyncio.Task | None = None

    async def store(self, row: dict[str, Any]) -> bool:
        """True once the row is committed; False when its delivery id was stored before."""
        if self._closing:
            raise RuntimeError("intake is shutting down")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="pinkflow-intake-writer")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((row, future))
        self._wake.set()
        return await future

    async def close(self) -> None:
        """Commits what is waiting, then stops; later deliveries are refused."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            await asyncio.gather(self._checkpointer, return_exceptions=True)
        if self._connection is not None:
            if self._checkpoints:  # back in the pool, it checkpoints again like any other
                await self._driver.execute_fetchall(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT_PAGES}")
            await self._connection.close()
            self._connection = self._driver = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                # One turn of the loop first: requests whose bodies are already in hand
                # join this batch instead of waiting for the next commit.
                await asyncio.sleep(0)
                batch = self._waiting[: self._max_batch]
                del self._waiting[: len(batch)]
                await self._write(batch)
            if self._closing:
                return

    async def _write(self, batch: list[tuple[dict[str, Any], asyncio.Future[bool]]]) -> None:
        try:
            async with write_lock(self._engine):
                driver = await self._driver_connection()
                stored = await self._insert(driver, [row for row, _ in batch])
            metrics.INTAKE_BATCH_DELIVERIES.observe(len(batch))
            if self._checkpoints:
                self._written.set()
        except Exception as error:  # every request of the batch is answered with the failure
            await self._drop_connection()
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        answered: set[str] = set()
        for row, future in batch:
            delivery_id = row["delivery_id"]
            if not future.done():  # a request whose client went away was cancelled
                # The same id twice in one batch: the first is stored, the second is a redelivery.
                future.set_result(delivery_id in stored and delivery_id not in answered)
            answered.add(delivery_id)

    async def _driver_connection(self) -> Any:
        if self._connection is None:
            self._connection = await self._engine.connect()
            self._driver = (await self._connection.get_raw_connection()).driver_connection
            if self._checkpoints:
                await self._driver.execute_fetchall("PRAGMA wal_autocheckpoint=0")
                self._checkpointer = asyncio.create_task(self._checkpoint_after_writes(), name="pinkflow-intake-checkpoints")
        return self._driver

    async def _checkpoint_after_writes(self) -> None:
        """Copies committed deliveries from SQLite's log into the database file, at most
        every CHECKPOINT_SECONDS, without holding up the writer (a PASSIVE checkpoint
        takes no write lock), so the log stays short."""
        connection = await self._engine.connect()
        try:
            driver = (await connection.get_raw_connection()).driver_connection
            while True:
                await self._written.wait()
                self._written.clear()
                await asyncio.sleep(CHECKPOINT_SECONDS)
                try:
                    await driver.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)")
                except Exception:
                    log.warning("write-ahead log checkpoint failed; trying again after the next writes", exc_info=True)
        finally:
            await connection.close()

    async def _drop_connection(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            self._checkpointer = None
        if self._connection is not None:
            try:
                await self._connection.invalidate()
            except Exception:
                pass
            self._connection = self._driver = None


# The batch goes in as bound parameters. SQLite takes one VALUES tuple per row (the
# statement text depends only on the batch's size, so the connection's statement cache
# keeps them prepared); PostgreSQL takes one array per column (unnest), so its text is
# fixed. Rows keep the batch's order in `seq`, the order the worker follows.
_COLUMNS = "delivery_id, event, action, installation_id, serial_key, body, status, attempts, received_at"
_SQLITE_ROW = "(?, ?, ?, ?, ?, ?, 'pending', 0, ?)"
_POSTGRESQL_INSERT = """
INSERT INTO deliveries (delivery_id, event, action, installation_id, serial_key, body, status, attempts, received_at)
SELECT delivery_id, event, action, installation_id, serial_key, body, 'pending', 0, received_at
FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::bigint[], $5::varchar[], $6::text[], $7::timestamp[])
     WITH ORDINALITY AS batch(delivery_id, event, action, installation_id, serial_key, body, received_at, position)
ORDER BY position
ON CONFLICT (delivery_id) DO NOTHING RETURNING delivery_id
"""
_NEW_COLUMNS = ("delivery_id", "event", "action", "installation_id", "serial_key", "body")
_SQLITE_DATETIME = sqlite.DATETIME().bind_processor(sqlite.dialect())


@lru_cache(maxsize=64)
def _sqlite_insert(size: int) -> str:
    """The statement for `size` rows: placeholders only, never a value."""
    rows = ", ".join([_SQLITE_ROW] * size)
    return f"INSERT INTO deliveries ({_COLUMNS}) VALUES {rows} ON CONFLICT (delivery_id) DO NOTHING RETURNING delivery_id"


async def _insert_sqlite(connection: Any, rows: list[dict[str, Any]]) -> set[str]:
    # One statement outside BEGIN commits on its own (the connections run in autocommit
    # mode, see database.py), atomically for all its rows.
    parameters: list[Any] = []
    for row in rows:
        parameters.extend([row[column] for column in _NEW_COLUMNS])
        parameters.append(_SQLITE_DATETIME(_utc_naive(row["received_at"])))
    returned = await connection.execute_fetchall(_sqlite_insert(len(rows)), parameters)
    return {delivery_id for (delivery_id,) in returned}


async def _insert_postgresql(connection: Any, rows: list[dict[str, Any]]) -> set[str]:
    # One statement, so one round trip and a transaction of its own.
    columns = [[row[column] for row in rows] for column in _NEW_COLUMNS]
    returned = await connection.fetch(_POSTGRESQL_INSERT, *columns, [_utc_naive(row["received_at"]) for row in rows])
    return {record[0] for record in returned}


def _utc_naive(value: datetime) -> datetime:
    """As UTCDateTime stores it: UTC, without a zone."""
    return value.astimezone(timezone.utc).replace(tzinfo=None)


# The worker asks these on every turn. They are built once, with the time as a bound
# parameter: building the statement (an alias and a correlated subquery) cost about a
# millisecond of CPU each time, more than running it.
_NOW = bindparam("now", type_=UTCDateTime())
_NEW_LEASE_UNTIL = bindparam("new_lease_until", type_=UTCDateTime())


def _claimable():
    """Deliveries ready to claim, oldest first: pending (or with a lapsed lease), and with
    nothing older of their pull request still to handle, nor anything of it in hand.

    An older one blocks whatever its lease: one waiting for its retry, or held by a worker
    that died, is claimed again first. Seen only by its lease, it would let a claimer that
    passes over it (SKIP LOCKED, while another claims it) take a newer one alongside it.
    One in hand under a live lease blocks even an older one: on PostgreSQL a `seq` can
    commit after a higher one was claimed. Neither waits for ever: the newer one's lease
    lapses, and then only the older one is ready."""
    other = aliased(Delivery)
    blocked = exists().where(
        and_(
            other.serial_key == Delivery.serial_key,
            other.seq != Delivery.seq,
            ((other.status == "processing") & (other.lease_until > _NOW))
            | (other.status.in_(("pending", "processing")) & (other.seq < Delivery.seq)),
        )
    )
    return select(Delivery.seq).where(_ready(), ~blocked).order_by(Delivery.seq)


def _ready():
    # A lapsed lease means the worker that held it died: the delivery is pending again.
    return (Delivery.status == "pending") | ((Delivery.status == "processing") & (Delivery.lease_until <= _NOW))


_ANY_CLAIMABLE = _claimable().limit(1)
# One statement finds, claims and returns it. SKIP LOCKED (PostgreSQL; SQLite has one
# writer anyway): replicas claiming at the same moment pass over each other's candidate
# instead of queueing behind it.
_CLAIM_NEXT = (
    update(Delivery)
    .where(Delivery.seq == _claimable().limit(1).with_for_update(skip_locked=True).scalar_subquery(), _ready())
    .values(status="processing", lease_until=_NEW_LEASE_UNTIL, attempts=Delivery.attempts + 1)
    .returning(Delivery)
)


async def any_claimable(session: AsyncSession, *, now: datetime) -> bool:
    """Whether a claim would find a delivery; a read, so it takes no write lock."""
    return await session.scalar(_ANY_CLAIMABLE, {"now": now}) is not None


async def claim_next_delivery(session: AsyncSession, *, now: datetime, lease: timedelta) -> Delivery | None:
    """The oldest pending delivery whose pull request has nothing older pending or in hand.

    One that has used up its MAX_ATTEMPTS without any of them ending (each outlasted its
    lease and was taken over, or its worker died: only `fail_delivery` parks) is parked
    as failed instead of run again, and the next one is claimed: its pull request goes on."""
    while True:
        claimed = (await session.scalars(_CLAIM_NEXT, {"now": now, "new_lease_until": now + lease})).one_or_none()
        if claimed is None or claimed.attempts - claimed.rate_limit_waits <= MAX_ATTEMPTS:
            return claimed
        await _park_out_of_time(session, claimed, now=now)


async def _park_out_of_time(session: AsyncSession, delivery: Delivery, *, now: datetime) -> None:
    """Parks a delivery just claimed whose attempts had all run out: this claim is none."""
    error = f"gave up: its {MAX_ATTEMPTS} attempts ran out of time (each outlasted its lease, or its worker stopped)"
    if delivery.error:
        error += f"; the last error: {delivery.error}"
    await session.execute(
        update(Delivery)
        .where(Delivery.seq == delivery.seq, Delivery.status == "processing", Delivery.attempts == delivery.attempts)
        .values(status="failed", attempts=delivery.attempts - 1, lease_until=None, processed_at=now, error=error[:2000])
    )
    log.warning(
        "delivery parked: its attempts ran out of time",
        extra={"delivery_id": delivery.delivery_id, "event": delivery.event, "attempt": delivery.attempts - 1},
    )
    metrics.count_delivery(delivery.event, "failed")


class ClaimLost(Exception):
    """The delivery's lease lapsed and another worker took it over: this attempt must not commit."""


async def finish_delivery(session: AsyncSession, *, seq: int, attempt: int, now: datetime) -> None:
    """Marks the delivery done, in the transaction of its effects; `attempt` fences off a
    worker whose lease lapsed, so a delivery takes effect once even when two handled it."""
    result = await session.execute(
        update(Delivery)
        .where(Delivery.seq == seq, Delivery.status == "processing", Delivery.attempts == attempt)
        .values(status="done", processed_at=now, lease_until=None, error=None)
    )
    if result.rowcount != 1:
        raise ClaimLost(f"delivery {seq} attempt {attempt} was taken over")


async def fail_delivery(
    session: AsyncSession,
    *,
    seq: int,
    attempt: int,
    now: datetime,
    error: str,
    retry_in: timedelta,
    give_up: bool = False,
    rate_limited: bool = False,
) -> bool:
    """A failed attempt is retried later; after MAX_ATTEMPTS (or a failure that will not
    heal) the delivery is parked as failed, with its error, for an operator to see. An
    attempt that met GitHub's rate limit (`rate_limited`) is not counted among them:
    those have their own, much larger bound, MAX_RATE_LIMIT_WAITS.

    `attempt` fences off a worker whose lease lapsed, as in `finish_delivery`: once another
    worker has taken the delivery over (and perhaps finished it), this attempt's failure
    changes nothing. False then."""
    delivery = await session.scalar(
        select(Delivery)
        .where(Delivery.seq == seq, Delivery.status == "processing", Delivery.attempts == attempt)
        .with_for_update()
    )
    if delivery is None:
        return False
    delivery.error = error[:2000]
    if rate_limited:
        delivery.rate_limit_waits += 1
    failures = delivery.attempts - delivery.rate_limit_waits
    if give_up or failures >= MAX_ATTEMPTS or delivery.rate_limit_waits > MAX_RATE_LIMIT_WAITS:
        delivery.status = "failed"
        delivery.lease_until = None
        delivery.processed_at = now
    else:
        delivery.status = "processing"
        # Keeping the lease until the retry time holds back later deliveries of the same pull request.
        delivery.lease_until = now + retry_in
    return True


async def backlog(session: AsyncSession) -> tuple[int, datetime | None, int]:
    """Deliveries not yet handled, when the oldest of them arrived, and how many were parked."""
    waiting, oldest = (
        await session.execute(
            select(func.count(), func.min(Delivery.received_at)).where(Delivery.status.in_(("pending", "processing")))
        )
    ).one()
    failed = await session.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "failed"))
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=timezone.utc)
    return waiting, oldest, failed or 0
