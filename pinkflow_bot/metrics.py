"""Prometheus metrics: counters where things happen, gauges read from the database at scrape."""

from __future__ import annotations

import re
from functools import lru_cache

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from .storage import inbox, outbox
from .storage.models import Ballot, Promotion, Proposal

# The App's own registry: several Apps in one process (tests) never clash with globals.
REGISTRY = CollectorRegistry()

DELIVERIES = Counter(
    "pinkflow_deliveries_total",
    "Webhook deliveries by event and outcome (intake: accepted, duplicate, ping, refused; worker: handled, failed, skipped).",
    ["event", "outcome"],
    registry=REGISTRY,
)
PROCESSING_SECONDS = Histogram(
    "pinkflow_delivery_processing_seconds",
    "Time from claiming a delivery to its commit.",
    ["event"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
INTAKE_SECONDS = Histogram(
    "pinkflow_intake_seconds",
    "Time to verify, store and acknowledge a delivery.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
    registry=REGISTRY,
)
INTAKE_BATCH_DELIVERIES = Histogram(
    "pinkflow_intake_batch_deliveries",
    "Deliveries stored by one intake commit (concurrent deliveries share one).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
    registry=REGISTRY,
)
GITHUB_REQUESTS = Counter(
    "pinkflow_github_requests_total",
    "Calls to GitHub's REST API by route and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
RATE_LIMIT_REMAINING = Gauge(
    "pinkflow_github_rate_limit_remaining",
    "Requests left in GitHub's rate-limit window, as its last answer said.",
    ["resource"],
    registry=REGISTRY,
)
EFFECTS = Counter(
    "pinkflow_effects_total",
    "Outbox effects by kind and outcome (done, retried, failed).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
PROPOSALS = Gauge("pinkflow_proposals", "Proposals by state.", ["state"], registry=REGISTRY)
VOTES = Gauge("pinkflow_votes", "Ballots cast, by choice (retractions included).", ["choice"], registry=REGISTRY)
PROMOTIONS = Gauge("pinkflow_promotions", "Promotions by state.", ["state"], registry=REGISTRY)
BACKLOG = Gauge(
    "pinkflow_backlog",
    "Work waiting: pending and failed deliveries and effects.",
    ["kind"],
    registry=REGISTRY,
)
OLDEST_DELIVERY_AGE = Gauge(
    "pinkflow_oldest_pending_delivery_age_seconds", "Age of the oldest delivery not yet handled.", registry=REGISTRY
)
DATABASE_UP = Gauge(
    "pinkflow_database_up",
    "1 when this scrape read the stored state from the database; 0 when it could not (the gauges of stored state are then left out, or NaN).",
    registry=REGISTRY,
)


@lru_cache(maxsize=512)
def _deliveries_counter(event: str, outcome: str):
    return DELIVERIES.labels(event=event, outcome=outcome)


def count_delivery(event: str, outcome: str) -> None:
    """One delivery by event and outcome; the labelled counter is looked up once per pair."""
    _deliveries_counter(event[:40], outcome).inc()


_NUMBER = re.compile(r"^\d+$")
_SHA = re.compile(r"^[0-9a-f]{40}$")


def github_route(path: str) -> str:
    """`/repos/octo/shop/check-runs/42` → `/repos/{owner}/{repo}/check-runs/{id}`: few labels, no names."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    route = []
    for index, part in enumerate(parts):
        if index in (1, 2) and parts[0] == "repos":
            route.append("{owner}" if index == 1 else "{repo}")
        elif index == 1 and parts[0] in ("orgs", "users"):
            route.append("{org}")
        elif _NUMBER.match(part):
            route.append("{id}")
        elif _SHA.match(part):
            route.append("{sha}")
        elif index > 0 and parts[index - 1] in ("memberships", "collaborators", "teams", "contents", "app-manifests"):
            route.append("{name}")
        else:
            route.append(part)
    return "/" + "/".join(route)


async def refresh_from_database(session: AsyncSession, *, now) -> None:
    """The gauges that describe stored state, read once per scrape."""
    PROPOSALS.clear()
    for state, count in (await session.execute(select(Proposal.state, func.count()).group_by(Proposal.state))).all():
        PROPOSALS.labels(state).set(count)
    VOTES.clear()
    for choice, count in (await session.execute(select(Ballot.choice, func.count()).group_by(Ballot.choice))).all():
        VOTES.labels(choice).set(count)
    PROMOTIONS.clear()
    for state, count in (await session.execute(select(Promotion.state, func.count()).group_by(Promotion.state))).all():
        PROMOTIONS.labels(state).set(count)
    waiting, oldest, parked = await inbox.backlog(session)
    effects_waiting, effects_failed = await outbox.backlog(session)
    BACKLOG.labels("pending_deliveries").set(waiting)
    BACKLOG.labels("failed_deliveries").set(parked)
    BACKLOG.labels("pending_effects").set(effects_waiting)
    BACKLOG.labels("failed_effects").set(effects_failed)
    OLDEST_DELIVERY_AGE.set((now - oldest).total_seconds() if oldest else 0)
    DATABASE_UP.set(1)


def forget_stored_state() -> None:
    """The database did not answer: the gauges of stored state show nothing rather than
    what they last read, and the process's own counters are served as ever."""
    DATABASE_UP.set(0)
    for gauge in (PROPOSALS, VOTES, PROMOTIONS, BACKLOG):
        gauge.clear()
    OLDEST_DELIVERY_AGE.set(float("nan"))


def exposition() -> bytes:
    return generate_latest(REGISTRY)
