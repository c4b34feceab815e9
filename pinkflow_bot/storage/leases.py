"""Leases on claimed work (a delivery, an effect), renewed while the work goes on.

A claim holds for a lease; once it lapses another worker takes the work over, as it must
when the first one died. Work that is merely slow (a promotion, a delivery waiting on
GitHub) keeps its claim by renewing the lease while it runs, so it is not done twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy import inspect, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .database import write_transaction
from .models import Delivery, Effect

log = logging.getLogger(__name__)

# Renewed this many times per lease: two renewals can be missed before it lapses.
RENEWALS_PER_LEASE = 3


async def renew(session: AsyncSession, claimed: Delivery | Effect, *, lease_until: datetime) -> bool:
    """Moves the claim's lease to `lease_until`; False when this attempt no longer holds the
    row (it ended, or its lease lapsed and another worker took it over)."""
    mapper = inspect(type(claimed))
    [key] = mapper.primary_key
    [value] = mapper.primary_key_from_instance(claimed)
    model = mapper.class_
    result = await session.execute(
        update(model)
        .where(key == value, model.status == "processing", model.attempts == claimed.attempts)
        .values(lease_until=lease_until)
    )
    return result.rowcount == 1


@asynccontextmanager
async def kept(
    sessions: async_sessionmaker[AsyncSession],
    claimed: Delivery | Effect,
    *,
    lease: timedelta,
    clock: Callable[[], datetime],
) -> AsyncIterator[None]:
    """Renews the claim's lease every third of it while the block runs, and stops (its last
    renewal done) before the block's caller goes on to record how the work ended."""
    stop = asyncio.Event()
    renewing = asyncio.create_task(_renew_until(stop, sessions, claimed, lease=lease, clock=clock))
    try:
        yield
    finally:
        stop.set()
        await renewing


async def _renew_until(
    stop: asyncio.Event,
    sessions: async_sessionmaker[AsyncSession],
    claimed: Delivery | Effect,
    *,
    lease: timedelta,
    clock: Callable[[], datetime],
) -> None:
    every = max(lease.total_seconds() / RENEWALS_PER_LEASE, 0.01)
    while True:
        try:
            await asyncio.wait_for(stop.wait(), timeout=every)
            return
        except asyncio.TimeoutError:
            pass
        try:
            async with write_transaction(sessions) as session:
                held = await renew(session, claimed, lease_until=clock() + lease)
        except Exception:  # the work goes on; the next renewal may get through
            log.warning("the lease could not be renewed; trying again", exc_info=True)
            continue
        if not held:
            # Its end commits fenced by the attempt: work taken over is refused there.
            log.info("the lease is no longer renewed: this attempt ended or was taken over",
                     extra={"attempt": claimed.attempts})
            return
