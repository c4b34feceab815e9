"""The fake GitHub server: lifecycle, request checking, auth, faults and state.

Every request goes through `_answer`: match an operation of GitHub's description,
check headers, authenticate, validate parameters and body, maybe inject a fault,
run the operation's handler (`routes.py`), and record the call. Whatever GitHub
would have refused is answered as GitHub would and also appended to `errors`, which
the `fake_github` fixture turns into a test failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import http
import json
import random
import re
import secrets
import string
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import jwt
from aiohttp import web
from multidict import CIMultiDict
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from . import objects
from .routes import DOCS, ROUTES, ApiRequest, Auth, Reply, error
from .spec import OpenApiSpec, Operation
from .web import add_web_routes

ROLES = ("admin", "maintain", "write", "triage", "read", "none")
SUPPORTED_API_VERSIONS = frozenset({"2022-11-28", "2026-03-10"})
MAX_JWT_LIFETIME = 600
ALLOWED_CLOCK_DRIFT = 60
RATE_LIMIT_WINDOW = 3600
SECONDARY_RATE_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID {request_id}."
)
RATE_LIMIT_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
# What `fault_rate` picks from: the answers a busy GitHub gives.
RANDOM_FAULTS: tuple[tuple[int, dict[str, str]], ...] = (
    (500, {}),
    (502, {}),
    (429, {"Retry-After": "1"}),
    (403, {"x-ratelimit-remaining": "0"}),
    (403, {"Retry-After": "1"}),
)


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # below the API root, so the same with or without a GHES prefix
    operation_id: str | None
    query: dict[str, str]
    json: Any
    status: int


@dataclass(frozen=True)
class IssuedToken:
    value: str = field(repr=False)
    installation_id: int
    expires_at: float
    repositories: frozenset[str] | None  # lower-case full names when the token was limited


@dataclass
class Fault:
    operation_id: str | None
    status: int
    times: int
    headers: dict[str, str]
    body: Any
    effect_applied: bool


@dataclass
class _Outcome:
    reply: Reply
    operation: Operation | None
    body: Any
    identity: str


class FakeGitHub:
    """GitHub's REST API for the operations the App calls, over real HTTP on 127.0.0.1."""

    def __init__(
        self,
        *,
        app_id: int = 4242,
        app_public_key_pem: bytes | str,
        spec_path: Path | None = None,
        path_prefix: str = "",
        validate_responses: bool = True,
        fault_seed: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app_id = app_id
        if isinstance(app_public_key_pem, str):
            app_public_key_pem = app_public_key_pem.encode()
        self.app_public_key_pem = app_public_key_pem
        self.spec = OpenApiSpec(spec_path)
        missing = set(self.spec.operations) - set(ROUTES)
        if missing:
            raise RuntimeError(f"the fake has no handler for {sorted(missing)}")
        self.path_prefix = "/" + path_prefix.strip("/") if path_prefix.strip("/") else ""
        self.validate_responses = validate_responses
        self.clock = clock

        self.app_slug = "pinkflow-bot"
        self.app_name = "Pinkflow"
        self.app_owner = "pinkflow"
        self.client_id = "Iv23liPinkflow0000001"
        self.app_permissions = {
            "checks": "write", "pull_requests": "write", "issues": "write", "deployments": "write",
            "contents": "read", "metadata": "read", "members": "read", "actions": "read",
        }
        self.app_events = [
            "check_run", "deployment", "deployment_protection_rule", "deployment_status",
            "issue_comment", "pull_request", "push",
        ]

        # Inspection
        self.errors: list[str] = []
        self.calls: list[Call] = []
        # Faults
        self.latency = 0.0
        self.fault_rate = 0.0
        # Share of calls that take effect but whose answer is lost (a 502 after the work).
        self.lost_answer_rate = 0.0
        # Share of calls answered only after `slow_delay` seconds: longer than a client's timeout.
        self.slow_rate = 0.0
        self.slow_delay = 5.0
        self.random = random.Random(fault_seed)
        self._faults: list[Fault] = []
        # Tokens
        self.token_ttl = 3600.0
        self.tokens_issued = 0
        self.tokens: dict[str, IssuedToken] = {}
        self.revoked_tokens: set[str] = set()
        self.rate_limit_per_hour = 5000
        self._rate_used: dict[str, tuple[int, int]] = {}  # identity -> (window reset, used)

        # State, keyed the way GitHub looks things up (lower-case names).
        self.installations: dict[int, dict[str, Any]] = {}
        self.repos: dict[str, dict[str, Any]] = {}
        self.repo_installation: dict[str, int] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.permissions: dict[tuple[str, str], str] = {}
        self.team_members: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.branches: dict[tuple[str, str], str] = {}
        self.files: dict[tuple[str, str, str], str] = {}
        self.pulls: dict[tuple[str, int], dict[str, Any]] = {}
        self.reviews: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.comments: dict[int, dict[str, Any]] = {}
        self.comment_issue: dict[int, tuple[str, int]] = {}
        self.reactions: dict[int, list[dict[str, Any]]] = {}  # comment id -> reactions
        self.check_runs: dict[int, dict[str, Any]] = {}
        self.check_run_repo: dict[int, str] = {}
        self.check_run_history: dict[int, list[dict[str, Any]]] = {}  # request bodies: create, then updates
        # The buttons last set; GitHub keeps them but never answers with them.
        self.check_run_actions: dict[int, list[dict[str, Any]]] = {}
        self.check_suites: dict[tuple[str, str], int] = {}
        self.deployments: dict[int, dict[str, Any]] = {}
        self.deployment_statuses: dict[int, list[dict[str, Any]]] = {}  # deployment id -> oldest first
        self.protection_reviews: list[dict[str, Any]] = []
        self.manifest_codes: dict[str, dict[str, Any]] = {}
        # What the web page for creating an App from a manifest was sent, oldest first.
        self.received_manifests: list[dict[str, Any]] = []
        # The key that page's codes hand out (None: a new one each time). Set it to the key the
        # fake verifies JWTs with, and the App registered through the page can call the API.
        self.manifest_pem: str | None = None

        self._last_id = 1_000_000
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._app_object: dict[str, Any] | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        # The web pages first: everything else is the REST API.
        add_web_routes(app, self)
        app.router.add_route("*", "/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        # Once started, on the same port again (after `stop_answering`).
        site = web.TCPSite(self._runner, "127.0.0.1", self._port or 0)
        await site.start()
        self._port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def stop_answering(self) -> None:
        """GitHub cannot be reached: its port is closed, so calls get "connection refused"
        until `answer_again()`, which opens the same port with the same state."""
        await self.close()

    async def answer_again(self) -> None:
        await self.start()

    async def __aenter__(self) -> FakeGitHub:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """The API root the App is pointed at (`GITHUB_API_URL`)."""
        if self._port is None:
            raise RuntimeError("start() the fake GitHub before using its URL or seeding it")
        return f"http://127.0.0.1:{self._port}{self.path_prefix}"

    @property
    def web_url(self) -> str:
        """GitHub's web host (`GITHUB_URL`): the pages people are sent to, such as the manifest flow's."""
        if self._port is None:
            raise RuntimeError("start() the fake GitHub before using its URL")
        return f"http://127.0.0.1:{self._port}"

    # ---------------------------------------------------------- small utilities
    def next_id(self) -> int:
        self._last_id += 1
        return self._last_id

    def now_iso(self) -> str:
        return objects.iso8601(self.clock())

    @property
    def app(self) -> dict[str, Any]:
        if self._app_object is None:
            self._app_object = objects.app_object(self)
        return self._app_object

    @property
    def bot_login(self) -> str:
        return f"{self.app_slug}[bot]"

    @property
    def bot(self) -> dict[str, Any]:
        return self.add_user(self.bot_login, type="Bot")

    def reject(self, message: str, *, field: str | None = None, resource: str | None = None) -> Reply:
        """A request GitHub itself would refuse with 422: answered so, and it fails the test."""
        self.errors.append(f"GitHub would refuse this request: {message}")
        detail = {"resource": resource or "Request", "code": "custom", "field": field or "", "message": message}
        return Reply(422, {"message": "Validation Failed", "documentation_url": DOCS, "status": "422", "errors": [detail]})

    # ------------------------------------------------------------------- seeding
    def add_user(self, login: str, *, type: str = "User") -> dict[str, Any]:
        """The user with this login, created on first use with an id that stays the same."""
        user = self.users.get(login.lower())
        if user is None:
            user = objects.user_object(self, login=login, user_id=self.next_id(), type=type)
            self.users[login.lower()] = user
        return user

    def _person(self, login: str) -> dict[str, Any]:
        """A user by login; `name[bot]` logins are bots, as on GitHub."""
        return self.add_user(login, type="Bot" if login.endswith("[bot]") else "User")

    def add_installation(
        self, installation_id: int, account: str, *, suspended: bool = False, account_type: str = "Organization"
    ) -> dict[str, Any]:
        owner = self.add_user(account, type=account_type)
        installation = objects.installation_object(self, installation_id=installation_id, account=owner)
        self.installations[installation_id] = installation
        self.set_suspended(installation_id, suspended=suspended)
        return installation

    def set_suspended(self, installation_id: int, *, suspended: bool) -> None:
        installation = self.installations[installation_id]
        installation["suspended_at"] = self.now_iso() if suspended else None
        installation["suspended_by"] = self.add_user("octocat") if suspended else None

    def add_repo(
        self, full_name: str, *, installation_id: int, private: bool = False, default_branch: str = "main"
    ) -> dict[str, Any]:
        if installation_id not in self.installations:
            raise ValueError(f"add_installation({installation_id}, ...) first")
        owner_login = full_name.split("/")[0]
        installation_account = self.installations[installation_id]["account"]
        owned_by_account = installation_account["login"].lower() == owner_login.lower()
        owner_type = installation_account["type"] if owned_by_account else "User"
        repo = objects.repository_object(
            self,
            full_name=full_name,
            repo_id=self.next_id(),
            owner=self.add_user(owner_login, type=owner_type),
            private=private,
            default_branch=default_branch,
        )
        self.repos[full_name.lower()] = repo
        self.repo_installation[full_name.lower()] = installation_id
        self.branch_sha(full_name, default_branch)
        return repo

    def set_permission(self, full_name: str, login: str, role: str) -> None:
        """`role` is the repository role GitHub reports as `role_name`."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        self._repo(full_name)
        self.add_user(login)
        self.permissions[(full_name.lower(), login.lower())] = role

    def has_role(self, full_name: str, login: str) -> bool:
        """Whether the person was given a role on the repository (set_permission)."""
        return self.permissions.get((full_name.lower(), login.lower()), "none") != "none"

    def role_of(self, full_name: str, login: str) -> str:
        role = self.permissions.get((full_name.lower(), login.lower()))
        if role is not None:
            return role
        repo = self._repo(full_name)
        if repo["owner"]["login"].lower() == login.lower():
            return "admin"
        return "none" if repo["private"] else "read"

    def add_team_member(
        self, org: str, slug: str, login: str, role: str = "member", *, state: str = "active"
    ) -> None:
        self.add_user(login)
        org_id = self.add_user(org, type="Organization")["id"]
        self.team_members[(org.lower(), slug.lower(), login.lower())] = {
            "url": f"{self.url}/organizations/{org_id}/team/{slug}/memberships/{login}",
            "role": role,
            "state": state,
        }

    def set_branch(self, full_name: str, branch: str, sha: str) -> None:
        self.branches[(full_name.lower(), branch)] = sha

    def branch_sha(self, full_name: str, branch: str) -> str:
        """A branch's head; a stable made-up commit for branches nobody set."""
        key = (full_name.lower(), branch)
        if key not in self.branches:
            self.branches[key] = hashlib.sha1(f"{full_name.lower()}:{branch}".encode()).hexdigest()
        return self.branches[key]

    def resolve_ref(self, full_name: str, ref: str) -> str | None:
        """The commit a ref names: a full SHA, a branch, `heads/<b>` or `refs/heads/<b>`."""
        if re.fullmatch(r"[0-9a-f]{40}", ref):
            return ref
        branch = ref.removeprefix("refs/").removeprefix("heads/")
        return self.branches.get((full_name.lower(), branch))

    def set_file(self, full_name: str, path: str, text: str, ref: str | None = None) -> None:
        repo = self._repo(full_name)
        branch = ref or repo["default_branch"]
        sha = self.resolve_ref(full_name, branch) or self.branch_sha(full_name, branch)
        self.files[(full_name.lower(), sha, path.strip("/"))] = text

    def add_pull(
        self,
        full_name: str,
        number: int,
        *,
        head_sha: str,
        author: str,
        state: str = "open",
        head_ref: str = "feature",
        base_ref: str = "main",
        title: str | None = None,
        body: str | None = None,
        from_fork: bool = False,
    ) -> dict[str, Any]:
        """A pull request; `from_fork`: its head branch is in the author's fork, so the head
        commit is not in this repository (GitHub's commits/{sha}/pulls does not find it)."""
        repo = self._repo(full_name)
        if not from_fork:
            self.set_branch(full_name, head_ref, head_sha)
        pull = objects.pull_object(
            self,
            repo=repo,
            number=number,
            pull_id=self.next_id(),
            author=self._person(author),
            head_sha=head_sha,
            head_ref=head_ref,
            base_ref=base_ref,
            state=state,
            title=title or f"Change number {number}",
            body=body,
        )
        if from_fork:
            fork = objects.repository_object(
                self, full_name=f"{author}/{repo['name']}", repo_id=self.next_id(), owner=self._person(author),
                private=False, default_branch=repo["default_branch"],
            )
            fork["fork"] = True
            pull["head"] = objects.branch_object(self, repo=fork, ref=head_ref, sha=head_sha)
        self.pulls[(full_name.lower(), number)] = pull
        return pull

    def push(self, full_name: str, number: int, *, head_sha: str) -> dict[str, Any]:
        """A new commit on the pull request's branch."""
        pull = self.pulls[(full_name.lower(), number)]
        pull["head"]["sha"] = head_sha
        pull["updated_at"] = self.now_iso()
        self.set_branch(full_name, pull["head"]["ref"], head_sha)
        return pull

    def close_pull(self, full_name: str, number: int, *, merged: bool = False) -> dict[str, Any]:
        pull = self.pulls[(full_name.lower(), number)]
        now = self.now_iso()
        pull.update(state="closed", closed_at=now, updated_at=now)
        if merged:
            merge_sha = hashlib.sha1(f"merge:{pull['id']}".encode()).hexdigest()
            merged_by = self.add_user(self._repo(full_name)["owner"]["login"])
            pull.update(merged=True, merged_at=now, merge_commit_sha=merge_sha, merged_by=merged_by)
            self.set_branch(full_name, pull["base"]["ref"], merge_sha)
        return pull

    def reopen_pull(self, full_name: str, number: int) -> dict[str, Any]:
        pull = self.pulls[(full_name.lower(), number)]
        pull.update(state="open", closed_at=None, updated_at=self.now_iso())
        return pull

    def pulls_of(self, full_name: str) -> list[dict[str, Any]]:
        return [p for (repo, _), p in self.pulls.items() if repo == full_name.lower()]

    def add_review(
        self, full_name: str, number: int, *, author: str, state: str = "APPROVED", body: str = ""
    ) -> dict[str, Any]:
        pull = self.pulls[(full_name.lower(), number)]
        review = objects.review_object(
            self,
            pull=pull,
            review_id=self.next_id(),
            author=self._person(author),
            state=state,
            body=body,
            commit_id=pull["head"]["sha"],
        )
        self.reviews.setdefault((full_name.lower(), number), []).append(review)
        return review

    def add_comment(self, full_name: str, number: int, *, author: str, body: str) -> dict[str, Any]:
        """A comment on the pull request, as if `author` had written it on github.com."""
        repo = self._repo(full_name)
        if (full_name.lower(), number) not in self.pulls:
            raise ValueError(f"add_pull({full_name!r}, {number}, ...) first")
        comment = objects.comment_object(
            self, repo=repo, number=number, comment_id=self.next_id(), author=self._person(author), body=body
        )
        self.comments[comment["id"]] = comment
        self.comment_issue[comment["id"]] = (full_name.lower(), number)
        self.pulls[(full_name.lower(), number)]["comments"] += 1
        return comment

    def delete_comment(self, comment_id: int) -> dict[str, Any]:
        """Deletes a comment, as someone with the right to do so would on github.com; returns it."""
        comment = self.comments.pop(comment_id)
        full_name, number = self.comment_issue.pop(comment_id)
        self.reactions.pop(comment_id, None)
        self.pulls[(full_name, number)]["comments"] -= 1
        return comment

    def author_association(self, full_name: str, login: str) -> str:
        repo = self.repos.get(full_name.lower())
        if repo and repo["owner"]["login"].lower() == login.lower():
            return "OWNER"
        if self.permissions.get((full_name.lower(), login.lower()), "none") != "none":
            return "COLLABORATOR"
        return "NONE"

    def add_deployment(
        self,
        full_name: str,
        *,
        sha: str,
        environment: str,
        ref: str | None = None,
        creator: str = "vercel[bot]",
        task: str = "deploy",
        payload: Any = None,
        description: str | None = "",
        transient_environment: bool = False,
        production_environment: bool | None = None,
    ) -> dict[str, Any]:
        repo = self._repo(full_name)
        deployment = objects.deployment_object(
            self,
            repo=repo,
            deployment_id=self.next_id(),
            sha=sha,
            ref=ref or sha,
            task=task,
            environment=environment,
            payload={} if payload is None else payload,
            description=description,
            creator=self._person(creator),
            transient_environment=transient_environment,
            production_environment=(
                environment == "production" if production_environment is None else production_environment
            ),
        )
        self.deployments[deployment["id"]] = deployment
        self.deployment_statuses[deployment["id"]] = []
        return deployment

    def add_deployment_status(
        self,
        deployment_id: int,
        *,
        state: str,
        creator: str | None = None,
        description: str = "",
        environment: str | None = None,
        target_url: str = "",
        environment_url: str = "",
        auto_inactive: bool = True,
    ) -> dict[str, Any]:
        deployment = self.deployments[deployment_id]
        history = self.deployment_statuses[deployment_id]
        environment = environment or (history[-1]["environment"] if history else deployment["environment"])
        status = objects.deployment_status_object(
            self,
            deployment=deployment,
            status_id=self.next_id(),
            state=state,
            creator=self._person(creator or deployment["creator"]["login"]),
            description=description,
            environment=environment,
            target_url=target_url,
            log_url=target_url,
            environment_url=environment_url,
        )
        history.append(status)
        deployment["updated_at"] = status["created_at"]
        if state == "success" and auto_inactive:
            self._deactivate_earlier(deployment, creator=status["creator"]["login"])
        return status

    def _deactivate_earlier(self, deployment: dict[str, Any], *, creator: str) -> None:
        """GitHub's `auto_inactive`: earlier successful deployments to the same environment go inactive."""
        for other in self.deployments.values():
            if (
                other["id"] < deployment["id"]
                and other["repository_url"] == deployment["repository_url"]
                and other["environment"] == deployment["environment"]
                and not other["production_environment"]
                and not other["transient_environment"]
                and self.deployment_statuses[other["id"]]
                and self.deployment_statuses[other["id"]][-1]["state"] == "success"
            ):
                self.add_deployment_status(other["id"], state="inactive", creator=creator, auto_inactive=False)

    def deployments_of(self, full_name: str) -> list[dict[str, Any]]:
        url = self._repo(full_name)["url"]
        return [d for d in self.deployments.values() if d["repository_url"] == url]

    def add_manifest_code(
        self, code: str, *, pem: str | None = None, webhook_secret: str | None = None
    ) -> dict[str, Any]:
        """The credentials `POST /app-manifests/{code}/conversions` will hand out, once."""
        if pem is None:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
            ).decode()
        credentials = dict(
            self.app,
            client_id=self.client_id,
            client_secret=secrets.token_hex(20),
            webhook_secret=webhook_secret if webhook_secret is not None else secrets.token_hex(20),
            pem=pem,
        )
        self.manifest_codes[code] = credentials
        return credentials

    def _repo(self, full_name: str) -> dict[str, Any]:
        try:
            return self.repos[full_name.lower()]
        except KeyError:
            raise ValueError(f"add_repo({full_name!r}, ...) first") from None

    # ---------------------------------------------------------------- inspection
    def calls_for(self, operation_id: str) -> list[Call]:
        if operation_id not in self.spec.operations:
            raise ValueError(f"no operation {operation_id!r} in the description")
        return [c for c in self.calls if c.operation_id == operation_id]

    def check_runs_for(self, full_name: str, head_sha: str, name: str | None = None) -> list[dict[str, Any]]:
        """Check runs on a commit, oldest first."""
        return [
            run
            for run_id, run in sorted(self.check_runs.items())
            if self.check_run_repo[run_id] == full_name.lower()
            and run["head_sha"] == head_sha
            and name in (None, run["name"])
        ]

    def comments_on(self, full_name: str, number: int) -> list[dict[str, Any]]:
        """Comments on a pull request, oldest first, as GitHub lists them."""
        key = (full_name.lower(), number)
        return [c for cid, c in sorted(self.comments.items()) if self.comment_issue[cid] == key]

    def reaction_contents(self, comment_id: int) -> list[str]:
        return [r["content"] for r in self.reactions.get(comment_id, [])]

    def statuses_of(self, deployment_id: int) -> list[dict[str, Any]]:
        """A deployment's statuses, oldest first."""
        return list(self.deployment_statuses.get(deployment_id, []))

    # -------------------------------------------------------------------- tokens
    def issue_token(self, *, installation_id: int, repositories: set[str] | None) -> IssuedToken:
        value = "ghs_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))
        token = IssuedToken(
            value=value,
            installation_id=installation_id,
            expires_at=float(int(self.clock() + self.token_ttl)),
            repositories=None if repositories is None else frozenset(repositories),
        )
        self.tokens[value] = token
        self.tokens_issued += 1
        return token

    def revoke_tokens(self) -> None:
        """Make every token issued so far fail with 401, as after a revocation; not a test failure."""
        self.revoked_tokens.update(self.tokens)

    # ---------------------------------------------------------------------- faults
    def fail(
        self,
        operation_id: str | None = None,
        *,
        status: int,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        effect_applied: bool = False,
    ) -> None:
        """Answer the next `times` matching requests with `status`.

        `effect_applied=True` lets the request take effect before the failure is
        answered, as when GitHub did the work but the answer got lost.
        """
        if operation_id is not None and operation_id not in self.spec.operations:
            raise ValueError(f"no operation {operation_id!r} in the description")
        self._faults.append(Fault(operation_id, status, times, dict(headers or {}), body, effect_applied))

    def stop_failing(self) -> None:
        """Faults not answered yet are dropped: the requests after this are answered as usual."""
        self._faults.clear()

    def _take_fault(self, operation_id: str) -> Fault | None:
        for fault in self._faults:
            if fault.operation_id in (None, operation_id):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        if self.fault_rate and self.random.random() < self.fault_rate:
            status, headers = self.random.choice(RANDOM_FAULTS)
            return Fault(None, status, 1, dict(headers), None, effect_applied=False)
        if self.lost_answer_rate and self.random.random() < self.lost_answer_rate:
            return Fault(None, 502, 1, {}, None, effect_applied=True)
        return None

    def _fault_reply(self, fault: Fault, identity: str, request_id: str) -> Reply:
        headers = dict(fault.headers)
        lowered = {k.lower(): v for k, v in headers.items()}
        primary_limit = lowered.get("x-ratelimit-remaining") == "0"
        if primary_limit:
            # An exhausted quota: say when it comes back, as GitHub does.
            defaults = {
                "x-ratelimit-reset": str(int(self.clock()) + 1),
                "x-ratelimit-used": str(self.rate_limit_per_hour),
            }
            headers.update({k: v for k, v in defaults.items() if k not in lowered})
        body = fault.body
        if body is None:
            if primary_limit:
                who = identity.replace("installation:", "installation ID ") if identity != "app" else "this App"
                body = {"message": f"API rate limit exceeded for {who}.", "documentation_url": RATE_LIMIT_DOCS}
            elif fault.status in (403, 429):
                message = SECONDARY_RATE_LIMIT_MESSAGE.format(request_id=request_id)
                body = {"message": message, "documentation_url": RATE_LIMIT_DOCS}
            elif fault.status == 401:
                body = {"message": "Bad credentials", "documentation_url": DOCS}
            else:
                body = {"message": http.HTTPStatus(fault.status).phrase}
        return Reply(fault.status, body, headers)

    # ------------------------------------------------------------------ rate limit
    def rate_limit_state(self, identity: str) -> dict[str, int]:
        limit = 60 if identity == "anonymous" else self.rate_limit_per_hour
        reset, used = self._rate_used.get(identity, (0, 0))
        now = int(self.clock())
        if now >= reset:
            reset, used = now + RATE_LIMIT_WINDOW, 0
        self._rate_used[identity] = (reset, used)
        return {"limit": limit, "used": used, "remaining": max(limit - used, 0), "reset": reset}

    def _rate_limit_headers(self, identity: str, *, count: bool) -> dict[str, str]:
        state = self.rate_limit_state(identity)
        if count:
            self._rate_used[identity] = (state["reset"], state["used"] + 1)
            state = self.rate_limit_state(identity)
        return {
            "x-ratelimit-limit": str(state["limit"]),
            "x-ratelimit-remaining": str(state["remaining"]),
            "x-ratelimit-reset": str(state["reset"]),
            "x-ratelimit-used": str(state["used"]),
            "x-ratelimit-resource": "core",
        }

    # --------------------------------------------------------------------- serving
    async def _serve(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._respond(request)
        except Exception:
            # A defect of the fake must fail the test, not hide behind aiohttp's own 500.
            self.errors.append(f"{request.method} {request.path_qs}: the fake crashed:\n{traceback.format_exc()}")
            return web.Response(status=500, text='{"message": "Server Error"}', content_type="application/json")

    async def _respond(self, request: web.Request) -> web.StreamResponse:
        raw_body = await request.read()
        request_id = f"{secrets.token_hex(2).upper()}:{secrets.token_hex(3).upper()}:{secrets.token_hex(4).upper()}"
        outcome = self._answer(request, raw_body, request_id)
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.slow_rate and self.random.random() < self.slow_rate:
            await asyncio.sleep(self.slow_delay)

        reply = outcome.reply
        headers = CIMultiDict({"X-GitHub-Request-Id": request_id, "X-GitHub-Api-Version-Selected": "2022-11-28"})
        # GitHub does not count calls to /rate_limit against the limit.
        counted = outcome.operation is not None and outcome.operation.operation_id != "rate-limit/get"
        # Item by item: a fault's `X-RateLimit-Remaining` must replace `x-ratelimit-remaining`.
        for name, value in [*self._rate_limit_headers(outcome.identity, count=counted).items(), *reply.headers.items()]:
            headers[name] = value
        self.calls.append(
            Call(
                method=request.method,
                path=self._api_path(request) or request.path,
                operation_id=outcome.operation.operation_id if outcome.operation else None,
                query=dict(request.query),
                json=outcome.body,
                status=reply.status,
            )
        )
        if reply.status == 204:
            return web.Response(status=204, headers=headers)
        if reply.text is not None:
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return web.Response(status=reply.status, body=reply.text.encode(), headers=headers)
        headers.setdefault("Content-Type", "application/json; charset=utf-8")
        headers.setdefault("X-GitHub-Media-Type", "github.v3; format=json")
        return web.Response(status=reply.status, body=json.dumps(reply.body).encode(), headers=headers)

    def _api_path(self, request: web.Request) -> str | None:
        path = request.path
        if not self.path_prefix:
            return path
        if path == self.path_prefix or path.startswith(self.path_prefix + "/"):
            return path[len(self.path_prefix) :] or "/"
        return None

    def _answer(self, request: web.Request, raw_body: bytes, request_id: str) -> _Outcome:
        described = f"{request.method} {request.path_qs}"
        path = self._api_path(request)
        if path is None:
            self.errors.append(f"{described}: outside the API root {self.path_prefix}")
            return _Outcome(error(404, "Not Found"), None, None, "anonymous")
        operation, path_params, path_known = self.spec.match(request.method, path)
        if operation is None:
            other = " (the path exists for other methods)" if path_known else ""
            self.errors.append(f"{described}: no such operation in GitHub's description{other}")
            return _Outcome(error(404, "Not Found"), None, None, "anonymous")
        described = f"{operation.operation_id} ({described})"

        problems = self._header_problems(request)
        if problems:
            self.errors += [f"{described}: {message}" for _, message in problems]
            status, message = problems[0]
            return _Outcome(error(status, message), operation, None, "anonymous")

        identity, installation_id, refusal = self._authenticate(request, operation, path_params, described)
        if refusal is not None:
            return _Outcome(refusal, operation, None, identity)

        checked = self.spec.check_request(
            operation,
            path_params=path_params,
            query=list(request.query.items()),
            body=raw_body,
            content_type=request.headers.get("Content-Type", ""),
        )
        if checked.errors:
            self.errors += [f"{described}: {p}" for p in checked.errors]
            refusal = error(422, "Invalid request.\n\n" + "\n".join(checked.errors))
            return _Outcome(refusal, operation, checked.body, identity)

        fault = self._take_fault(operation.operation_id)
        if fault is not None and not fault.effect_applied:
            return _Outcome(self._fault_reply(fault, identity, request_id), operation, checked.body, identity)

        api_request = ApiRequest(
            operation_id=operation.operation_id,
            params=checked.path_params,
            query=checked.query,
            body=checked.body,
            url=request.url,
            accept=request.headers.get("Accept", ""),
            installation_id=installation_id,
            identity=identity,
        )
        try:
            reply = ROUTES[operation.operation_id].handler(self, api_request)
        except Exception:
            self.errors.append(f"{described}: the fake crashed:\n{traceback.format_exc()}")
            return _Outcome(error(500, "Server Error"), operation, checked.body, identity)
        if fault is not None:
            return _Outcome(self._fault_reply(fault, identity, request_id), operation, checked.body, identity)
        if self.validate_responses and reply.text is None and reply.body is not None:
            pointer = self.spec.response_schema_pointer(operation, reply.status)
            if pointer is not None:
                for problem in self.spec.schema_errors(reply.body, pointer=pointer):
                    self.errors.append(
                        f"{described}: the fake's {reply.status} answer does not match GitHub's schema: {problem}"
                    )
        return _Outcome(reply, operation, checked.body, identity)

    def _header_problems(self, request: web.Request) -> list[tuple[int, str]]:
        """(status GitHub answers, what is wrong) for each header GitHub would not accept."""
        problems = []
        media_types = [part.split(";")[0].strip().lower() for part in request.headers.get("Accept", "").split(",")]
        if not any(m.startswith("application/vnd.github") or m == "application/json" for m in media_types):
            accept = request.headers.get("Accept")
            problems.append((422, f"Accept is {accept!r}, not GitHub's media type (application/vnd.github+json)"))
        version = request.headers.get("X-GitHub-Api-Version")
        if version is not None and version not in SUPPORTED_API_VERSIONS:
            problems.append((400, f"API version {version!r} is not supported"))
        if not request.headers.get("User-Agent"):
            problems.append((403, "no User-Agent header; GitHub refuses such requests"))
        return problems

    # ------------------------------------------------------------------------ auth
    def _authenticate(
        self, request: web.Request, operation: Operation, path_params: dict[str, str], described: str
    ) -> tuple[str, int | None, Reply | None]:
        """(rate-limit identity, installation id, refusal or None)."""
        needed = ROUTES[operation.operation_id].auth
        scheme, _, credential = request.headers.get("Authorization", "").strip().partition(" ")
        scheme, credential = scheme.lower(), credential.strip()

        def unauthorized(reason: str) -> tuple[str, None, Reply]:
            self.errors.append(f"{described}: {reason}")
            return "anonymous", None, error(401, "Bad credentials")

        if needed is Auth.NONE or (needed is Auth.ANY and not scheme):
            return "anonymous", None, None
        if needed is Auth.APP or (needed is Auth.ANY and scheme == "bearer" and credential not in self.tokens):
            if scheme != "bearer" or not credential:
                return unauthorized(f"needs the App's JWT ('Bearer <jwt>'), got {scheme or 'no'} credentials")
            problem = self._jwt_problem(credential)
            if problem:
                return unauthorized(f"App JWT refused: {problem}")
            return "app", None, None

        if scheme not in ("token", "bearer") or not credential:
            return unauthorized(f"needs an installation token ('token <t>'), got {scheme or 'no'} credentials")
        token = self.tokens.get(credential)
        if token is None:
            if self._jwt_problem(credential) is None:
                return unauthorized("an App JWT cannot call this endpoint; use an installation token")
            return unauthorized("the token is not one this GitHub issued")
        identity = f"installation:{token.installation_id}"
        if credential in self.revoked_tokens:
            return identity, None, error(401, "Bad credentials")
        if token.expires_at <= self.clock():
            return unauthorized(f"the installation token expired {self.clock() - token.expires_at:.0f} s ago")
        installation = self.installations[token.installation_id]
        if installation["suspended_at"]:
            return identity, None, error(403, "This installation has been suspended")
        problem = self._scope_problem(token, path_params)
        if problem:
            self.errors.append(f"{described}: {problem}")
            return identity, None, error(403, "Resource not accessible by integration")
        return identity, token.installation_id, None

    def _jwt_problem(self, token: str) -> str | None:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return "not a JWT"
        if header.get("alg") != "RS256":
            return f"signed with {header.get('alg')}, GitHub requires RS256"
        try:
            claims = jwt.decode(
                token,
                self.app_public_key_pem,
                algorithms=["RS256"],
                # The claims are checked below against the fake's clock, with GitHub's rules.
                options={key: False for key in ("verify_exp", "verify_iat", "verify_nbf", "verify_iss", "verify_aud")},
            )
        except jwt.InvalidSignatureError:
            return "the signature does not verify with the App's public key"
        except jwt.PyJWTError as exc:
            return f"cannot be decoded: {exc}"
        iat, exp, iss = claims.get("iat"), claims.get("exp"), claims.get("iss")
        if not isinstance(iat, int) or not isinstance(exp, int):
            return f"iat and exp must be integers, got iat={iat!r} exp={exp!r}"
        if str(iss) != str(self.app_id):
            return f"iss is {iss!r}, not the App id {self.app_id}"
        now = self.clock()
        if exp - iat > MAX_JWT_LIFETIME:
            return f"lives {exp - iat} s (exp - iat); GitHub allows at most {MAX_JWT_LIFETIME}"
        if exp <= now:
            return f"expired {now - exp:.0f} s ago"
        if iat > now + ALLOWED_CLOCK_DRIFT:
            return f"iat is {iat - now:.0f} s in the future"
        return None

    def _scope_problem(self, token: IssuedToken, path_params: dict[str, str]) -> str | None:
        if "owner" in path_params and "repo" in path_params:
            full_name = f"{path_params['owner']}/{path_params['repo']}".lower()
            owner_installation = self.repo_installation.get(full_name)
            if owner_installation is not None and owner_installation != token.installation_id:
                return (
                    f"a token of installation {token.installation_id} used on {full_name}, "
                    f"which installation {owner_installation} has"
                )
            limited = token.repositories is not None and full_name not in token.repositories
            if owner_installation is not None and limited:
                return f"a token limited to {sorted(token.repositories or ())} used on {full_name}"
        if "org" in path_params:
            account = self.installations[token.installation_id]["account"]["login"]
            if account.lower() != path_params["org"].lower():
                return (
                    f"a token of installation {token.installation_id} (on {account}) "
                    f"used on the organization {path_params['org']}"
                )
        return None
