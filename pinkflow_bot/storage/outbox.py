"""The outbox: effects committed with the change that caused them, delivered afterwards."""

from __future__ import annotations

import weakref
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import SessionTransaction, aliased

from .models import Effect

# Effects that make GitHub show the stored state (or, for the preview's health, read the
# state of now): any number pending collapse into one call.
CONVERGING_KINDS = frozenset({"sync_check_run", "sync_comment", "check_preview"})
# A converging effect waits this long after the last one of its proposal and kind, so a
# burst of votes becomes a few edits instead of one per vote; an idle proposal waits not at all.
CONVERGE_INTERVAL = timedelta(milliseconds=500)


# The converging effects each open transaction has enqueued (or found waiting) so far.
_asked_in: weakref.WeakKeyDictionary[SessionTransaction, set[tuple[int, str]]] = weakref.WeakKeyDictionary()


async def enqueue_effect(
    session: AsyncSession,
    *,
    kind: str,
    now: datetime,
    proposal_id: int | None = None,
    installation_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    if kind in CONVERGING_KINDS and proposal_id is not None:
        # Asked for twice in one transaction (a vote, then the decision it brings): once is enough.
        asked = _asked_in.setdefault(session.sync_session.get_transaction(), set())
        if (proposal_id, kind) in asked:
            return
        asked.add((proposal_id, kind))
        # One not yet started will read the newest state anyway, so this change needs no
        # other. One already under way may have read the state before this change, so it
        # does not count. The row lock keeps the waiting one from being claimed (and
        # reading the state) until this transaction has committed.
        waiting = await session.scalar(
            select(Effect.id)
            .where(Effect.proposal_id == proposal_id, Effect.kind == kind, Effect.status == "pending")
            .limit(1)
            .with_for_update()
        )
        if waiting is not None:
            return
    session.add(
        Effect(
            kind=kind,
            proposal_id=proposal_id,
            installation_id=installation_id,
            payload=payload or {},
            status="pending",
            attempts=0,
            not_before=now,
            created_at=now,
        )
    )


async def claim_due_effects(
    session: AsyncSession,
    *,
    now: datetime,
    lease: timedelta,
    limit: int = 16,
    converge_interval: timedelta = CONVERGE_INTERVAL,
) -> list[Effect]:
    """Due effects, oldest first; one at a time for a proposal and kind, so nothing is created twice."""
    other = aliased(Effect)
    busy = exists().where(
        and_(
            other.proposal_id == Effect.proposal_id,
            other.kind == Effect.kind,
            other.id != Effect.id,
            other.status == "processing",
            other.lease_until > now,
        )
    )
    recent = exists().where(
        and_(
            other.proposal_id == Effect.proposal_id,
            other.kind == Effect.kind,
            other.status == "done",
            other.done_at > now - converge_interval,
        )
    )
    ready = ((Effect.status == "pending") & (Effect.not_before <= now)) | (
        (Effect.status == "processing") & (Effect.lease_until <= now)
    )
    held_back = Effect.kind.in_(CONVERGING_KINDS) & recent
    candidates = (
        await session.execute(
            select(Effect.id, Effect.proposal_id, Effect.kind)
            .where(ready, ~busy, ~held_back)
            .order_by(Effect.id)
            .limit(limit * 4)
            .with_for_update(skip_locked=True)
        )
    ).all()
    chosen: list[int] = []
    seen: set[tuple[int, str]] = set()
    for effect_id, proposal_id, kind in candidates:
        if proposal_id is not None:
            if (proposal_id, kind) in seen:
                continue
            seen.add((proposal_id, kind))
        chosen.append(effect_id)
        if len(chosen) >= limit:
            break
    if not chosen:
        return []
    # One statement claims them all and hands the rows back.
    claimed = await session.scalars(
        update(Effect)
        .where(Effect.id.in_(chosen), ready)
        .values(status="processing", lease_until=now + lease, attempts=Effect.attempts + 1)
        .returning(Effect)
    )
    return sorted(claimed.all(), key=lambda effect: effect.id)


def _still_ours(effect: Effect):
    # A claim whose lease lapsed may have been taken over: only the newest attempt settles it.
    return (Effect.id == effect.id) & (Effect.status == "processing") & (Effect.attempts == effect.attempts)


async def complete_effect(session: AsyncSession, effect: Effect, *, now: datetime) -> None:
    await session.execute(
        update(Effect).where(_still_ours(effect)).values(status="done", done_at=now, lease_until=None, last_error=None)
    )


async def retry_effect(session: AsyncSession, effect: Effect, *, now: datetime, delay: timedelta, error: str) -> None:
    await session.execute(
        update(Effect)
        .where(_still_ours(effect))
        .values(status="pending", not_before=now + delay, lease_until=None, last_error=error[:2000])
    )


async def fail_effect(session: AsyncSession, effect: Effect, *, now: datetime, error: str) -> None:
    """A failure that will not heal: recorded, shown, not retried."""
    await session.execute(
        update(Effect)
        .where(_still_ours(effect))
        .values(status="failed", done_at=now, lease_until=None, last_error=error[:2000])
    )


async def backlog(session: AsyncSession) -> tuple[int, int]:
    """Effects still to deliver, and effects that failed for good."""
    rows = dict(
        (await session.execute(
            select(Effect.status, func.count()).where(Effect.status.in_(("pending", "processing", "failed"))).group_by(Effect.status)
        )).all()
    )
    return rows.get("pending", 0) + rows.get("processing", 0), rows.get("failed", 0)


async def has_failed(session: AsyncSession, *, proposal_id: int, kind: str) -> bool:
    """Whether an effect of this kind for this proposal was given up."""
    found = await session.scalar(
        select(Effect.id).where(Effect.proposal_id == proposal_id, Effect.kind == kind, Effect.status == "failed").limit(1)
    )
    return found is not None
