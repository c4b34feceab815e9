"""The worker: claims stored deliveries and dispatches them, delivers effects, closes deadlines."""

from __future__ import annotations

import asyncio
import collections
import json
import time
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import aiohttp
from gidgethub import routing, sansio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from . import metrics
from .effects import EffectRunner
from .failure_logs import FailureLog, one_line, same_error
from .github.client import GitHubApp
from .handlers.context import HandlerContext
from .logs import log_context
from .retries import plan_retry
from .services import DeliveryRef, GovernanceService, utcnow
from .storage import inbox, leases, outbox
from .storage.database import single_writer, write_transaction
from .storage.models import Delivery, Effect

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 0.5
# GitHub sends these to every App; they are handled without acting as the installation,
# which may be gone (deleted) or unable to get a token (suspended).
INSTALLATION_EVENTS = frozenset({"installation", "installation_repositories"})
SWEEP_EVERY_SECONDS = 5.0
# While a loop's error repeats (the database is down), its traceback is logged once, then
# one line this often, and the loop tries again less often, up to MOST_BACKOFF_SECONDS apart.
REPEATED_ERROR_EVERY_SECONDS = 60.0
MOST_BACKOFF_SECONDS = 5.0


class LoopErrors:
    """How the worker's loops report their errors: an outage of an hour reads as a few
    lines, not ten tracebacks a second, and the end of it is said too."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # (loop, error) -> (when it was last logged, how often it came again since)
        self._logged: dict[tuple[str, str], tuple[float, int]] = {}

    def failed(self, loop: str, error: BaseException) -> None:
        # One rule says when two failures are the same error (failure_logs.same_error): the
        # first line only, as SQLAlchemy's next lines name the statement's parameters (a
        # time among them), which differ on every try.
        key = (loop, same_error(error))
        now = self._clock()
        logged = self._logged.get(key)
        if logged is None:
            log.error("%s error", loop, exc_info=error)
            self._logged[key] = (now, 0)
        elif now - logged[0] >= REPEATED_ERROR_EVERY_SECONDS:
            first_line = next(iter(str(error).splitlines()), "")
            shown = f"{type(error).__name__}: {first_line}"[:300]
            log.error("%s error, still", loop, extra={"error": shown, "times_since_last_logged": logged[1] + 1})
            self._logged[key] = (now, 0)
        else:
            self._logged[key] = (logged[0], logged[1] + 1)

    def worked(self, loop: str) -> None:
        failing = [key for key in self._logged if key[0] == loop]
        if failing:
            for key in failing:
                del self._logged[key]
            log.info("%s working again", loop)


def backoff_seconds(failures: int, usual: float) -> float:
    """The wait before a loop tries again after `failures` errors in a row."""
    return usual if failures <= 1 else min(usual * 2 ** (failures - 1), MOST_BACKOFF_SECONDS)


class Worker:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        service: GovernanceService,
        github: GitHubApp,
        router: routing.Router,
        concurrency: int = 4,
        lease: timedelta = timedelta(seconds=60),
        clock: Callable[[], datetime] = utcnow,
        http: aiohttp.ClientSession | None = None,
    ) -> None:
        self._sessions = sessions
        self._single_writer = single_writer(sessions)
        self._service = service
        self._github = github
        self._router = router
        self._concurrency = concurrency
        self._clock = clock
        # How long a claim holds before another worker may take the work over (after a crash).
        self._lease = lease
        # Deliveries and effects share it: the same error, whichever failed, has its traceback once a window.
        self._failures = FailureLog()
        self._effects = EffectRunner(
            sessions=sessions, github=github, service=service, clock=clock, lease=lease, http=http,
            failures=self._failures,
        )
        # Intake in the same process wakes one idle delivery loop per stored delivery, so
        # new work starts at once without every loop racing to claim it; other processes'
        # work is found by polling. A wake-up with no loop idle is kept for the next one.
        self._idle_loops: collections.deque[asyncio.Future[None]] = collections.deque()
        self._missed_wakeups = 0
        self._effects_ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._errors = LoopErrors()
        self.running = False

    def notify(self) -> None:
        while self._idle_loops:
            waiter = self._idle_loops.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        # Bounded: a loop that finishes work claims again anyway; these cover a loop that
        # found nothing just before the delivery was committed.
        self._missed_wakeups = min(self._missed_wakeups + 1, self._concurrency)

    async def run(self) -> None:
        """Runs until `stop()`; deliveries, effects and the sweeper each loop on their own."""
        self.running = True
        try:
            await asyncio.gather(
                *(self._delivery_loop() for _ in range(self._concurrency)),
                self._effect_loop(),
                self._sweep_loop(),
            )
        finally:
            self.running = False

    def stop(self) -> None:
        self._stopping.set()
        for waiter in self._idle_loops:
            if not waiter.done():
                waiter.set_result(None)
        self._effects_ready.set()

    @staticmethod
    async def _idle(ready: asyncio.Event, seconds: float) -> None:
        try:
            await asyncio.wait_for(ready.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass
        ready.clear()

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass

    async def _delivery_loop(self) -> None:
        woken = False
        failures = 0
        while not self._stopping.is_set():
            try:
                # Woken for a stored delivery: claim at once. Otherwise (a poll, or more after
                # a handled one) SQLite looks first, so finding nothing takes no write lock.
                worked = await self.process_next_delivery(look_first=not woken)
            except Exception as error:
                self._errors.failed("delivery loop", error)
                failures += 1
                woken = False
                await self._pause(backoff_seconds(failures, IDLE_POLL_SECONDS))
                continue
            if failures:
                failures = 0
                self._errors.worked("delivery loop")
            if worked:
                self._effects_ready.set()
                woken = False
            else:
                woken = await self._wait_for_delivery()

    async def _wait_for_delivery(self) -> bool:
        """Waits for a wake-up or the polling interval; True when woken."""
        if self._missed_wakeups:
            self._missed_wakeups -= 1
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._idle_loops.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout=IDLE_POLL_SECONDS)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            if waiter in self._idle_loops:
                self._idle_loops.remove(waiter)

    async def _effect_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                taken = await self._effects.run_due()
            except Exception as error:
                self._errors.failed("effect loop", error)
                failures += 1
                await self._pause(backoff_seconds(failures, IDLE_POLL_SECONDS))
                continue
            if failures:
                failures = 0
                self._errors.worked("effect loop")
            if not taken:
                await self._idle(self._effects_ready, IDLE_POLL_SECONDS)

    async def _sweep_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                closed = await self._service.close_due_proposals()
                if closed:
                    self._effects_ready.set()
            except Exception as error:
                self._errors.failed("sweeper", error)
                failures += 1
            else:
                if failures:
                    failures = 0
                    self._errors.worked("sweeper")
            await self._pause(SWEEP_EVERY_SECONDS)

    async def drain(self, *, max_rounds: int = 10_000) -> None:
        """Handles deliveries and due effects until none is left (demo and tests)."""
        for _ in range(max_rounds):
            worked = await self.process_next_delivery()
            taken = await self._effects.run_due(coalesce=False)
            if not worked and not taken:
                return

    async def process_next_delivery(self, *, look_first: bool = True) -> bool:
        """Claims one delivery and handles it; False when none is ready."""
        if look_first and self._single_writer:
            # SQLite: look before taking the write lock, which the effects and intake want too.
            async with self._sessions() as session:
                if not await inbox.any_claimable(session, now=self._clock()):
                    return False
        async with write_transaction(self._sessions) as session:
            delivery = await inbox.claim_next_delivery(session, now=self._clock(), lease=self._lease)
        if delivery is None:
            return False
        await self._handle(delivery)
        return True

    async def _handle(self, delivery: Delivery) -> None:
        started = time.perf_counter()
        taken: list[Effect] = []
        outcome = await self._dispatch(delivery, taken)
        metrics.count_delivery(delivery.event, outcome)
        metrics.PROCESSING_SECONDS.labels(event=delivery.event[:40]).observe(time.perf_counter() - started)
        if outcome == "handled":
            # Committed: the edits nothing else was doing start now, with no claim to wait for.
            await self._effects.perform(taken)

    async def _dispatch(self, delivery: Delivery, taken: list[Effect]) -> str:
        """Runs the handlers; says how it went: handled, skipped, taken_over, retried or failed.
        Edits the handlers' commits claimed for this worker are added to `taken`."""
        ref = DeliveryRef(seq=delivery.seq, delivery_id=delivery.delivery_id, attempt=delivery.attempts)
        with log_context(delivery_id=delivery.delivery_id, event=delivery.event, action=delivery.action,
                         installation_id=delivery.installation_id):
            try:
                # Renewed while the handlers run: a slow delivery is not taken over and done twice.
                async with leases.kept(self._sessions, delivery, lease=self._lease, clock=self._clock):
                    return await self._run_handlers(delivery, ref, taken)
            except inbox.ClaimLost:
                log.warning("delivery was taken over by another worker; this attempt is dropped")
                return "taken_over"
            except Exception as error:
                plan = plan_retry(
                    error, attempt=delivery.attempts - delivery.rate_limit_waits, rate_limit_waits=delivery.rate_limit_waits
                )
                self._failures.log(log, logging.WARNING, "delivery failed", error, attempt=delivery.attempts, error=one_line(plan.reason))
                async with write_transaction(self._sessions) as session:
                    held = await inbox.fail_delivery(
                        session, seq=delivery.seq, attempt=delivery.attempts, now=self._clock(), error=plan.reason,
                        retry_in=plan.delay, give_up=not plan.retry, rate_limited=plan.rate_limited,
                    )
                if not held:
                    log.warning("delivery was taken over by another worker; this attempt's failure is dropped")
                    return "taken_over"
                return "retried" if plan.retry else "failed"

    async def _run_handlers(self, delivery: Delivery, ref: DeliveryRef, taken: list[Effect]) -> str:
        """Runs the handlers, the delivery marked done with their commit: handled or skipped."""
        data = json.loads(delivery.body)
        event = sansio.Event(data, event=delivery.event, delivery_id=delivery.delivery_id)
        repository = data.get("repository")
        with log_context(
            repository=repository.get("full_name") if isinstance(repository, dict) else None,
            pull_request=inbox.pull_number_of(delivery.event, data),
        ):
            if delivery.event not in INSTALLATION_EVENTS and await self._service.installation_inactive(
                delivery.installation_id
            ):
                # Acknowledged at intake; not acted on while suspended, never once deleted.
                await self._service.finish_delivery(ref)
                log.info("delivery skipped: the installation is suspended or deleted")
                return "skipped"
            await self._service.note_repository_visibility(repository)
            gh = None
            if (
                delivery.installation_id is not None
                and delivery.event not in INSTALLATION_EVENTS
                and self._router.fetch(event)
            ):
                gh = await self._github.installation_client(delivery.installation_id)
            context = HandlerContext(
                delivery=ref, service=self._service, github=self._github, installation_id=delivery.installation_id
            )
            with outbox.take_here(self._lease) as claimed_here:
                await self._router.dispatch(event, gh, context)
                if not ref.finished:
                    await self._service.finish_delivery(ref)
            taken.extend(claimed_here)
            rate_limit = getattr(gh, "rate_limit", None)
            log.info(
                "delivery handled",
                extra={
                    "attempt": delivery.attempts,
                    "rate_limit_remaining": rate_limit.remaining if rate_limit else None,
                },
            )
            return "handled"
