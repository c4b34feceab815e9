"""How long to wait after GitHub says no, and when to stop asking."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from http import HTTPStatus

import aiohttp
import gidgethub
import pytest

from pinkflow_bot.github.errors import GitHubRateLimited, rate_limit_wait
from pinkflow_bot.retries import PermanentFailure, backoff, plan_retry

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
