"""gidgethub clients that act as the App or as one of its installations.

The API root comes from `GITHUB_API_URL`, so github.com, GitHub Enterprise Server
(`https://HOST/api/v3`) and the tests' fake GitHub are reached the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit
from typing import Callable

import aiohttp
import gidgethub
import gidgethub.aiohttp
import jwt
from cachetools import TTLCache

from .. import metrics
from ..governance.permissions import Permission, permission_from_collaborator, permission_from_github
from .auth import AppAuth
from .errors import GitHubRateLimited, rate_limit_wait

API_VERSION = "2022-11-28"
# Long enough to spare GitHub a look-up per comment of a busy vote, short enough that
# a change of role shows within a minute.
PERMISSION_TTL = 60.0
MAX_CACHED_LOOKUPS = 10_000
# One page of a repository's collaborators is read; people not on it (a larger roster's
# later pages, or no access beyond a public repository's) are looked up one by one.
ROSTER_PAGE = 100
MAX_CACHED_ROSTERS = 2_000
# /api/health asks whether GitHub answers the App; a load balancer polling it every
# second costs GitHub one request per this many seconds.
REACHABILITY_TTL = 30.0
REACHABILITY_TIMEOUT = 5.0

log = logging.getLogger(__name__)


# A repository's collaborators (every person with access: direct, through a team or
# through the organization) and their levels, by lower-case login.
Roster = Mapping[str, Permission]


class GitHubOutage:
    """Calls to GitHub that failed in a row (no answer, or a 5xx). Each failed delivery and
    effect logs its own line; the first answer after them is logged here, with how many
    calls failed and for how long, so the end of an outage can be read in the log too."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failed = 0
        self._since = 0.0

    def failed(self) -> None:
        if not self._failed:
            self._since = self._clock()
        self._failed += 1

    def answered(self) -> None:
        if self._failed:
            log.info(
                "calls to GitHub work again",
                extra={"failed_calls": self._failed, "failing_for_s": round(self._clock() - self._since, 1)},
            )
            self._failed = 0


class _VersionedClient(gidgethub.aiohttp.GitHubAPI):
    """Pins the REST API version, so answers keep the shape the App was written for, and
    turns rate limits into `GitHubRateLimited` with the wait GitHub asked for."""

    def __init__(self, *args, outage: GitHubOutage | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._outage = outage or GitHubOutage()

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        try:
            status, answer_headers, answer = await super()._request(
                method, url, {**headers, "x-github-api-version": API_VERSION}, body
            )
        except (aiohttp.ClientError, asyncio.TimeoutError):
            self._outage.failed()
            raise
        if status >= 500:
            self._outage.failed()
        else:
            self._outage.answered()
        # Routes from the API root: GitHub Enterprise Server's `/api/v3` prefix is not a route.
        path = urlsplit(url).path.removeprefix(urlsplit(self.base_url).path.rstrip("/"))
        metrics.GITHUB_REQUESTS.labels(method=method, route=metrics.github_route(path), status=str(status)).inc()
        remaining = answer_headers.get("x-ratelimit-remaining")
        if remaining is not None and remaining.isdigit():
            resource = answer_headers.get("x-ratelimit-resource", "core")[:20]
            metrics.RATE_LIMIT_REMAINING.labels(resource=resource).set(int(remaining))
        wait = rate_limit_wait(status, answer_headers, answer)
        if wait is not None:
            raise GitHubRateLimited(status=status, retry_after=wait[0], reason=wait[1])
        return status, answer_headers, answer


class AppClient(_VersionedClient):
    """Acts as the App itself: every request carries a current App JWT."""

    def __init__(
        self, session: aiohttp.ClientSession, requester: str, *, auth: AppAuth, base_url: str,
        outage: GitHubOutage | None = None,
    ) -> None:
        super().__init__(session, requester, base_url=base_url, outage=outage)
        self._auth = auth

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        if "authorization" not in headers:
            headers = {**headers, "authorization": f"bearer {self._auth.app_jwt()}"}
        return await super()._request(method, url, headers, body)


class InstallationClient(_VersionedClient):
    """Acts as one installation; its token is renewed before it expires and after a 401."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        requester: str,
        *,
        auth: AppAuth,
        app_client: AppClient,
        installation_id: int,
        oauth_token: str,
        base_url: str,
        outage: GitHubOutage | None = None,
    ) -> None:
        super().__init__(session, requester, oauth_token=oauth_token, base_url=base_url, outage=outage)
        self._auth = auth
        self._app_client = app_client
        self.installation_id = installation_id

    async def _current_token(self) -> str:
        self.oauth_token = await self._auth.installation_token(self._app_client, installation_id=self.installation_id)
        return self.oauth_token

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        sent = {**headers, "authorization": f"token {await self._current_token()}"}
        status, answer_headers, answer = await super()._request(method, url, sent, body)
        if status == 401:
            # A token GitHub no longer accepts (revoked, or the installation changed): one retry.
            self._auth.invalidate(self.installation_id)
            sent = {**headers, "authorization": f"token {await self._current_token()}"}
            status, answer_headers, answer = await super()._request(method, url, sent, body)
        return status, answer_headers, answer


@dataclass(frozen=True)
class TeamMemberships:
    """Of the teams the rules weigh: those a person is an active member of, and those whose
    membership GitHub would not show the App."""

    teams: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()


class GitHubApp:
    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        api_url: str,
        auth: AppAuth,
        user_agent: str = "pinkflow-bot",
        lookup_ttl: float = PERMISSION_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.auth = auth
        self.user_agent = user_agent
        self._session = session
        self._permissions: TTLCache[tuple[int, str, str], Permission] = TTLCache(
            maxsize=MAX_CACHED_LOOKUPS, ttl=lookup_ttl, timer=clock
        )
        self._memberships: TTLCache[tuple[str, str, str], bool] = TTLCache(
            maxsize=MAX_CACHED_LOOKUPS, ttl=lookup_ttl, timer=clock
        )
        self._rosters: TTLCache[tuple[int, str], Roster] = TTLCache(
            maxsize=MAX_CACHED_ROSTERS, ttl=lookup_ttl, timer=clock
        )
        self._roster_reads: dict[tuple[int, str], asyncio.Future[Roster]] = {}
        self._clock = clock
        self._app_answer: tuple[float, dict | Exception] | None = None  # (when GET /app was asked, what came back)
        self._app_lock = asyncio.Lock()
        self._app_description: dict | None = None  # GET /app's answer, once GitHub gave one
        self._outage = GitHubOutage(clock=clock)

    async def _asked_app(self) -> dict | Exception:
        """GitHub's answer to `GET /app` for these credentials, or why there is none; asked at
        most every REACHABILITY_TTL seconds, never longer than REACHABILITY_TIMEOUT. The health
        check and the setup page share it: both are public, so neither may ask more often."""
        async with self._app_lock:
            if self._app_answer is not None and self._clock() - self._app_answer[0] < REACHABILITY_TTL:
                return self._app_answer[1]
            answer: dict | Exception
            try:
                answer = await asyncio.wait_for(self.app_client().getitem("/app"), timeout=REACHABILITY_TIMEOUT)
            except Exception as error:  # kept and worded by the callers, whatever went wrong
                answer = error
            self._app_answer = (self._clock(), answer)
            return answer

    async def reachability(self) -> str:
        """"ok" when GitHub answers `GET /app` for these credentials, else why not."""
        answer = await self._asked_app()
        if not isinstance(answer, Exception):
            return "ok"
        if isinstance(answer, asyncio.TimeoutError):
            return f"unreachable: no answer within {REACHABILITY_TIMEOUT:g} s"
        if isinstance(answer, gidgethub.BadRequest):  # 4xx: reached, but the App is not accepted
            status = getattr(answer, "status_code", None)
            return f"refused: GitHub answered {int(status) if status else 'an error'}; check APP_ID and the private key"
        if isinstance(answer, jwt.PyJWTError):
            return "refused: the App's private key cannot sign a token; check PRIVATE_KEY"
        return f"unreachable: {type(answer).__name__}"

    async def _described_app(self) -> dict:
        """GitHub's description of the App (`GET /app`), kept once given: its slug and page do
        not change while it runs. Empty while GitHub does not say."""
        if self._app_description is None:
            answer = await self._asked_app()
            if isinstance(answer, dict):
                self._app_description = answer
        return self._app_description or {}

    async def app_page(self) -> str | None:
        """The App's page on GitHub, `html_url` of `GET /app` (`https://github.com/apps/SLUG`;
        GitHub Enterprise Server has its own); None while GitHub does not say."""
        url = (await self._described_app()).get("html_url")
        return url.rstrip("/") if isinstance(url, str) and url.startswith(("https://", "http://")) else None

    async def bot_login(self) -> str | None:
        """The login the App comments as (`SLUG[bot]`, from `GET /app`); None while GitHub does not say."""
        slug = (await self._described_app()).get("slug")
        return f"{slug}[bot]" if isinstance(slug, str) and slug else None

    def app_client(self) -> AppClient:
        return AppClient(self._session, self.user_agent, auth=self.auth, base_url=self.api_url, outage=self._outage)

    async def installation_client(self, installation_id: int) -> InstallationClient:
        app_client = self.app_client()
        token = await self.auth.installation_token(app_client, installation_id=installation_id)
        return InstallationClient(
            self._session,
            self.user_agent,
            auth=self.auth,
            app_client=app_client,
            installation_id=installation_id,
            oauth_token=token,
            base_url=self.api_url,
            outage=self._outage,
        )

    async def permission(
        self, gh: gidgethub.aiohttp.GitHubAPI, *, repo_full_name: str, login: str, installation_id: int
    ) -> Permission:
        """The person's level on the repository; someone GitHub does not know has none."""
        key = (installation_id, repo_full_name.lower(), login.lower())
        cached = self._permissions.get(key)
        if cached is not None:
            return cached
        listed = (await self.roster(gh, repo_full_name=repo_full_name, installation_id=installation_id)).get(login.lower())
        if listed is not None:
            return listed
        owner, repo = repo_full_name.split("/", 1)
        try:
            answer = await gh.getitem(
                "/repos/{owner}/{repo}/collaborators/{username}/permission",
                url_vars={"owner": owner, "repo": repo, "username": login},
            )
        except gidgethub.BadRequest as exc:
            if exc.status_code != 404:
                raise
            level = Permission.NONE
        else:
            level = permission_from_github(permission=answer.get("permission"), role_name=answer.get("role_name"))
        self._permissions[key] = level
        return level

    async def roster(self, gh: gidgethub.aiohttp.GitHubAPI, *, repo_full_name: str, installation_id: int) -> Roster:
        """The repository's collaborators, read at most once per `lookup_ttl`: one call
        settles the permission of everyone on it, so a crowd of first-time voters costs
        one call, not one each. Concurrent askers share one read."""
        key = (installation_id, repo_full_name.lower())
        cached = self._rosters.get(key)
        if cached is not None:
            return cached
        reading = self._roster_reads.get(key)
        if reading is None:
            reading = asyncio.ensure_future(self._read_roster(gh, repo_full_name=repo_full_name))
            self._roster_reads[key] = reading

            def done(task: asyncio.Future[Roster]) -> None:
                self._roster_reads.pop(key, None)
                if not task.cancelled() and task.exception() is None:
                    self._rosters[key] = task.result()

            reading.add_done_callback(done)
        # Shielded: one asker giving up does not cancel the read the others wait on.
        return await asyncio.shield(reading)

    async def _read_roster(self, gh: gidgethub.aiohttp.GitHubAPI, *, repo_full_name: str) -> Roster:
        owner, repo = repo_full_name.split("/", 1)
        try:
            page = await gh.getitem(
                "/repos/{owner}/{repo}/collaborators{?affiliation,per_page}",
                url_vars={"owner": owner, "repo": repo, "affiliation": "all", "per_page": str(ROSTER_PAGE)},
            )
        except gidgethub.BadRequest as exc:
            if exc.status_code in (403, 404):
                # Not allowed to list them (or the repository is gone): each person is
                # looked up on their own, as if the list were empty.
                log.info("repository collaborators not listed", extra={"repository": repo_full_name, "status": exc.status_code})
                return {}
            raise
        if not isinstance(page, list):
            return {}
        return {
            entry["login"].lower(): permission_from_collaborator(entry)
            for entry in page
            if isinstance(entry, dict) and isinstance(entry.get("login"), str)
        }

    async def teams_of(self, gh: gidgethub.aiohttp.GitHubAPI, *, login: str, teams: Iterable[str]) -> TeamMemberships:
        """Which of the `org/slug` teams (those the rules weigh) the person is an active member
        of, and which GitHub would not tell the App about."""
        found, unknown = [], []
        for team in sorted(teams):
            org, _, slug = team.partition("/")
            member = await self.team_member(gh, org=org, team_slug=slug, login=login)
            if member is None:
                unknown.append(team)
            elif member:
                found.append(team)
        return TeamMemberships(teams=tuple(found), unknown=tuple(unknown))

    async def team_member(
        self, gh: gidgethub.aiohttp.GitHubAPI, *, org: str, team_slug: str, login: str
    ) -> bool | None:
        """Whether the person is an active (not merely invited) member of the team; None when
        GitHub refuses to say (403: the installation lacks the members: read permission)."""
        key = (org.lower(), team_slug.lower(), login.lower())
        cached = self._memberships.get(key)
        if cached is not None:
            return cached
        try:
            answer = await gh.getitem(
                "/orgs/{org}/teams/{team_slug}/memberships/{username}",
                url_vars={"org": org, "team_slug": team_slug, "username": login},
            )
        except gidgethub.BadRequest as exc:
            if exc.status_code == 403:
                log.warning("team membership not shown to the App", extra={"team": f"{org}/{team_slug}"})
                return None
            if exc.status_code != 404:
                raise
            member = False
        else:
            member = answer.get("state") == "active"
        self._memberships[key] = member
        return member
