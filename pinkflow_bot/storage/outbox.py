"""The outbox: effects committed with the change that caused them, delivered afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Integer, and_, bindparam, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from .database import noted_in_transaction
from .models import Effect, UTCDateTime
from .proposals import lock_proposal

# Effects that make GitHub show the stored state (or, for the preview's health, read the
# state of now): any number pending collapse into one call.
CONVERGING_KINDS = frozenset({"sync_check_run", "sync_comment", "check_preview"})
# A converging effect waits this long after the last one of its proposal and kind, so a
# burst of votes becomes a few edits instead of one per vote; an idle proposal waits not at all.
CONVERGE_INTERVAL = timedelta(milliseconds=500)


# Set by a worker around the handlers it runs: an edit that may start at once is enqueued
# already claimed by that worker and handed to it after the commit, instead of waiting
# for the effect loop to find it. Unset (the sweeper, the API), effects are only enqueued.
_taken_here: ContextVar[tuple[list[Effect], timedelta] | None] = ContextVar("pinkflow_effects_taken_here", default=None)


@contextmanager
def take_here(lease: timedelta) -> Iterator[list[Effect]]:
    """Collects the edits enqueued inside the block already claimed for this worker (for
    `lease`): the caller performs them once the block's transactions have committed."""
    taken: list[Effect] = []
    token = _taken_here.set((taken, lease))
    try:
        yield taken
    finally:
        _taken_here.reset(token)


async def enqueue_effect(
    session: AsyncSession,
    *,
    kind: str,
    now: datetime,
    proposal_id: int | None = None,
    installation_id: int | None = None,
    payload: dict[str, Any] | None = None,
    converge_interval: timedelta = CONVERGE_INTERVAL,
) -> None:
    claim_here = False
    here = None
    if kind in CONVERGING_KINDS and proposal_id is not None:
        # Asked for twice in one transaction (a vote, then the decision it brings): once is enough.
        asked = noted_in_transaction(session, "converging effects asked for")
        if (proposal_id, kind) in asked:
            return
        asked.add((proposal_id, kind))
        here = _taken_here.get()
        if here is not None and session.bind.dialect.name == "postgresql":
            # Replicas decide one at a time per proposal whether an edit may start at once.
            await lock_proposal(session, proposal_id)
        # One not yet started will read the newest state anyway, so this change needs no
        # other. One already under way may have read the state before this change, so it
        # does not count. The row lock keeps the waiting one from being claimed (and
        # reading the state) until this transaction has committed.
        statuses = set(
            (
                await session.scalars(
                    select(Effect.status)
                    .where(
                        Effect.proposal_id == proposal_id,
                        Effect.kind == kind,
                        (Effect.status == "pending")
                        | ((Effect.status == "processing") & (Effect.lease_until > now))
                        | ((Effect.status == "done") & (Effect.done_at > now - converge_interval)),
                    )
                    .with_for_update()
                )
            ).all()
        )
        if "pending" in statuses:
            return
        # Nothing under way and nothing just done: the edit may start now, here.
        claim_here = here is not None and not statuses
    effect = Effect(
        kind=kind,
        proposal_id=proposal_id,
        installation_id=installation_id,
        payload=payload or {},
        status="pending",
        attempts=0,
        rate_limit_waits=0,
        not_before=now,
        created_at=now,
    )
    if claim_here:
        taken, lease = here
        effect.status, effect.attempts, effect.lease_until = "processing", 1, now + lease
        taken.append(effect)
    session.add(effect)


# The effect loop asks these on every turn. They are built once, with the times as bound
# parameters: building them (an alias, two correlated subqueries) cost more CPU than running them.
_NOW = bindparam("now", type_=UTCDateTime())
_EDITED_SINCE = bindparam("edited_since", type_=UTCDateTime())
_NEW_LEASE_UNTIL = bindparam("new_lease_until", type_=UTCDateTime())
_CHOSEN = bindparam("chosen", expanding=True)


def _due():
    """Effects ready to perform, oldest first: pending and due (or with a lapsed lease),
    nothing else of their proposal and kind under way, and an edit not just made."""
    other = aliased(Effect)
    busy = exists().where(
        and_(
            other.proposal_id == Effect.proposal_id,
            other.kind == Effect.kind,
            other.id != Effect.id,
            other.status == "processing",
            other.lease_until > _NOW,
        )
    )
    recent = exists().where(
        and_(
            other.proposal_id == Effect.proposal_id,
            other.kind == Effect.kind,
            other.status == "done",
            other.done_at > _EDITED_SINCE,
        )
    )
    held_back = Effect.kind.in_(CONVERGING_KINDS) & recent
    return select(Effect.id, Effect.proposal_id, Effect.kind).where(_ready(), ~busy, ~held_back).order_by(Effect.id)


def _ready():
    return ((Effect.status == "pending") & (Effect.not_before <= _NOW)) | (
        (Effect.status == "processing") & (Effect.lease_until <= _NOW)
    )


_ANY_DUE = _due().limit(1)
_DUE_CANDIDATES = _due().limit(bindparam("candidates", type_=Integer())).with_for_update(skip_locked=True)
# One statement claims the chosen effects and hands the rows back.
_CLAIM = (
    update(Effect)
    .where(Effect.id.in_(_CHOSEN), _ready())
    .values(status="processing", lease_until=_NEW_LEASE_UNTIL, attempts=Effect.attempts + 1)
    .returning(Effect)
)


async def any_due_effects(session: AsyncSession, *, now: datetime, converge_interval: timedelta = CONVERGE_INTERVAL) -> bool:
    """Whether a claim would find an effect; a read, so it takes no write lock."""
    return (await session.execute(_ANY_DUE, {"now": now, "edited_since": now - converge_interval})).first() is not None


async def claim_due_effects(
    session: AsyncSession,
    *,
    now: datetime,
    lease: timedelta,
    limit: int = 16,
    converge_interval: timedelta = CONVERGE_INTERVAL,
    max_attempts: int,
) -> EffectClaim:
    """Due effects, oldest first; one at a time for a proposal and kind, so nothing is created twice.

    One that has used up `max_attempts` without any of them ending (each outlasted its
    lease and was taken over, or its worker died, so none was retried or failed where it
    ends) is parked as failed instead of performed again, and handed back apart."""
    candidates = (
        await session.execute(_DUE_CANDIDATES, {"now": now, "edited_since": now - converge_interval, "candidates": limit * 4})
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
        return EffectClaim([], [])
    claimed = await session.scalars(_CLAIM, {"chosen": chosen, "now": now, "new_lease_until": now + lease})
    result = EffectClaim([], [])
    for effect in sorted(claimed.all(), key=lambda effect: effect.id):
        if effect.attempts - effect.rate_limit_waits <= max_attempts:
            result.to_perform.append(effect)
        else:
            await _park_out_of_time(session, effect, now=now, max_attempts=max_attempts)
            result.out_of_time.append(effect)
    return result


class EffectClaim(NamedTuple):
    to_perform: list[Effect]
    out_of_time: list[Effect]  # parked as failed: their attempts had all run out of time


async def _park_out_of_time(session: AsyncSession, effect: Effect, *, now: datetime, max_attempts: int) -> None:
    """Parks an effect just claimed whose attempts had all run out: this claim is none."""
    error = f"gave up: its {max_attempts} attempts ran out of time (each outlasted its lease, or its worker stopped)"
    if effect.last_error:
        error += f"; the last error: {effect.last_error}"
    await session.execute(
        update(Effect)
        .where(_still_ours(effect))
        .values(status="failed", attempts=effect.attempts - 1, done_at=now, lease_until=None, last_error=error[:2000])
    )


def _still_ours(effect: Effect):
    # A claim whose lease lapsed may have been taken over: only the newest attempt settles it.
    return (Effect.id == effect.id) & (Effect.status == "processing") & (Effect.attempts == effect.attempts)


async def complete_effect(session: AsyncSession, effect: Effect, *, now: datetime) -> None:
    await session.execute(
        update(Effect).where(_still_ours(effect)).values(status="done", done_at=now, lease_until=None, last_error=None)
    )


async def retry_effect(
    session: AsyncSession, effect: Effect, *, now: datetime, delay: timedelta, error: str, rate_limited: bool = False
) -> None:
    """Tried again after `delay`; a wait for GitHub's rate limit is counted apart from the attempts."""
    waits = Effect.rate_limit_waits + 1 if rate_limited else Effect.rate_limit_waits
    await session.execute(
        update(Effect)
        .where(_still_ours(effect))
        .values(status="pending", not_before=now + delay, lease_until=None, last_error=error[:2000], rate_limit_waits=waits)
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


async def unfinished_effect(session: AsyncSession, *, proposal_id: int, kind: str) -> Effect | None:
    """The newest effect of this kind for the proposal that is waiting or under way."""
    return await session.scalar(
        select(Effect)
        .where(Effect.proposal_id == proposal_id, Effect.kind == kind, Effect.status.in_(("pending", "processing")))
        .order_by(Effect.id.desc())
        .limit(1)
    )
