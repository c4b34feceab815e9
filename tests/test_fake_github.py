"""The fake GitHub itself: it must answer like GitHub, keep state like GitHub, and
refuse what GitHub refuses, or every test built on it proves nothing."""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import datetime, timezone
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import gidgethub
import jwt
import pytest
from gidgethub.aiohttp import GitHubAPI

from tests.fake_github import ROUTES, Auth, FakeGitHub

REPO = "acme/web"
HEAD_SHA = "9fceb02d0ae598e95dc970b74767f19372d61af8"
OTHER_SHA = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
GITHUB_JSON = "application/vnd.github+json"


@pytest.fixture
def world(fake_github: FakeGitHub) -> FakeGitHub:
    fake_github.add_installation(1, "acme")
    fake_github.add_repo(REPO, installation_id=1)
    fake_github.add_pull(REPO, 7, head_sha=HEAD_SHA, author="alice", head_ref="feature")
    return fake_github


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def app_jwt(app_private_key: str, fake_github: FakeGitHub) -> Callable[[], str]:
    def make() -> str:
        now = int(fake_github.clock())
        claims = {"iat": now - 60, "exp": now + 540, "iss": str(fake_github.app_id)}
        return jwt.encode(claims, app_private_key, algorithm="RS256")

    return make


@pytest.fixture
async def token(world: FakeGitHub, http: aiohttp.ClientSession, app_jwt: Callable[[], str]) -> str:
    answer = await GitHubAPI(http, "tests", base_url=world.url).post(
        "/app/installations/1/access_tokens", data=b"", jwt=app_jwt()
    )
    return answer["token"]


@pytest.fixture
def gh(http: aiohttp.ClientSession, world: FakeGitHub, token: str) -> GitHubAPI:
    return GitHubAPI(http, "tests", oauth_token=token, base_url=world.url)


async def raw(
    http: aiohttp.ClientSession, fake: FakeGitHub, method: str, path: str, *, token: str | None = None, **kwargs
) -> tuple[int, Mapping[str, str], Any]:
    """A request without gidgethub's help, to see status, headers and body as sent."""
    headers = {"Accept": GITHUB_JSON, **kwargs.pop("headers", {})}
    if token:
        headers["Authorization"] = f"token {token}"
    async with http.request(method, fake.url + path, headers=headers, **kwargs) as response:
        body = await response.json() if response.content_type == "application/json" else await response.text()
        return response.status, response.headers.copy(), body


# ------------------------------------------------------------------ the description


def test_every_operation_of_the_description_has_a_route(fake_github: FakeGitHub):
    assert set(ROUTES) == set(fake_github.spec.operations)
    app_only = {op for op, route in ROUTES.items() if route.auth is Auth.APP}
    assert app_only == {
        "apps/get-authenticated",
        "apps/list-installations",
        "apps/get-repo-installation",
        "apps/create-installation-access-token",
    }


async def test_every_operation_answers_in_githubs_shape(
    world: FakeGitHub, gh: GitHubAPI, http: aiohttp.ClientSession, app_jwt: Callable[[], str]
):
    """One call of each operation; the fixture fails the test if an answer breaks its schema."""
    world.set_permission(REPO, "bob", "maintain")
    world.add_team_member("acme", "release", "bob")
    world.add_review(REPO, 7, author="bob")
    world.set_file(REPO, ".github/pinkflow.yml", "threshold: 60\n")
    world.add_manifest_code("manifest-code")
    app = GitHubAPI(http, "tests", base_url=world.url)
    anonymous = GitHubAPI(http, "tests", base_url=world.url)

    await app.getitem("/app", jwt=app_jwt())
    await app.getitem("/app/installations", jwt=app_jwt())
    await app.getitem(f"/repos/{REPO}/installation", jwt=app_jwt())
    await gh.getitem(f"/repos/{REPO}")
    await gh.getitem(f"/repos/{REPO}/contents/{{path}}", url_vars={"path": ".github/pinkflow.yml"})
    await gh.getitem(f"/repos/{REPO}/collaborators/bob/permission")
    await gh.getitem(f"/repos/{REPO}/collaborators?affiliation=all&per_page=100")
    await gh.getitem("/orgs/acme/teams/release/memberships/bob")
    await gh.getitem(f"/repos/{REPO}/pulls/7")
    await gh.getitem(f"/repos/{REPO}/pulls?state=all&sort=updated&direction=asc&per_page=10&page=1")
    await gh.getitem(f"/repos/{REPO}/pulls/7/reviews")
    await gh.getitem(f"/repos/{REPO}/commits/{HEAD_SHA}/pulls")
    comment = await gh.post(f"/repos/{REPO}/issues/7/comments", data={"body": "status"})
    await gh.patch(comment["url"], data={"body": "status, edited"})
    await gh.getitem(f"/repos/{REPO}/issues/7/comments?since=2000-01-01T00:00:00Z")
    await gh.post(f"{comment['url']}/reactions", data={"content": "+1"})
    run = await gh.post(
        f"/repos/{REPO}/check-runs",
        data={"name": "Pinkflow governance", "head_sha": HEAD_SHA, "status": "in_progress",
              "output": {"title": "Voting", "summary": "0 of 3 votes"}},
    )
    await gh.patch(run["url"], data={"conclusion": "success", "output": {"title": "Passed", "summary": "3 of 3"}})
    await gh.getitem(run["url"])
    await gh.getitem(f"/repos/{REPO}/commits/{HEAD_SHA}/check-runs?filter=all&status=completed")
    deployment = await gh.post(
        f"/repos/{REPO}/deployments",
        data={"ref": HEAD_SHA, "environment": "production", "auto_merge": False, "required_contexts": [], "payload": {"proposal": 1}},
    )
    await gh.getitem(deployment["url"])
    await gh.getitem(f"/repos/{REPO}/deployments?environment=production&sha={HEAD_SHA}")
    await gh.post(deployment["statuses_url"], data={"state": "in_progress", "log_url": "https://ci.example/1"})
    await gh.getitem(deployment["statuses_url"])
    await gh.post(
        f"/repos/{REPO}/actions/runs/99/deployment_protection_rule",
        data={"environment_name": "production", "state": "approved", "comment": "The vote passed."},
    )
    await gh.getitem("/rate_limit")
    await anonymous.post("/app-manifests/manifest-code/conversions", data=b"")

    assert {call.operation_id for call in world.calls} == set(world.spec.operations)
    assert all(call.status < 300 for call in world.calls), [c for c in world.calls if c.status >= 300]


async def test_an_answer_that_breaks_githubs_schema_is_reported(world: FakeGitHub, gh: GitHubAPI):
    world.pulls[(REPO, 7)]["state"] = "merged"  # GitHub only ever says open or closed

    await gh.getitem(f"/repos/{REPO}/pulls/7")

    [problem] = world.errors
    assert "pulls/get" in problem and "does not match GitHub's schema" in problem and "'merged'" in problem
    world.errors.clear()


async def test_a_request_without_githubs_media_type_is_refused(world: FakeGitHub, http: aiohttp.ClientSession, token: str):
    status, _, _ = await raw(http, world, "GET", f"/repos/{REPO}", token=token, headers={"Accept": "*/*"})

    assert status == 422
    assert "not GitHub's media type" in world.errors[0]
    world.errors.clear()


async def test_a_body_that_is_not_json_is_refused(world: FakeGitHub, http: aiohttp.ClientSession, token: str):
    status, _, _ = await raw(
        http, world, "POST", f"/repos/{REPO}/issues/7/comments", token=token,
        data=b"body=hello", headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert status == 422
    assert world.comments == {}
    assert any("not JSON" in e for e in world.errors)
    world.errors.clear()


async def test_a_comment_longer_than_github_allows_is_refused(world: FakeGitHub, gh: GitHubAPI):
    with pytest.raises(gidgethub.BadRequest) as refused:
        await gh.post(f"/repos/{REPO}/issues/7/comments", data={"body": "x" * 65537})

    assert refused.value.status_code == 422
    assert "too long" in world.errors[0]
    world.errors.clear()


# ------------------------------------------------------------------------- comments


async def test_comments_are_paged_with_githubs_link_header(world: FakeGitHub, http: aiohttp.ClientSession, token: str):
    for number in range(5):
        world.add_comment(REPO, 7, author="alice", body=f"comment {number}")
    path = f"/repos/{REPO}/issues/7/comments"

    status, headers, first = await raw(http, world, "GET", f"{path}?per_page=2", token=token)
    assert status == 200
    assert [c["body"] for c in first] == ["comment 0", "comment 1"]
    assert headers["Link"] == (
        f'<{world.url}{path}?per_page=2&page=2>; rel="next", <{world.url}{path}?per_page=2&page=3>; rel="last"'
    )

    _, headers, last = await raw(http, world, "GET", f"{path}?per_page=2&page=3", token=token)
    assert [c["body"] for c in last] == ["comment 4"]
    assert headers["Link"] == (
        f'<{world.url}{path}?per_page=2&page=2>; rel="prev", <{world.url}{path}?per_page=2&page=1>; rel="first"'
    )


async def test_gidgethub_follows_the_pages(world: FakeGitHub, gh: GitHubAPI):
    for number in range(7):
        world.add_comment(REPO, 7, author="alice", body=f"comment {number}")

    bodies = [c["body"] async for c in gh.getiter(f"/repos/{REPO}/issues/7/comments?per_page=3")]

    assert bodies == [f"comment {n}" for n in range(7)]
    assert len(world.calls_for("issues/list-comments")) == 3


async def test_since_lists_comments_updated_at_or_after_it(world: FakeGitHub, gh: GitHubAPI):
    clock = [float(int(time.time()))]
    world.clock = lambda: clock[0]
    world.add_comment(REPO, 7, author="alice", body="old")
    clock[0] += 600
    world.add_comment(REPO, 7, author="alice", body="new")

    since = datetime.fromtimestamp(clock[0] - 300, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    bodies = [c["body"] for c in await gh.getitem(f"/repos/{REPO}/issues/7/comments?since={since}")]

    assert bodies == ["new"]


async def test_comments_on_unknown_pull_requests_are_not_found(world: FakeGitHub, gh: GitHubAPI):
    with pytest.raises(gidgethub.BadRequest) as missing:
        await gh.post(f"/repos/{REPO}/issues/99/comments", data={"body": "hello"})
    assert missing.value.status_code == 404


async def test_the_apps_comment_is_by_its_bot_user_and_edits_keep_its_id(world: FakeGitHub, gh: GitHubAPI):
    created = await gh.post(f"/repos/{REPO}/issues/7/comments", data={"body": "first"})
    edited = await gh.patch(f"/repos/{REPO}/issues/comments/{created['id']}", data={"body": "second"})

    assert created["user"]["login"] == "pinkflow-bot[bot]" and created["user"]["type"] == "Bot"
    assert edited["id"] == created["id"]
    assert [c["body"] for c in world.comments_on(REPO, 7)] == ["second"]


async def test_a_repeated_reaction_is_answered_200_with_the_first(world: FakeGitHub, http: aiohttp.ClientSession, token: str):
    comment = world.add_comment(REPO, 7, author="alice", body="/approve")
    path = f"/repos/{REPO}/issues/comments/{comment['id']}/reactions"

    first = await raw(http, world, "POST", path, token=token, json={"content": "+1"})
    again = await raw(http, world, "POST", path, token=token, json={"content": "+1"})
    other = await raw(http, world, "POST", path, token=token, json={"content": "confused"})

    assert [first[0], again[0], other[0]] == [201, 200, 201]
    assert again[2]["id"] == first[2]["id"]
    assert world.reaction_contents(comment["id"]) == ["+1", "confused"]
    assert world.comments[comment["id"]]["reactions"]["total_count"] == 2


# ----------------------------------------------------------------------- check runs


async def test_a_check_run_keeps_its_state_and_the_history_of_its_updates(world: FakeGitHub, gh: GitHubAPI):
    actions = [{"label": "Promote", "description": "Promote the preview", "identifier": "promote"}]
    run = await gh.post(
        f"/repos/{REPO}/check-runs",
        data={"name": "Pinkflow governance", "head_sha": HEAD_SHA, "status": "in_progress", "external_id": "proposal-1",
              "details_url": "https://pinkflow.test/proposals/1", "output": {"title": "Voting", "summary": "0 votes"}},
    )
    await gh.patch(run["url"], data={"conclusion": "success", "output": {"title": "Passed", "summary": "3 votes"}, "actions": actions})

    [stored] = world.check_runs_for(REPO, HEAD_SHA, name="Pinkflow governance")
    assert (stored["status"], stored["conclusion"]) == ("completed", "success")
    assert stored["completed_at"].endswith("Z")
    assert stored["output"]["title"] == "Passed"
    assert (stored["external_id"], stored["details_url"]) == ("proposal-1", "https://pinkflow.test/proposals/1")
    assert [p["number"] for p in stored["pull_requests"]] == [7]
    assert world.check_run_actions[run["id"]] == actions
    assert [body.get("status") or body.get("conclusion") for body in world.check_run_history[run["id"]]] == ["in_progress", "success"]


@pytest.mark.parametrize("field", ["summary", "text"])
async def test_a_check_run_output_over_githubs_limit_in_bytes_is_refused(world: FakeGitHub, gh: GitHubAPI, field: str):
    # 30000 characters, within the description's maxLength, but 90000 bytes of UTF-8.
    oversized = {"title": "Voting", "summary": "ok", field: "承" * 30000}
    with pytest.raises(gidgethub.BadRequest) as refused:
        await gh.post(f"/repos/{REPO}/check-runs", data={"name": "Pinkflow governance", "head_sha": HEAD_SHA, "output": oversized})
    assert refused.value.status_code == 422
    assert world.errors == [f"GitHub would refuse this request: {field} exceeds a maximum bytesize of 65535"]
    world.errors.clear()

    run = await gh.post(f"/repos/{REPO}/check-runs", data={"name": "Pinkflow governance", "head_sha": HEAD_SHA})
    with pytest.raises(gidgethub.BadRequest):
        await gh.patch(run["url"], data={"output": oversized})
    assert len(world.errors) == 1
    world.errors.clear()
    # Exactly at the limit is accepted.
    await gh.patch(run["url"], data={"output": {**oversized, field: "承" * 21845}})
    assert world.check_runs[run["id"]]["output"][field] == "承" * 21845


async def test_check_runs_for_a_ref_list_the_latest_per_name_unless_asked_for_all(world: FakeGitHub, gh: GitHubAPI):
    for name in ("Pinkflow governance", "Pinkflow governance", "lint"):
        await gh.post(f"/repos/{REPO}/check-runs", data={"name": name, "head_sha": HEAD_SHA})
    ids = sorted(world.check_runs)

    latest = await gh.getitem(f"/repos/{REPO}/commits/{HEAD_SHA}/check-runs?check_name=Pinkflow%20governance")
    every = await gh.getitem(f"/repos/{REPO}/commits/{HEAD_SHA}/check-runs?filter=all")
    by_branch = await gh.getitem(f"/repos/{REPO}/commits/feature/check-runs")

    assert (latest["total_count"], [r["id"] for r in latest["check_runs"]]) == (1, [ids[1]])
    assert every["total_count"] == 3
    assert by_branch["total_count"] == 2  # `feature` is the pull request's head


# ---------------------------------------------------------------------- deployments


async def test_a_deployment_resolves_its_ref_and_lists_by_filter(world: FakeGitHub, gh: GitHubAPI):
    preview = world.add_deployment(REPO, sha=HEAD_SHA, environment="Preview", ref="feature")
    production = await gh.post(
        f"/repos/{REPO}/deployments",
        data={"ref": "feature", "environment": "production", "auto_merge": False, "required_contexts": []},
    )

    assert production["sha"] == HEAD_SHA
    assert production["creator"]["login"] == "pinkflow-bot[bot]"
    assert production["production_environment"] is True
    listed = await gh.getitem(f"/repos/{REPO}/deployments?environment=Preview")
    assert [d["id"] for d in listed] == [preview["id"]]
    newest_first = await gh.getitem(f"/repos/{REPO}/deployments?sha={HEAD_SHA}")
    assert [d["id"] for d in newest_first] == [production["id"], preview["id"]]


async def test_a_deployment_of_an_unknown_ref_is_refused(world: FakeGitHub, gh: GitHubAPI):
    with pytest.raises(gidgethub.BadRequest) as refused:
        await gh.post(f"/repos/{REPO}/deployments", data={"ref": "no-such-branch"})
    assert refused.value.status_code == 422
    assert world.deployments == {}


async def test_a_new_successful_preview_makes_the_earlier_one_inactive(world: FakeGitHub, gh: GitHubAPI):
    earlier = world.add_deployment(REPO, sha=HEAD_SHA, environment="Preview")
    world.add_deployment_status(earlier["id"], state="success", environment_url="https://one.vercel.app")
    later = world.add_deployment(REPO, sha=OTHER_SHA, environment="Preview")
    world.add_deployment_status(later["id"], state="success", environment_url="https://two.vercel.app")

    listed = await gh.getitem(earlier["statuses_url"])

    assert [s["state"] for s in listed] == ["inactive", "success"]  # newest first
    assert [s["state"] for s in world.statuses_of(later["id"])] == ["success"]


# ------------------------------------------------------------------- people, files


@pytest.mark.parametrize(
    ("role", "permission"),
    [("admin", "admin"), ("maintain", "write"), ("write", "write"), ("triage", "read"), ("read", "read"), ("none", "none")],
)
async def test_the_permission_answer_has_the_legacy_field_and_the_role(world: FakeGitHub, gh: GitHubAPI, role: str, permission: str):
    world.set_permission(REPO, "bob", role)

    answer = await gh.getitem(f"/repos/{REPO}/collaborators/bob/permission")

    assert (answer["permission"], answer["role_name"], answer["user"]["login"]) == (permission, role, "bob")


async def test_the_collaborators_list_holds_everyone_given_a_role_and_the_owner(world: FakeGitHub, gh: GitHubAPI):
    for login, role in (("bob", "write"), ("carol", "triage"), ("dave", "none")):
        world.set_permission(REPO, login, role)
    world.add_user("erin")  # known to GitHub, no role here

    listed = {entry["login"]: (entry["role_name"], entry["permissions"]["push"]) for entry in
              await gh.getitem(f"/repos/{REPO}/collaborators?per_page=100")}

    owner = REPO.split("/")[0]
    assert {login: role for login, (role, _) in listed.items() if login != owner} == {"bob": "write", "carol": "triage"}
    assert listed["bob"][1] is True and listed["carol"][1] is False
    writers = await gh.getitem(f"/repos/{REPO}/collaborators?permission=push")
    assert "carol" not in {entry["login"] for entry in writers}


async def test_the_configuration_file_is_served_base64_from_the_default_branch(world: FakeGitHub, gh: GitHubAPI):
    text = "threshold: 60\nmin_votes: 2\n"
    world.set_file(REPO, ".github/pinkflow.yml", text)
    world.set_file(REPO, ".github/pinkflow.yml", "threshold: 1\n", ref="feature")

    answer = await gh.getitem(f"/repos/{REPO}/contents/{{path}}", url_vars={"path": ".github/pinkflow.yml"})
    on_branch = await gh.getitem(f"/repos/{REPO}/contents/.github/pinkflow.yml?ref=feature")

    assert (answer["type"], answer["encoding"], answer["path"]) == ("file", "base64", ".github/pinkflow.yml")
    assert base64.b64decode(answer["content"]).decode() == text
    assert base64.b64decode(on_branch["content"]).decode() == "threshold: 1\n"
    with pytest.raises(gidgethub.BadRequest) as missing:
        await gh.getitem(f"/repos/{REPO}/contents/.github/other.yml")
    assert missing.value.status_code == 404


async def test_pull_requests_are_found_by_head_sha_and_filtered(world: FakeGitHub, gh: GitHubAPI):
    world.add_pull(REPO, 8, head_sha=OTHER_SHA, author="bob", head_ref="fix")
    world.close_pull(REPO, 8)

    assert [p["number"] for p in await gh.getitem(f"/repos/{REPO}/pulls")] == [7]
    assert [p["number"] for p in await gh.getitem(f"/repos/{REPO}/pulls?state=closed")] == [8]
    assert [p["number"] for p in await gh.getitem(f"/repos/{REPO}/pulls?state=all&head=acme:fix")] == [8]
    assert [p["number"] for p in await gh.getitem(f"/repos/{REPO}/commits/{HEAD_SHA}/pulls")] == [7]
    world.push(REPO, 7, head_sha=OTHER_SHA)
    assert (await gh.getitem(f"/repos/{REPO}/pulls/7"))["head"]["sha"] == OTHER_SHA


# ----------------------------------------------------------------------------- tokens


async def test_tokens_look_like_githubs_and_expire_an_hour_later(
    world: FakeGitHub, http: aiohttp.ClientSession, app_jwt: Callable[[], str]
):
    before = time.time()
    answer = await GitHubAPI(http, "tests", base_url=world.url).post("/app/installations/1/access_tokens", data=b"", jwt=app_jwt())

    assert answer["token"].startswith("ghs_") and len(answer["token"]) == 40
    expires_at = datetime.fromisoformat(answer["expires_at"].replace("Z", "+00:00")).timestamp()
    assert before + 3600 - 2 <= expires_at <= time.time() + 3600
    assert world.tokens_issued == 1


async def test_an_expired_token_is_refused(world: FakeGitHub, gh: GitHubAPI):
    world.clock = lambda: time.time() + 3601

    with pytest.raises(gidgethub.BadRequest) as refused:
        await gh.getitem(f"/repos/{REPO}")

    assert refused.value.status_code == 401
    assert "expired" in world.errors[0]
    world.errors.clear()


async def test_a_token_limited_to_some_repositories_cannot_reach_others(
    world: FakeGitHub, http: aiohttp.ClientSession, app_jwt: Callable[[], str]
):
    world.add_repo("acme/docs", installation_id=1)
    answer = await GitHubAPI(http, "tests", base_url=world.url).post(
        "/app/installations/1/access_tokens", data={"repositories": ["docs"]}, jwt=app_jwt()
    )
    limited = GitHubAPI(http, "tests", oauth_token=answer["token"], base_url=world.url)

    assert answer["repository_selection"] == "selected"
    assert (await limited.getitem("/repos/acme/docs"))["name"] == "docs"
    with pytest.raises(gidgethub.BadRequest) as refused:
        await limited.getitem(f"/repos/{REPO}")
    assert refused.value.status_code == 403
    world.errors.clear()


async def test_a_manifest_code_is_exchanged_once_without_credentials(world: FakeGitHub, http: aiohttp.ClientSession):
    issued = world.add_manifest_code("code-123", webhook_secret="hook-secret")
    anonymous = GitHubAPI(http, "tests", base_url=world.url)

    credentials = await anonymous.post("/app-manifests/code-123/conversions", data=b"")

    assert credentials["id"] == world.app_id
    assert credentials["pem"] == issued["pem"] and "PRIVATE KEY" in credentials["pem"]
    assert credentials["webhook_secret"] == "hook-secret"
    with pytest.raises(gidgethub.BadRequest) as used:
        await anonymous.post("/app-manifests/code-123/conversions", data=b"")
    assert used.value.status_code == 404


# ------------------------------------------------------------------ faults, headers


async def test_every_answer_carries_rate_limit_headers(world: FakeGitHub, http: aiohttp.ClientSession, token: str):
    _, first, _ = await raw(http, world, "GET", f"/repos/{REPO}", token=token)
    _, second, _ = await raw(http, world, "GET", f"/repos/{REPO}/pulls/7", token=token)

    assert first["x-ratelimit-limit"] == "5000"
    assert int(second["x-ratelimit-remaining"]) == int(first["x-ratelimit-remaining"]) - 1
    assert int(second["x-ratelimit-used"]) == int(first["x-ratelimit-used"]) + 1
    assert int(first["x-ratelimit-reset"]) > time.time()
    assert first["x-ratelimit-resource"] == "core"


async def test_a_fault_answers_the_next_matching_calls_then_stops(world: FakeGitHub, gh: GitHubAPI):
    world.fail("pulls/get", status=502, times=2)

    await gh.getitem(f"/repos/{REPO}")  # another operation is not affected
    for _ in range(2):
        with pytest.raises(gidgethub.GitHubBroken):
            await gh.getitem(f"/repos/{REPO}/pulls/7")
    assert (await gh.getitem(f"/repos/{REPO}/pulls/7"))["number"] == 7

    assert [c.status for c in world.calls_for("pulls/get")] == [502, 502, 200]


async def test_rate_limit_faults_look_like_githubs(world: FakeGitHub, gh: GitHubAPI, http: aiohttp.ClientSession, token: str):
    reset = str(int(time.time()) + 30)
    world.fail(status=403, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})
    with pytest.raises(gidgethub.RateLimitExceeded) as primary:
        await gh.getitem(f"/repos/{REPO}")
    assert int(primary.value.rate_limit.reset_datetime.timestamp()) == int(reset)

    world.fail(status=403)
    status, _, body = await raw(http, world, "GET", f"/repos/{REPO}", token=token)
    assert status == 403 and body["message"].startswith("You have exceeded a secondary rate limit")

    world.fail(status=429, headers={"Retry-After": "7"})
    status, headers, _ = await raw(http, world, "GET", f"/repos/{REPO}", token=token)
    assert (status, headers["Retry-After"]) == (429, "7")


async def test_an_applied_fault_changes_state_but_loses_the_answer(world: FakeGitHub, gh: GitHubAPI):
    world.fail("repos/create-deployment", status=502, effect_applied=True)

    with pytest.raises(gidgethub.GitHubBroken):
        await gh.post(f"/repos/{REPO}/deployments", data={"ref": HEAD_SHA, "environment": "production"})

    assert [d["environment"] for d in world.deployments.values()] == ["production"]


async def test_latency_delays_every_answer(world: FakeGitHub, gh: GitHubAPI):
    world.latency = 0.2
    started = time.monotonic()

    await gh.getitem(f"/repos/{REPO}")

    assert time.monotonic() - started >= 0.2


async def test_random_faults_follow_the_seed(app_public_key: bytes, app_private_key: str, http: aiohttp.ClientSession):
    async def statuses(seed: int) -> list[int]:
        async with FakeGitHub(app_public_key_pem=app_public_key, fault_seed=seed) as fake:
            fake.fault_rate = 0.5
            for _ in range(40):
                async with http.get(fake.url + "/rate_limit", headers={"Accept": GITHUB_JSON}) as response:
                    await response.read()
            assert fake.errors == []
            return [c.status for c in fake.calls]

    first, again, other = await statuses(7), await statuses(7), await statuses(8)

    assert first == again != other
    assert 10 <= sum(s != 200 for s in first) <= 30
    assert set(first) <= {200, 403, 429, 500, 502}


async def test_a_path_outside_the_api_root_is_refused(app_public_key: bytes, http: aiohttp.ClientSession):
    async with FakeGitHub(app_public_key_pem=app_public_key, path_prefix="api/v3") as ghes:
        async with http.get(ghes.url.removesuffix("/api/v3") + "/rate_limit", headers={"Accept": GITHUB_JSON}) as outside:
            assert outside.status == 404
        async with http.get(ghes.url + "/rate_limit", headers={"Accept": GITHUB_JSON}) as inside:
            assert inside.status == 200
        assert len(ghes.errors) == 1 and "outside the API root" in ghes.errors[0]


async def test_concurrent_requests_are_all_answered(world: FakeGitHub, gh: GitHubAPI):
    world.latency = 0.02

    numbers = await asyncio.gather(*(gh.getitem(f"/repos/{REPO}/pulls/7") for _ in range(20)))

    assert {p["number"] for p in numbers} == {7}
