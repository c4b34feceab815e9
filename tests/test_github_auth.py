"""The App's GitHub adapter against the fake GitHub, over HTTP: JWTs, tokens, look-ups."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import gidgethub
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from gidgethub.aiohttp import GitHubAPI

from pinkflow_bot.github.auth import AppAuth
from pinkflow_bot.github.client import GitHubApp
from pinkflow_bot.governance.permissions import Permission
from tests.fake_github import FakeGitHub

APP_ID = 4242  # the App the `fake_github` fixture knows
REPO = "acme/web"
OTHER_REPO = "globex/api"
HEAD_SHA = "9fceb02d0ae598e95dc970b74767f19372d61af8"
TOKEN_REQUEST = "apps/create-installation-access-token"
PERMISSION_LOOKUP = "repos/get-collaborator-permission-level"
ROSTER = "repos/list-collaborators"


def permission_calls(world: FakeGitHub) -> list:
    """Every call that asked GitHub who may do what: the roster and one-person look-ups."""
    return [call for call in world.calls if call.operation_id in (ROSTER, PERMISSION_LOOKUP)]


class ManualClock:
    """Wall-clock seconds that only move when the test says so."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def world(fake_github: FakeGitHub, clock: ManualClock) -> FakeGitHub:
    # GitHub and the App share one clock, as they share the real one in production.
    fake_github.clock = clock
    fake_github.add_installation(1, "acme")
    fake_github.add_repo(REPO, installation_id=1)
    fake_github.add_installation(2, "globex")
    fake_github.add_repo(OTHER_REPO, installation_id=2, private=True)
    fake_github.add_pull(REPO, 7, head_sha=HEAD_SHA, author="alice")
    return fake_github


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def auth(app_private_key: str, clock: ManualClock) -> AppAuth:
    return AppAuth(app_id=str(APP_ID), private_key=app_private_key, clock=clock)


@pytest.fixture
def github_app(http: aiohttp.ClientSession, world: FakeGitHub, auth: AppAuth, clock: ManualClock) -> GitHubApp:
    return GitHubApp(session=http, api_url=world.url, auth=auth, clock=clock)


# ---------------------------------------------------------------------------- App JWT


def claims_of(token: str, *, key: bytes) -> dict:
    """The verified claims; their times are the test clock's, so pyjwt must not judge them."""
    return jwt.decode(token, key, algorithms=["RS256"], options={"verify_exp": False, "verify_iat": False})


def test_the_app_jwt_is_rs256_backdated_and_lives_ten_minutes(auth: AppAuth, app_public_key: bytes, clock: ManualClock):
    token = auth.app_jwt()

    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = claims_of(token, key=app_public_key)
    assert claims["iss"] == str(APP_ID)
    assert claims["iat"] == clock.now - 60
    assert claims["exp"] - claims["iat"] == 600


def test_the_app_jwt_is_reused_until_a_minute_before_it_expires(auth: AppAuth, app_public_key: bytes, clock: ManualClock):
    first = auth.app_jwt()
    expires_at = claims_of(first, key=app_public_key)["exp"]

    clock.now = expires_at - 61
    assert auth.app_jwt() == first

    clock.now = expires_at - 60
    second = auth.app_jwt()
    assert second != first
    claims = claims_of(second, key=app_public_key)
    assert claims["iat"] == clock.now - 60


async def test_github_accepts_the_app_client(github_app: GitHubApp, world: FakeGitHub):
    app = await github_app.app_client().getitem("/app")

    assert app["id"] == APP_ID
    [call] = world.calls_for("apps/get-authenticated")
    assert call.status == 200


# ------------------------------------------------------------------ installation tokens


async def test_the_installation_token_is_requested_once_and_reused(github_app: GitHubApp, world: FakeGitHub):
    first = await github_app.installation_client(1)
    second = await github_app.installation_client(1)

    assert (await first.getitem(f"/repos/{REPO}"))["full_name"] == REPO
    assert (await second.getitem(f"/repos/{REPO}/pulls/7"))["head"]["sha"] == HEAD_SHA
    assert world.tokens_issued == 1
    assert len(world.calls_for(TOKEN_REQUEST)) == 1


async def test_each_installation_gets_its_own_token(github_app: GitHubApp, world: FakeGitHub):
    acme = await github_app.installation_client(1)
    globex = await github_app.installation_client(2)

    await acme.getitem(f"/repos/{REPO}")
    await globex.getitem(f"/repos/{OTHER_REPO}")
    assert world.tokens_issued == 2
    assert acme.oauth_token != globex.oauth_token


async def test_the_token_is_replaced_a_minute_before_it_expires(
    github_app: GitHubApp, world: FakeGitHub, clock: ManualClock
):
    world.token_ttl = 300  # the App must follow `expires_at`, not assume an hour
    gh = await github_app.installation_client(1)
    first = gh.oauth_token

    clock.advance(239)
    await gh.getitem(f"/repos/{REPO}")
    assert world.tokens_issued == 1

    clock.advance(1)  # 60 s before expiry
    await gh.getitem(f"/repos/{REPO}")
    assert world.tokens_issued == 2
    assert gh.oauth_token != first


async def test_a_client_kept_past_the_hour_keeps_working(github_app: GitHubApp, world: FakeGitHub, clock: ManualClock):
    gh = await github_app.installation_client(1)

    clock.advance(3 * 3600)  # the token, and the JWT that fetched it, are long expired
    assert (await gh.getitem(f"/repos/{REPO}"))["full_name"] == REPO
    assert world.tokens_issued == 2


async def test_concurrent_callers_share_one_token_request(github_app: GitHubApp, world: FakeGitHub):
    world.latency = 0.05  # keep the first token request in flight while the others arrive

    clients = await asyncio.gather(*(github_app.installation_client(1) for _ in range(10)))

    assert world.tokens_issued == 1
    assert len({client.oauth_token for client in clients}) == 1


async def test_a_revoked_token_is_replaced_after_github_answers_401(github_app: GitHubApp, world: FakeGitHub):
    gh = await github_app.installation_client(1)
    world.revoke_tokens()

    assert (await gh.getitem(f"/repos/{REPO}"))["full_name"] == REPO
    assert world.tokens_issued == 2
    assert [c.status for c in world.calls_for("repos/get")] == [401, 200]


async def test_a_suspended_installation_gets_no_token(github_app: GitHubApp, world: FakeGitHub):
    world.set_suspended(1, suspended=True)

    with pytest.raises(gidgethub.BadRequest) as refused:
        await github_app.installation_client(1)
    assert refused.value.status_code == 403


# ----------------------------------------------------------------------- permissions


async def test_the_permission_prefers_the_role_name_over_the_legacy_field(github_app: GitHubApp, world: FakeGitHub):
    for login, role in [("ann", "admin"), ("max", "maintain"), ("dan", "write"), ("tia", "triage"), ("rea", "read")]:
        world.set_permission(REPO, login, role)
    gh = await github_app.installation_client(1)

    levels = {
        login: await github_app.permission(gh, repo_full_name=REPO, login=login, installation_id=1)
        for login in ("ann", "max", "dan", "tia", "rea")
    }

    assert levels == {
        "ann": Permission.ADMIN,
        "max": Permission.MAINTAIN,  # GitHub's legacy `permission` says "write"
        "dan": Permission.WRITE,
        "tia": Permission.TRIAGE,  # legacy "read"
        "rea": Permission.READ,
    }


async def test_the_permission_is_cached_per_person_whatever_the_case(
    github_app: GitHubApp, world: FakeGitHub, clock: ManualClock
):
    world.set_permission(REPO, "Dan", "write")
    gh = await github_app.installation_client(1)

    assert await github_app.permission(gh, repo_full_name=REPO, login="dan", installation_id=1) == Permission.WRITE
    world.set_permission(REPO, "Dan", "admin")
    assert await github_app.permission(gh, repo_full_name="ACME/Web", login="DAN", installation_id=1) == Permission.WRITE
    assert len(permission_calls(world)) == 1

    clock.advance(61)  # a change of role shows within about a minute
    assert await github_app.permission(gh, repo_full_name=REPO, login="dan", installation_id=1) == Permission.ADMIN
    assert len(permission_calls(world)) == 2


async def test_a_crowd_of_first_time_voters_costs_one_call(github_app: GitHubApp, world: FakeGitHub):
    crowd = [f"voter{index:02d}" for index in range(40)]
    for login in crowd:
        world.set_permission(REPO, login, "write")
    world.set_permission(REPO, "boss", "admin")
    gh = await github_app.installation_client(1)

    # All at once, as the worker's loops would ask during a burst of votes.
    levels = await asyncio.gather(
        *(github_app.permission(gh, repo_full_name=REPO, login=login, installation_id=1) for login in [*crowd, "boss"])
    )

    assert levels == [Permission.WRITE] * len(crowd) + [Permission.ADMIN]
    assert [call.operation_id for call in permission_calls(world)] == [ROSTER]


async def test_people_beyond_the_rosters_page_are_looked_up_one_by_one(github_app: GitHubApp, world: FakeGitHub):
    for index in range(100):
        world.set_permission(REPO, f"early{index:03d}", "read")
    world.set_permission(REPO, "late", "maintain")  # the 101st: on the second page
    world.add_user("passer-by")  # no role: a public repository's reader
    gh = await github_app.installation_client(1)

    assert await github_app.permission(gh, repo_full_name=REPO, login="early042", installation_id=1) == Permission.READ
    assert await github_app.permission(gh, repo_full_name=REPO, login="late", installation_id=1) == Permission.MAINTAIN
    assert await github_app.permission(gh, repo_full_name=REPO, login="passer-by", installation_id=1) == Permission.READ
    assert [call.operation_id for call in permission_calls(world)] == [ROSTER, PERMISSION_LOOKUP, PERMISSION_LOOKUP]


async def test_a_roster_github_will_not_list_falls_back_to_one_look_up_each(github_app: GitHubApp, world: FakeGitHub):
    world.set_permission(REPO, "dan", "write")
    world.set_permission(REPO, "ann", "admin")
    world.fail(ROSTER, status=403, body={
        "message": "Resource not accessible by integration",
        "documentation_url": "https://docs.github.com/rest/collaborators/collaborators#list-repository-collaborators",
        "status": "403",
    })
    gh = await github_app.installation_client(1)

    assert await github_app.permission(gh, repo_full_name=REPO, login="dan", installation_id=1) == Permission.WRITE
    assert await github_app.permission(gh, repo_full_name=REPO, login="ann", installation_id=1) == Permission.ADMIN
    # The refusal is remembered as briefly as a roster would be: no second try per person.
    assert [call.operation_id for call in permission_calls(world)] == [ROSTER, PERMISSION_LOOKUP, PERMISSION_LOOKUP]


async def test_someone_github_does_not_know_has_no_permission(github_app: GitHubApp, world: FakeGitHub):
    gh = await github_app.installation_client(1)

    level = await github_app.permission(gh, repo_full_name=REPO, login="ghost-of-nobody", installation_id=1)
    again = await github_app.permission(gh, repo_full_name=REPO, login="ghost-of-nobody", installation_id=1)

    assert level == again == Permission.NONE
    assert [c.status for c in world.calls_for(PERMISSION_LOOKUP)] == [404]


async def test_people_without_a_role_can_read_public_repositories_only(github_app: GitHubApp, world: FakeGitHub):
    world.add_user("passer-by")
    acme, globex = await github_app.installation_client(1), await github_app.installation_client(2)

    public = await github_app.permission(acme, repo_full_name=REPO, login="passer-by", installation_id=1)
    private = await github_app.permission(globex, repo_full_name=OTHER_REPO, login="passer-by", installation_id=2)

    assert (public, private) == (Permission.READ, Permission.NONE)


async def test_team_membership_counts_only_when_active(github_app: GitHubApp, world: FakeGitHub):
    world.add_team_member("acme", "release", "rita")
    world.add_team_member("acme", "release", "ivan", state="pending")
    gh = await github_app.installation_client(1)

    answers = [
        await github_app.team_member(gh, org="acme", team_slug="release", login=login) for login in ("rita", "ivan", "zed")
    ]
    assert answers == [True, False, False]
    assert await github_app.team_member(gh, org="ACME", team_slug="release", login="RITA") is True
    assert len(world.calls_for("teams/get-membership-for-user-in-org")) == 3


# --------------------------------------------------------- GitHub Enterprise Server


async def test_a_ghes_api_root_with_a_path_prefix_works(
    app_public_key: bytes, app_private_key: str, http: aiohttp.ClientSession
):
    async with FakeGitHub(app_id=APP_ID, app_public_key_pem=app_public_key, path_prefix="/api/v3") as ghes:
        ghes.add_installation(1, "acme")
        ghes.add_repo(REPO, installation_id=1)
        ghes.add_pull(REPO, 7, head_sha=HEAD_SHA, author="alice")
        for number in range(3):
            ghes.add_comment(REPO, 7, author="alice", body=f"comment {number}")
        assert ghes.url.endswith("/api/v3")
        github_app = GitHubApp(session=http, api_url=ghes.url + "/", auth=AppAuth(app_id=str(APP_ID), private_key=app_private_key))

        gh = await github_app.installation_client(1)
        # Pages follow GitHub's `Link` header, which must keep the prefix too.
        bodies = [c["body"] async for c in gh.getiter(f"/repos/{REPO}/issues/7/comments?per_page=1")]

        assert bodies == ["comment 0", "comment 1", "comment 2"]
        assert [c.path for c in ghes.calls] == ["/app/installations/1/access_tokens"] + [f"/repos/{REPO}/issues/7/comments"] * 3
        assert ghes.errors == []


# ------------------------------------------- the fake refuses what GitHub would refuse


def _other_key_jwt(now: float) -> str:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = stranger.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return jwt.encode({"iat": int(now) - 60, "exp": int(now) + 540, "iss": str(APP_ID)}, pem, algorithm="RS256")


async def test_the_fake_refuses_a_completed_check_run_without_conclusion(github_app: GitHubApp, world: FakeGitHub):
    gh = await github_app.installation_client(1)

    with pytest.raises(gidgethub.BadRequest) as refused:
        await gh.post(f"/repos/{REPO}/check-runs", data={"name": "Pinkflow governance", "head_sha": HEAD_SHA, "status": "completed"})

    assert refused.value.status_code == 422
    assert world.check_runs == {}
    [problem] = world.errors
    assert "checks/create" in problem and "conclusion" in problem
    world.errors.clear()


async def test_the_fake_refuses_an_operation_github_does_not_have(github_app: GitHubApp, world: FakeGitHub):
    gh = await github_app.installation_client(1)

    with pytest.raises(gidgethub.BadRequest) as refused:
        await gh.getitem(f"/repos/{REPO}/branches")

    assert refused.value.status_code == 404
    [problem] = world.errors
    assert "GET /repos/acme/web/branches" in problem and "no such operation" in problem
    world.errors.clear()


async def test_the_fake_refuses_unknown_and_mistyped_query_parameters(github_app: GitHubApp, world: FakeGitHub):
    gh = await github_app.installation_client(1)

    for url in (f"/repos/{REPO}/issues/7/comments?sort=created", f"/repos/{REPO}/pulls?state=merged"):
        with pytest.raises(gidgethub.BadRequest) as refused:
            await gh.getitem(url)
        assert refused.value.status_code == 422

    assert len(world.errors) == 2
    assert "unknown query parameter 'sort'" in world.errors[0]
    assert "'merged' is not one of" in world.errors[1]
    world.errors.clear()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no credentials", "got no credentials"),
        ("JWT signed with another key", "does not verify"),
        ("installation token on an App endpoint", "needs the App's JWT"),
        ("expired JWT", "expired"),
        ("JWT living over ten minutes", "at most 600"),
        ("JWT on a repository endpoint", "cannot call this endpoint"),
        ("token of another installation", "which installation 2 has"),
    ],
)
async def test_the_fake_refuses_bad_credentials(
    case: str, expected: str, github_app: GitHubApp, world: FakeGitHub, http: aiohttp.ClientSession,
    app_private_key: str, clock: ManualClock,
):
    acme_token = (await github_app.installation_client(1)).oauth_token
    now = int(clock())

    def app_jwt(*, iat: int, exp: int) -> str:
        return jwt.encode({"iat": iat, "exp": exp, "iss": str(APP_ID)}, app_private_key, algorithm="RS256")

    cases = {
        "no credentials": lambda: (f"/repos/{REPO}", {}),
        "JWT signed with another key": lambda: ("/app", {"jwt": _other_key_jwt(now)}),
        "installation token on an App endpoint": lambda: ("/app", {"oauth_token": acme_token}),
        "expired JWT": lambda: ("/app", {"jwt": app_jwt(iat=now - 700, exp=now - 100)}),
        "JWT living over ten minutes": lambda: ("/app", {"jwt": app_jwt(iat=now - 60, exp=now + 600)}),
        "JWT on a repository endpoint": lambda: (f"/repos/{REPO}", {"jwt": github_app.auth.app_jwt()}),
        "token of another installation": lambda: (f"/repos/{OTHER_REPO}", {"oauth_token": acme_token}),
    }
    url, credentials = cases[case]()
    gh = GitHubAPI(http, "pinkflow-bot-tests", base_url=world.url)

    with pytest.raises(gidgethub.BadRequest) as refused:
        await gh.getitem(url, **credentials)

    assert refused.value.status_code in (401, 403)
    [problem] = world.errors
    assert expected in problem
    world.errors.clear()
