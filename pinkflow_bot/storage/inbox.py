"""The inbox: deliveries stored at intake and claimed by the worker, oldest first."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from .models import Delivery

MAX_ATTEMPTS = 5


def serial_key_for(event: str, payload: dict[str, Any]) -> str:
    """Deliveries about one pull request are handled one at a time, in order of arrival."""
    full_name = _field(payload, "repository", "full_name")
    scope = str(full_name or f"installation:{_field(payload, 'installation', 'id')}").lower()[:200]
    number = pull_number_of(event, payload)
    if number is not None:
        return f"{scope}#{number}"[:300]
    sha = _sha(event, payload)
    return f"{scope}@{sha}"[:300] if sha else scope


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


async def store_delivery(
    session: AsyncSession,
    *,
    delivery_id: str,
    event: str,
    action: str | None,
    installation_id: int | None,
    serial_key: str,
    body: str,
    received_at: datetime,
) -> bool:
    """Stores a delivery once; False when this id was stored before (a redelivery)."""
    values = dict(
        delivery_id=delivery_id,
        event=event,
        action=action,
        installation_id=installation_id,
        serial_key=serial_key,
        body=body,
        status="pending",
        attempts=0,
        received_at=received_at,
    )
    dialect = session.bind.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Delivery).values(**values).on_conflict_do_nothing(index_elements=["delivery_id"])
    result = await session.execute(statement)
    return result.rowcount == 1


async def claim_next_delivery(session: AsyncSession, *, now: datetime, lease: timedelta) -> Delivery | None:
    """The oldest pending delivery whose pull request has nothing older pending or in hand."""
    other = aliased(Delivery)
    blocked = exists().where(
        and_(
            other.serial_key == Delivery.serial_key,
            other.seq != Delivery.seq,
            ((other.status == "processing") & (other.lease_until > now))
            | ((other.status == "pending") & (other.seq < Delivery.seq)),
        )
    )
    # A lapsed lease means the worker that held it died: the delivery is pending again.
    ready = (Delivery.status == "pending") | ((Delivery.status == "processing") & (Delivery.lease_until <= now))
    # SKIP LOCKED (PostgreSQL; SQLite has one writer anyway): replicas claiming at the same
    # moment pass over each other's candidates instead of queueing behind them.
    candidates = (
        await session.execute(
            select(Delivery.seq).where(ready, ~blocked).order_by(Delivery.seq).limit(8).with_for_update(skip_locked=True)
        )
    ).scalars().all()
    for seq in candidates:
        claimed = await session.execute(
            update(Delivery)
            .where(Delivery.seq == seq, ready)
            .values(status="processing", lease_until=now + lease, attempts=Delivery.attempts + 1)
        )
        if claimed.rowcount == 1:
            return await session.get(Delivery, seq, populate_existing=True)
    return None


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
    session: AsyncSession, *, seq: int, now: datetime, error: str, retry_in: timedelta, give_up: bool = False
) -> None:
    """A failed attempt is retried later; after MAX_ATTEMPTS (or a failure that will not
    heal) the delivery is parked as failed, with its error, for an operator to see."""
    delivery = await session.get(Delivery, seq)
    if delivery is None:
        return
    delivery.error = error[:2000]
    if give_up or delivery.attempts >= MAX_ATTEMPTS:
        delivery.status = "failed"
        delivery.lease_until = None
        delivery.processed_at = now
    else:
        delivery.status = "processing"
        # Keeping the lease until the retry time holds back later deliveries of the same pull request.
        delivery.lease_until = now + retry_in


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
