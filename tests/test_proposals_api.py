"""The proposals API: one proposal, the list, statistics and the rate limit."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from pinkflow_bot.links import proposal_link
from pinkflow_bot.web.clients import SlidingWindowLimiter
from tests import payloads
from tests.harness import app_under_test
from tests.proposal_world import DOCS, SCRIPT_REASON, SHOP, VAULT, World, recent_clock, seed_world

SEED_TALLY_FIELDS = {"total", "approvals", "rejections", "approvalRate", "isApproved"}


@pytest.fixture
def clock():
    return recent_clock()


@pytest.fixture
async def world(tmp_path, fake_github, app_private_key, clock):
    seed_world(fake_github)
    async with app_under_test(tmp_path, github_url=fake_github.url, private_key=app_private_key, clock=clock) as app:
        yield World(app, fake_github)


async def get_json(world: World, path: str, *, expect: int = 200, **params) -> dict:
    response = await world.app.client.get(path, params=params)
    assert response.status == expect, await response.text()
    assert response.content_type == "application/json"
    return await response.json()


def signature(world: World, proposal_id: int) -> str:
    link = proposal_link(world.app.runtime.settings, proposal_id=proposal_id, private=True)
    return parse_qs(urlsplit(link).query)["sig"][0]


async def test_a_proposal_as_json_has_the_seed_tally_votes_and_audit_trail(world):
    shop = await world.open(SHOP, 12)
    await world.say(SHOP, 12, ("/approve", "ann"), (f"/reject {SCRIPT_REASON}", "max"), ("/abstain busy", "dan"))

    proposal = (await get_json(world, f"/api/proposals/{shop}"))["proposal"]
    assert proposal["id"] == shop
    assert (proposal["repository"], proposal["pr_number"], proposal["private"]) == (SHOP, 12, False)
    assert proposal["state"] == "voting"
    assert proposal["url"] == f"http://pinkflow.test/proposals/{shop}"
    assert proposal["pr_url"] == f"https://github.com/{SHOP}/pull/12"
    assert proposal["preview_url"] == "https://preview-abc.example.dev"
    assert 0 < proposal["seconds_left"] <= 24 * 3600
    tally = proposal["tally"]
    assert SEED_TALLY_FIELDS <= tally.keys()
    assert (tally["total"], tally["approvals"], tally["rejections"], tally["abstentions"]) == (3, 1, 1, 1)
    assert (tally["approveWeight"], tally["rejectWeight"], tally["abstainWeight"]) == (3, 2, 1)
    assert tally["approvalRate"] == 60 and tally["isApproved"] is False and tally["threshold"] == 75
    assert [(v["voter"], v["choice"], v["weight"], v["reason"]) for v in proposal["votes"]] == [
        ("ann", "approve", 3, ""),
        ("max", "reject", 2, SCRIPT_REASON),  # JSON carries the text as typed
        ("dan", "abstain", 1, "busy"),
    ]
    assert proposal["rules"]["min_votes"] == 3 and proposal["rules"]["voting_period_seconds"] == 86400
    assert proposal["promotion"] is None and proposal["promotable"] is False
    assert proposal["promotion_blocker"] == "the vote has not passed"
    assert [event["actor"] for event in proposal["audit"]] == ["dan", "max", "ann", "pinkflow"]
    assert proposal["audit"][-1]["action"] == "opened"


async def test_a_proposal_as_json_has_its_previews_health_as_the_status_comment_says_it(world):
    shop = await world.open(SHOP, 12)
    proposal = await world.proposal(shop)
    await world.app.runtime.service.record_preview_health(
        proposal_id=shop, preview_url=proposal.preview_url, status=503, elapsed_ms=87, error=None
    )
    health = (await get_json(world, f"/api/proposals/{shop}"))["proposal"]["preview_health"]
    assert (health["status"], health["elapsed_ms"], health["error"], health["ok"]) == (503, 87, None, False)
    assert health["summary"] == "answers 503 in 87 ms."
    assert health["checked_at"].endswith("Z")


async def test_a_promoted_proposal_shows_its_promotion(world):
    shop = await world.open(SHOP, 12)
    await world.say(SHOP, 12, ("/approve", "ann"), ("/approve", "max"), ("/approve", "dan"), ("/promote", "ann"))
    proposal = (await get_json(world, f"/api/proposals/{shop}"))["proposal"]
    [deployment] = world.fake.deployments.values()
    assert proposal["state"] == "promoted"
    assert proposal["promotion"]["state"] == "created"
    assert proposal["promotion"]["requested_by"] == "ann"
    assert proposal["promotion"]["deployment_id"] == deployment["id"]
    assert proposal["tally"]["isApproved"] is True
    # Decided: no time left, and nothing more to promote, for the right reason.
    assert proposal["seconds_left"] == 0
    assert proposal["promotable"] is False and proposal["promotion_blocker"] == "it has been promoted already"
    [decision] = [event for event in proposal["audit"] if event["action"] == "decision: passed"]
    assert decision["detail"] == "3 votes, 100% weighted approval (weights 6 for, 0 against, 0 abstaining)"
    seed = (await get_json(world, "/api/deployments/status", deploymentId=str(shop)))["deployment"]
    assert (seed["proposal_id"], seed["status"], seed["seconds_left"]) == (shop, "promoted", 0)


async def test_every_route_writes_times_the_same_way_in_utc_with_z(world):
    shop = await world.open(SHOP, 12)
    proposal = (await get_json(world, f"/api/proposals/{shop}"))["proposal"]
    [listed] = (await get_json(world, "/api/proposals"))["proposals"]
    seed = (await get_json(world, "/api/deployments/status", deploymentId=str(shop)))["deployment"]
    # RFC 3339 as GitHub writes it: one spelling, so clients can compare the strings.
    assert seed["created_at"] == proposal["opened_at"] == listed["opened_at"]
    assert seed["closes_at"] == proposal["closes_at"] == listed["closes_at"]
    assert proposal["opened_at"].endswith("Z") and proposal["closes_at"].endswith("Z")
    assert datetime.fromisoformat(seed["closes_at"]) - datetime.fromisoformat(seed["created_at"]) == timedelta(hours=24)


async def test_private_proposals_need_their_signature_and_are_never_listed(world):
    vault = await world.open(VAULT, 7)
    shop = await world.open(SHOP, 12)
    missing = await get_json(world, "/api/proposals/424242", expect=404)
    for attempt in ({}, {"sig": signature(world, shop)}, {"sig": "f" * 64}):
        assert await get_json(world, f"/api/proposals/{vault}", expect=404, **attempt) == missing

    proposal = (await get_json(world, f"/api/proposals/{vault}", sig=signature(world, vault)))["proposal"]
    assert (proposal["repository"], proposal["private"]) == (VAULT, True)
    assert proposal["url"] == f"http://pinkflow.test/proposals/{vault}?sig={signature(world, vault)}"

    listed = await get_json(world, "/api/proposals")
    assert [p["id"] for p in listed["proposals"]] == [shop]
    assert (await get_json(world, "/api/proposals", repo=VAULT))["proposals"] == []
    assert (await get_json(world, "/api/stats"))["proposals"] == 1


async def test_a_repository_made_private_hides_the_proposals_it_had_while_public(world):
    shop = await world.open(SHOP, 12)
    docs = await world.open(DOCS, 3)
    assert (await get_json(world, f"/api/proposals/{shop}"))["proposal"]["private"] is False

    made_private = payloads.posted_comment(world.fake, "looks good", repo=SHOP, number=12, author="ann")
    made_private.payload["repository"]["private"] = True
    await world.app.deliver(made_private)

    await get_json(world, f"/api/proposals/{shop}", expect=404)
    assert (await get_json(world, f"/api/proposals/{shop}", sig=signature(world, shop)))["proposal"]["private"] is True
    assert [p["id"] for p in (await get_json(world, "/api/proposals"))["proposals"]] == [docs]
    page = await world.app.client.get(f"/proposals/{shop}")
    assert page.status == 404

    # An event sent before the change, redelivered late, does not show them again.
    await world.say(SHOP, 12, ("still fine", "max"))
    await get_json(world, f"/api/proposals/{shop}", expect=404)


async def test_the_list_is_newest_first_filters_and_pages_by_keyset(world):
    first = await world.open(SHOP, 12)
    second = await world.open(DOCS, 3)
    third = await world.open(SHOP, 13)
    await world.say(SHOP, 12, ("/approve", "ann"), ("/approve", "max"), ("/approve", "dan"))

    page = await get_json(world, "/api/proposals", limit="2")
    assert [p["id"] for p in page["proposals"]] == [third, second]
    assert page["next_before"] == second
    rest = await get_json(world, "/api/proposals", limit="2", before=str(page["next_before"]))
    assert [p["id"] for p in rest["proposals"]] == [first]
    assert rest["next_before"] is None

    shop_only = await get_json(world, "/api/proposals", repo="OCTO-ORG/Shop")
    assert [p["id"] for p in shop_only["proposals"]] == [third, first]
    passed = await get_json(world, "/api/proposals", state="passed")
    assert [(p["id"], p["tally"]["approvals"]) for p in passed["proposals"]] == [(first, 3)]
    assert SEED_TALLY_FIELDS <= passed["proposals"][0]["tally"].keys()


@pytest.mark.parametrize(
    "params, message",
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"state": "won"}, "state"),
        ({"repo": "no-slash"}, "repo"),
        ({"repo": "../../etc"}, "repo"),
        ({"before": "-3"}, "before"),
        ({"before": "99999999999999999999999"}, "before"),
    ],
)
async def test_bad_list_parameters_answer_400_with_a_json_error(world, params, message):
    body = await get_json(world, "/api/proposals", expect=400, **params)
    assert message in body["error"]


async def test_a_repository_of_a_managed_user_can_be_listed(world):
    assert (await get_json(world, "/api/proposals", repo="mona_octo/app"))["proposals"] == []


@pytest.mark.parametrize("raw", ["abc", "0", "-4", "1.5", "99999999999999999999999"])
async def test_a_proposal_id_that_cannot_exist_answers_404_json(world, raw):
    assert await get_json(world, f"/api/proposals/{raw}", expect=404) == {"error": "no such proposal"}


async def test_statistics_over_a_known_set_of_proposals(world, clock):
    # Opened together; a private repository's proposal never counts.
    promoted = await world.open(SHOP, 12)
    rejected = await world.open(DOCS, 3)
    expired = await world.open(SHOP, 13)
    passed = await world.open(DOCS, 4)
    await world.open(VAULT, 7)

    clock.advance(hours=1)
    everyone_approves = [("/approve", "ann"), ("/approve", "max"), ("/approve", "dan")]
    await world.say(SHOP, 12, *everyone_approves, ("/promote", "ann"))
    world.fake.fail("repos/create-deployment", status=422)
    await world.say(DOCS, 4, *everyone_approves, ("/promote", "ann"))
    await world.say(DOCS, 3, ("/reject", "ann"), ("/reject", "max"), ("/approve", "dan"))
    await world.say(SHOP, 13, ("/approve", "dan"))
    await world.say(VAULT, 7, *everyone_approves, ("/promote", "ann"))

    clock.advance(hours=24)
    await world.app.runtime.service.close_due_proposals()
    await world.app.drain()
    voting = await world.open(SHOP, 14)

    states = {p: (await world.proposal(p)).state for p in (promoted, rejected, expired, passed, voting)}
    assert states == {promoted: "promoted", rejected: "rejected", expired: "expired", passed: "passed", voting: "voting"}
    stats = await get_json(world, "/api/stats")
    assert stats["proposals"] == 5
    assert stats["by_state"] == {"expired": 1, "passed": 1, "promoted": 1, "rejected": 1, "voting": 1}
    assert stats["decided"] == 4
    assert stats["approval_rate"] == 50.0  # promoted and passed, of four decided
    # Distinct voters per proposal: 3, 3, 1, 3 and 0.
    assert stats["voter_participation"] == {"average_voters": 2.0, "median_voters": 3.0}
    # Decided after 1 h (the promotion) and 25 h (the deadline, twice).
    assert stats["median_time_to_decision_seconds"] == 25 * 3600
    # One deployment created, one refused by GitHub.
    assert (stats["promotions"], stats["promotion_success_rate"]) == (2, 50.0)


async def test_statistics_of_an_empty_history_are_null_rather_than_zero(world):
    stats = await get_json(world, "/api/stats")
    assert stats == {
        "proposals": 0,
        "by_state": {},
        "decided": 0,
        "approval_rate": None,
        "voter_participation": {"average_voters": None, "median_voters": None},
        "median_time_to_decision_seconds": None,
        "promotions": 0,
        "promotion_success_rate": None,
    }


async def test_too_many_requests_from_one_client_get_429_with_retry_after(tmp_path, fake_github, app_private_key):
    async with app_under_test(
        tmp_path,
        github_url=fake_github.url,
        private_key=app_private_key,
        RATE_LIMIT_MAX_REQUESTS="4",
        RATE_LIMIT_WINDOW="60s",
    ) as app:
        paths = ["/api/stats", "/api/proposals", "/api/proposals/1", "/api/deployments/status?deploymentId=1"]
        assert [(await app.client.get(path)).status for path in paths] == [200, 200, 404, 404]
        for path in ["/api/stats", "/api/deployments/status?deploymentId=1"]:
            assert (await app.client.get(path)).status == 429, path
        refused = await app.client.get("/api/stats")
        assert refused.status == 429
        assert "too many requests" in (await refused.json())["error"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        # Health checks and webhooks are not counted against the API's limit.
        assert (await app.client.get("/api/health")).status != 429


async def api_statuses(app, forwarded_for: list[str | None]) -> list[int]:
    statuses = []
    for value in forwarded_for:
        headers = {"X-Forwarded-For": value} if value is not None else {}
        statuses.append((await app.client.get("/api/stats", headers=headers)).status)
    return statuses


async def test_behind_one_proxy_each_client_has_its_own_limit_and_cannot_write_its_way_out(
    tmp_path, fake_github, app_private_key
):
    async with app_under_test(
        tmp_path,
        github_url=fake_github.url,
        private_key=app_private_key,
        RATE_LIMIT_MAX_REQUESTS="2",
        RATE_LIMIT_WINDOW="60s",
        TRUSTED_PROXY_HOPS="1",
    ) as app:
        # Every request comes from the proxy's address; the proxy appends the client's.
        assert await api_statuses(app, ["203.0.113.5", "203.0.113.5", "203.0.113.5"]) == [200, 200, 429]
        assert await api_statuses(app, ["198.51.100.7"]) == [200]
        # What the client itself wrote (left of the proxy's entry) is not believed.
        assert await api_statuses(app, ["192.0.2.1, 203.0.113.5", "192.0.2.2,203.0.113.5"]) == [429, 429]
        # A request that reached the App without the proxy counts as its peer.
        assert await api_statuses(app, [None, None, None]) == [200, 200, 429]


async def test_without_trusted_proxies_x_forwarded_for_is_ignored(tmp_path, fake_github, app_private_key):
    async with app_under_test(
        tmp_path, github_url=fake_github.url, private_key=app_private_key, RATE_LIMIT_MAX_REQUESTS="2", RATE_LIMIT_WINDOW="60s"
    ) as app:
        assert await api_statuses(app, ["203.0.113.5", "198.51.100.7", "192.0.2.9"]) == [200, 200, 429]


def test_the_window_slides_the_oldest_requests_out():
    now = [1000.0]
    limiter = SlidingWindowLimiter(clock=lambda: now[0])
    allowed = [limiter.retry_after("10.0.0.1", limit=2, window=60) for _ in range(2)]
    assert allowed == [None, None]
    now[0] += 20
    assert limiter.retry_after("10.0.0.1", limit=2, window=60) == 40
    assert limiter.retry_after("10.0.0.2", limit=2, window=60) is None  # per client
    now[0] += 40
    assert limiter.retry_after("10.0.0.1", limit=2, window=60) is None


def test_the_limiter_forgets_the_least_recent_clients_beyond_its_bound():
    limiter = SlidingWindowLimiter(max_clients=2, clock=lambda: 0.0)
    for client in ("a", "b", "a", "c"):
        limiter.retry_after(client, limit=1, window=60)
    assert limiter.retry_after("b", limit=1, window=60) is None  # forgotten, so allowed again
    assert limiter.retry_after("c", limit=1, window=60) == 60
