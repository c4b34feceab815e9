"""How long to wait after GitHub says no, and when to stop asking."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from http import HTTPStatus

import aiohttp
import gidgethub
import pytest

from pinkflow_bot.effects import MAX_EFFECT_ATTEMPTS
from pinkflow_bot.github.errors import GitHubRateLimited, rate_limit_wait
from pinkflow_bot.promotion import PromotionUnavailable
from pinkflow_bot.retries import PermanentFailure, backoff, failure_words, plan_retry
from pinkflow_bot.storage import inbox
from tests.flow import (  # noqa: F401  (fixtures)
    REPO,
    app_fixture,
    check_run,
    clock_fixture,
    make_app_fixture,
    open_proposal,
    status,
    status_comment,
    vote_fixture,
    world_fixture,
)

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    "status, headers, body, expected",
    [
        (429, {"Retry-After": "7"}, b"", (7.0, "retry-after")),
        (403, {"retry-after": "30"}, b"secondary", (30.0, "retry-after")),
        (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 90)}, b"", (91.0, "primary rate limit")),
        (403, {}, b'{"message": "You have exceeded a secondary rate limit."}', (60.0, "secondary rate limit")),
        (429, {}, b"", (60.0, "secondary rate limit")),
        (403, {"X-RateLimit-Remaining": "12"}, b'{"message": "Resource not accessible by integration"}', None),
        (500, {"Retry-After": "5"}, b"", None),
        (200, {}, b"", None),
    ],
)
def test_rate_limit_wait(status, headers, body, expected):
    assert rate_limit_wait(status, headers, body, now=NOW) == expected


def test_a_reset_in_the_past_waits_a_second_and_a_huge_one_is_capped():
    assert rate_limit_wait(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) - 50)}, b"", now=NOW)[0] == 1.0
    assert rate_limit_wait(429, {"retry-after": "999999"}, b"", now=NOW)[0] == 3600.0


def bad_request(status: int) -> gidgethub.BadRequest:
    return gidgethub.BadRequest(HTTPStatus(status), "refused")


@pytest.mark.parametrize(
    "error, retried",
    [
        (GitHubRateLimited(status=429, retry_after=12, reason="retry-after"), True),
        (gidgethub.GitHubBroken(HTTPStatus(502)), True),
        (aiohttp.ServerDisconnectedError(), True),
        (asyncio.TimeoutError(), True),
        (bad_request(401), True),
        (bad_request(422), False),
        (bad_request(403), False),
        (PermanentFailure("no installation"), False),
        (RuntimeError("a bug"), True),
    ],
)
def test_what_is_retried(error, retried):
    assert plan_retry(error, attempt=1).retry is retried


@pytest.mark.parametrize(
    "error, shown",
    [
        (PromotionUnavailable("the promotion webhook answered 500: down"), "the promotion webhook answered 500: down"),
        (gidgethub.GitHubBroken(HTTPStatus(502)), "GitHub answered 502 (Bad Gateway)"),
        (gidgethub.BadRequest(HTTPStatus(422), "Validation Failed"), "GitHub answered 422 (Validation Failed)"),
        (GitHubRateLimited(status=403, retry_after=60, reason="secondary rate limit"), "GitHub asked the App to slow down (secondary rate limit)"),
        (GitHubRateLimited(status=429, retry_after=12, reason="retry-after"), "GitHub asked the App to slow down"),
        (asyncio.TimeoutError(), "GitHub did not answer (no answer in time)"),
        (aiohttp.ServerDisconnectedError(), "GitHub did not answer (the connection was closed before an answer)"),
        (PermanentFailure("no installation to act for"), "no installation to act for"),
        (RuntimeError("a bug"), "an unexpected error; the App's log has the details"),
    ],
)
def test_a_failure_is_shown_in_plain_words_while_the_logs_keep_its_class(error, shown):
    plan = plan_retry(error, attempt=1)
    assert failure_words(error) == shown and plan.shown == shown
    if not isinstance(error, (PermanentFailure, gidgethub.BadRequest)):
        assert plan.reason.startswith(type(error).__name__)


def test_rate_limits_wait_as_long_as_asked():
    plan = plan_retry(GitHubRateLimited(status=403, retry_after=42, reason="primary rate limit"), attempt=1)
    assert timedelta(seconds=42) <= plan.delay <= timedelta(seconds=43)


def test_a_404_is_retried_a_few_times_then_given_up():
    assert plan_retry(bad_request(404), attempt=1).retry
    assert not plan_retry(bad_request(404), attempt=3).retry


def test_backoff_grows_with_jitter_and_a_cap():
    delays = [backoff(attempt).total_seconds() for attempt in range(1, 12) for _ in range(20)]
    assert all(0.5 <= delay <= 300 for delay in delays)
    early = [backoff(1).total_seconds() for _ in range(200)]
    late = [backoff(8).total_seconds() for _ in range(200)]
    assert max(early) <= 1.0 and sum(late) / len(late) > 20
    assert len(set(round(d, 3) for d in late)) > 50  # jitter: replicas do not retry in step


def secondary_limit() -> GitHubRateLimited:
    return GitHubRateLimited(status=403, retry_after=60, reason="secondary rate limit")


def test_secondary_limits_that_name_no_time_back_off_exponentially_to_fifteen_minutes():
    waits = [plan_retry(secondary_limit(), attempt=1, rate_limit_waits=n).delay.total_seconds() for n in range(8)]
    for wait, expected in zip(waits, [60, 120, 240, 480, 900, 900, 900, 900]):
        assert expected <= wait <= expected * 1.1


def test_a_wait_github_names_is_honoured_however_many_came_before():
    named = GitHubRateLimited(status=429, retry_after=7, reason="retry-after")
    assert 7 <= plan_retry(named, attempt=1, rate_limit_waits=6).delay.total_seconds() <= 8
    reset = GitHubRateLimited(status=403, retry_after=1800, reason="primary rate limit")
    assert 1800 <= plan_retry(reset, attempt=1, rate_limit_waits=3).delay.total_seconds() <= 1801


def test_rate_limits_are_waits_not_failed_attempts_also_behind_a_promotion_provider():
    assert plan_retry(secondary_limit(), attempt=1).rate_limited
    try:
        try:
            raise secondary_limit()
        except GitHubRateLimited as error:
            raise PromotionUnavailable("GitHub asked to slow down", retry_after=error.retry_after) from error
    except PromotionUnavailable as wrapped:
        plan = plan_retry(wrapped, attempt=1, rate_limit_waits=2)
    assert plan.rate_limited and 240 <= plan.delay.total_seconds() <= 264
    assert not plan_retry(gidgethub.GitHubBroken(HTTPStatus(502)), attempt=1).rate_limited


# --- Through the App: GitHub's secondary rate limit, again and again, then not ---------------


async def retry_until_rate_limited(app, world, clock, operation: str, times: int, *, rounds: int = 30) -> None:
    """Lets the App try again, 17 minutes at a time (past the longest wait), until GitHub
    has said "later" `times` times, and once more after that."""
    for _ in range(rounds):
        clock.advance(minutes=17)
        await app.drain()
        if rate_limited_calls(world, operation) >= times:
            clock.advance(minutes=17)
            await app.drain()
            return
    raise AssertionError(f"{operation} was not asked again {times} times")


def rate_limited_calls(world, operation: str) -> int:
    return sum(1 for call in world.calls_for(operation) if call.status == 403)


async def test_a_vote_is_counted_after_more_secondary_rate_limits_than_a_delivery_has_attempts(app, world, vote, clock):
    await open_proposal(app)
    # Someone given access after the proposal opened: their permission is looked up on its own.
    world.add_user("nia")
    world.set_permission(REPO, "nia", "admin")
    lookup = "repos/get-collaborator-permission-level"
    times = inbox.MAX_ATTEMPTS + 3
    world.fail(lookup, status=403, times=times)
    await app.deliver(vote("/approve ship it", "nia"))
    assert rate_limited_calls(world, lookup) == 1
    # A minute, then two: each secondary limit without Retry-After doubles the wait.
    clock.advance(seconds=70)
    await app.drain()
    assert rate_limited_calls(world, lookup) == 2
    clock.advance(seconds=70)
    await app.drain()
    assert rate_limited_calls(world, lookup) == 2
    clock.advance(seconds=70)
    await app.drain()
    assert rate_limited_calls(world, lookup) == 3
    await retry_until_rate_limited(app, world, clock, lookup, times)
    assert rate_limited_calls(world, lookup) == times
    votes = (await status(app))["votes"]
    assert (votes["total"], votes["approvals"]) == (1, 1)
    assert "| @nia" in status_comment(world) and "ship it" in status_comment(world)


async def test_the_check_run_shows_the_vote_after_more_secondary_rate_limits_than_an_effect_has_attempts(
    app, world, vote, clock
):
    await open_proposal(app)
    times = MAX_EFFECT_ATTEMPTS + 3
    world.fail("checks/update", status=403, times=times)
    await app.deliver(vote("/approve ship it", "ann"))
    await retry_until_rate_limited(app, world, clock, "checks/update", times)
    assert rate_limited_calls(world, "checks/update") == times
    assert "| @ann | ✅ approve | 3 | ship it |" in check_run(world)["output"]["text"]
