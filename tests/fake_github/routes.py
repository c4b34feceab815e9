"""What the fake GitHub does for each operation; the route table is at the end.

Handlers are plain functions `(gh, request) -> Reply`. They run only after the request
matched an operation of the description, passed its schemas and authenticated, so
they deal with state alone: a missing repository or comment is GitHub's 404, a rule
GitHub enforces beyond the schema is `gh.reject(...)` (a 422 that fails the test).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable

from yarl import URL

from . import objects

if TYPE_CHECKING:
    from .server import FakeGitHub

DOCS = "https://docs.github.com/rest"
MAX_COMMENT_LENGTH = 65536
# The description says 65535 characters (maxLength); GitHub counts UTF-8 bytes and answers
# 422 "summary exceeds a maximum bytesize of 65535" (github/docs#35252).
MAX_CHECK_RUN_OUTPUT_BYTES = 65535
SHA = re.compile(r"[0-9a-f]{40}")
PERMISSION_LEVELS = {"read": 1, "write": 2, "admin": 3}


class Auth(Enum):
    APP = "the App's JWT"
    INSTALLATION = "an installation token"
    ANY = "a JWT, an installation token, or nothing"
    NONE = "nothing"


@dataclass(frozen=True)
class ApiRequest:
    operation_id: str
    params: dict[str, Any]
    query: dict[str, Any]
    body: Any
    url: URL  # as the client addressed it, for `Link` headers
    accept: str
    installation_id: int | None  # whose token authenticated the call
    identity: str  # whose rate limit the call counts against


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    text: str | None = None  # a non-JSON answer, such as a file's raw contents


def error(status: int, message: str, *, docs: str = DOCS) -> Reply:
    return Reply(status, {"message": message, "documentation_url": docs, "status": str(status)})


def not_found() -> Reply:
    return error(404, "Not Found")


def paginate(request: ApiRequest, items: list[Any], *, wrap: Callable[[list[Any]], Any] | None = None) -> Reply:
    """One page of `items` with GitHub's `Link` header (prev, next, last, first)."""
    per_page = min(max(int(request.query.get("per_page", 30)), 1), 100)
    page = max(int(request.query.get("page", 1)), 1)
    last = max((len(items) + per_page - 1) // per_page, 1)
    chunk = items[(page - 1) * per_page : page * per_page]

    def link(number: int, rel: str) -> str:
        return f'<{request.url.update_query(page=number)}>; rel="{rel}"'

    links = []
    if page > 1:
        links.append(link(min(page - 1, last), "prev"))
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    if page > 1:
        links.append(link(1, "first"))
    headers = {"Link": ", ".join(links)} if links else {}
    return Reply(200, wrap(chunk) if wrap else chunk, headers)


def repo_of(gh: FakeGitHub, request: ApiRequest) -> dict[str, Any] | None:
    return gh.repos.get(f"{request.params['owner']}/{request.params['repo']}".lower())


# --------------------------------------------------------------------------- the App


def get_authenticated_app(gh: FakeGitHub, request: ApiRequest) -> Reply:
    return Reply(200, gh.app)


def list_installations(gh: FakeGitHub, request: ApiRequest) -> Reply:
    return paginate(request, list(gh.installations.values()))


def get_repo_installation(gh: FakeGitHub, request: ApiRequest) -> Reply:
    repo = repo_of(gh, request)
    if repo is None:
        return not_found()
    return Reply(200, gh.installations[gh.repo_installation[repo["full_name"].lower()]])


def create_installation_token(gh: FakeGitHub, request: ApiRequest) -> Reply:
    installation = gh.installations.get(request.params["installation_id"])
    if installation is None:
        return not_found()
    if installation["suspended_at"]:
        return error(403, "This installation has been suspended")
    body = request.body or {}
    installed = [r for r in gh.repos.values() if gh.repo_installation[r["full_name"].lower()] == installation["id"]]
    limited_to: list[dict[str, Any]] | None = None
    if "repositories" in body or "repository_ids" in body:
        names = {n.lower() for n in body.get("repositories", [])}
        ids = set(body.get("repository_ids", []))
        limited_to = [r for r in installed if r["name"].lower() in names or r["id"] in ids]
        if len(limited_to) != len(names) + len(ids):
            return gh.reject(
                "There is at least one repository that does not exist or is not accessible to the parent installation."
            )
    granted = installation["permissions"]
    for name, level in (body.get("permissions") or {}).items():
        if PERMISSION_LEVELS.get(level, 9) > PERMISSION_LEVELS.get(granted.get(name, ""), 0):
            return gh.reject("The permissions requested are not granted to this installation.")
    permissions = body.get("permissions") or dict(granted)
    token = gh.issue_token(
        installation_id=installation["id"],
        repositories=None if limited_to is None else {r["full_name"].lower() for r in limited_to},
    )
    answer: dict[str, Any] = {
        "token": token.value,
        "expires_at": objects.iso8601(token.expires_at),
        "permissions": permissions,
        "repository_selection": "all" if limited_to is None else "selected",
    }
    if limited_to is not None:
        answer["repositories"] = limited_to
    return Reply(201, answer)


def create_from_manifest(gh: FakeGitHub, request: ApiRequest) -> Reply:
    credentials = gh.manifest_codes.pop(request.params["code"], None)
    if credentials is None:
        return not_found()
    return Reply(201, credentials)


# ------------------------------------------------------------------ people and teams


def get_collaborator_permission(gh: FakeGitHub, request: ApiRequest) -> Reply:
    repo = repo_of(gh, request)
    user = gh.users.get(request.params["username"].lower())
    if repo is None or user is None:
        return not_found()
    role = gh.role_of(repo["full_name"], user["login"])
    collaborator = dict(user, role_name=role, permissions=_permission_flags(role))
    return Reply(200, {"permission": objects.LEGACY_PERMISSION[role], "role_name": role, "user": collaborator})


def list_collaborators(gh: FakeGitHub, request: ApiRequest) -> Reply:
    """Everyone with access to the repository beyond a public repository's read: its
    owner when that is a person, and everyone given a role."""
    repo = repo_of(gh, request)
    if repo is None:
        return not_found()
    wanted = request.query.get("permission")
    collaborators = []
    for user in sorted(gh.users.values(), key=lambda u: u["id"]):
        is_owner = user["login"].lower() == repo["owner"]["login"].lower()
        if user["type"] != "User" or not (is_owner or gh.has_role(repo["full_name"], user["login"])):
            continue
        role = gh.role_of(repo["full_name"], user["login"])
        flags = _permission_flags(role)
        if wanted and not flags.get(wanted):
            continue
        collaborators.append(dict(user, role_name=role, permissions=flags))
    return paginate(request, collaborators)


def _permission_flags(role: str) -> dict[str, bool]:
    order = ["read", "triage", "write", "maintain", "admin"]
    rank = order.index(role) + 1 if role in order else 0
    return {"pull": rank >= 1, "triage": rank >= 2, "push": rank >= 3, "maintain": rank >= 4, "admin": rank >= 5}


def get_team_membership(gh: FakeGitHub, request: ApiRequest) -> Reply:
    org, slug, login = (request.params[k] for k in ("org", "team_slug", "username"))
    membership = gh.team_members.get((org.lower(), slug.lower(), login.lower()))
    if membership is None:
        return not_found()
    return Reply(200, dict(membership))


# ------------------------------------------------------------------- repositories


def get_repo(gh: FakeGitHub, request: ApiRequest) -> Reply:
    repo = repo_of(gh, request)
    return Reply(200, repo) if repo else not_found()


def get_content(gh: FakeGitHub, request: ApiRequest) -> Reply:
    repo = repo_of(gh, request)
    if repo is None:
        return not_found()
    ref = request.query.get("ref") or repo["default_branch"]
    path = request.params["path"].strip("/")
    text = gh.files.get((repo["full_name"].lower(), gh.resolve_ref(repo["full_name"], ref), path))
    if text is None:
        return not_found()
    if ".raw" in request.accept:
        return Reply(200, text=text, headers={"Content-Type": "application/vnd.github.raw; charset=utf-8"})
    return Reply(200, objects.content_file_object(gh, repo=repo, path=path, ref=ref, text=text))


# ------------------------------------------------------------------ pull requests


def get_pull(gh: FakeGitHub, request: ApiRequest) -> Reply:
    repo = repo_of(gh, request)
    pull = repo and gh.pulls.get((repo["full_name"].lower(), request.params["pull_number"]))
    return Reply(200, pull) if pull else not_found()


def list_pulls(gh: FakeGitHub, request: ApiRequest) -> Reply:
    repo = repo_of(gh, request)
    if repo is None:
        return not_found()
    query = request.query
    state = query.get("state", "open")
    pulls = [p for p in gh.pulls_of(repo["full_name"]) if state == "all" or p["state"] == state]
    if "head" in query:
        owner, _, branch = query["head"].rpartition(":")
        pulls = [
            p
            for p in pulls
            if p["head"]["ref"] == branch and (not owner or p["head"]["user"]["login"].lower() == owner.lower())
        ]
    if "base" in query:
        pulls = [p for p in pulls if p["base"]["ref"] == query["base"]]
    sort = query.get("sort", "created")
    direction = query.get("direction", "desc" if sort == "created" else "asc")
    key = {"created": "created_at", "updated": "updated_at"}.get(sort, "created_at")
    pulls.sort(key=lambda p: (p[key], p["id"]), reverse=direction == "desc")
    return paginate(request, [objects.pull_simple(p) for p in pulls])


def list_pulls_for_commit(gh: FakeGitHub, request: ApiRequest) -> Reply:
    repo = repo_of(gh, request)
    if repo is None:
        return not_found()
    sha = request.params["commit_sha"]
    # A fork's head commit is not an object of this repository: GitHub finds no pull for it.
    pulls = [
        p for p in gh.pulls_of(repo["full_name"])
        if (p["head"]["sha"] == sha and p["head"]["repo"]["id"] == repo["id"]) or p["merge_commit_sha"] == sha
    ]
    return paginate(request, [objects.pull_simple(p) for p in pulls])


def list_reviews(gh: FakeGitHub, request: ApiRequest) -> Reply:
    repo = repo_of(gh, request)
    if repo is None or (repo["full_name"].lower(), request.params["pull_number"]) not in gh.pulls:
        return not_found()
    return paginate(request, gh.reviews.get((repo["full_name"].lower(), request.params["pull_number"]), []))


# ------------------------------------------------------------------ issue comments


def create_comment(gh: FakeGitHub, request: ApiRequest) -> Reply:
    repo = repo_of(gh, request)
    number = request.params["issue_number"]
    if repo is None or (repo["full_name"].lower(), number) not in gh.pulls:
        return not_found()
    body = request.body["body"]
    if len(body) > MAX_COMMENT_LENGTH:
        return _comment_too_long(gh)
    comment = gh.add_comment(repo["full_name"], number, author=gh.bot_login, body=body)
    return Reply(201, comment, {"Location": comment["url"]})


def update_comment(gh: FakeGitHub, request: ApiRequest) -> Reply:
    repo = repo_of(gh, request)
    comment = gh.comments.get(request.params["comment_id"])
    if repo is None or comment is None or gh.comment_issue[comment["id"]][0] != repo["full_name"].lower():
        return not_found()
    body = request.body["body"]
    if len(body) > MAX_COMMENT_LENGTH:
        return _comment_too_long(gh)
    comment["body"] = body
    comment["updated_at"] = gh.now_iso()
    return Reply(200, comment)


def _comment_too_long(gh: FakeGitHub) -> Reply:
    message = f"Body is too long (maximum is {MAX_COMMENT_LENGTH} characters)"
    return gh.reject(message, field="body", resource="IssueComment")


def list_comments(gh: FakeGitHub, request: ApiRequest) -> Reply:
    repo = repo_of(gh, request)
    number = request.params["issue_number"]
    if repo is None or (repo["full_name"].lower(), number) not in gh.pulls:
        return not_found()
    comments = gh.comments_on(repo["full_name"], number)
    if "since" in request.query:
        since = _parse_time(request.query["since"])
        comments = [c for c in comments if _parse_time(c["updated_at"]) >= since]
    return paginate(request, comments)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def create_reaction(gh: FakeGitHub, request: ApiRequest) -> Reply:
    repo = repo_of(gh, request)
    comment = gh.comments.get(request.params["comment_id"])
    if repo is None or comment is None or gh.comment_issue[comment["id"]][0] != repo["full_name"].lower():
        return not_found()
    content = request.body["content"]
    existing = gh.reactions.setdefault(comment["id"], [])
    for reaction in existing:
        if reaction["user"]["login"] == gh.bot_login and reaction["content"] == content:
            return Reply(200, reaction)
    reaction = objects.reaction_object(gh, reaction_id=gh.next_id(), user=gh.bot, content=content)
    existing.append(reaction)
    comment["reactions"] = objects.reaction_rollup(gh, comment_url=comment["url"], reactions=existing)
    return Reply(201, reaction)


# ----------------------------------------------------------------------- check runs


def create_check_run(gh: FakeGitHub, request: ApiRequest) -> Reply:
    repo = repo_of(gh, request)
    if repo is None:
        return not_found()
    body = request.body
    if not SHA.fullmatch(body["head_sha"]):
        return gh.reject(f"No commit found for SHA: {body['head_sha']}", field="head_sha", resource="CheckRun")
    oversized = _oversized_output(gh, body)
    if oversized is not None:
        return oversized
    full_name = repo["full_name"]
    suite_id = gh.check_suites.setdefault((full_name.lower(), body["head_sha"]), gh.next_id())
    run = objects.check_run_object(
        gh, repo=repo, check_run_id=gh.next_id(), check_suite_id=suite_id, head_sha=body["head_sha"], name=body["name"]
    )
    run["pull_requests"] = [
        objects.check_run_pull_reference(gh, p)
        for p in gh.pulls_of(full_name)
        if p["state"] == "open" and p["head"]["sha"] == body["head_sha"]
    ]
    _apply_check_run_fields(gh, run, body)
    gh.check_runs[run["id"]] = run
    gh.check_run_repo[run["id"]] = full_name.lower()
    gh.check_run_history[run["id"]] = [dict(body)]
    gh.check_run_actions[run["id"]] = list(body.get("actions", []))
    return Reply(201, run)


def update_check_run(gh: FakeGitHub, request: ApiRequest) -> Reply:
    run = _check_run_in(gh, request)
    if run is None:
        return not_found()
    body = request.body
    oversized = _oversized_output(gh, body)
    if oversized is not None:
        return oversized
    _apply_check_run_fields(gh, run, body)
    gh.check_run_history[run["id"]].append(dict(body))
    if "actions" in body:
        gh.check_run_actions[run["id"]] = list(body["actions"])
    return Reply(200, run)


def _oversized_output(gh: FakeGitHub, body: dict[str, Any]) -> Reply | None:
    """GitHub's 422 for an output summary or text over its limit in bytes, if there is one."""
    output = body.get("output") or {}
    for name in ("summary", "text"):
        value = output.get(name)
        if isinstance(value, str) and len(value.encode("utf-8", "surrogatepass")) > MAX_CHECK_RUN_OUTPUT_BYTES:
            message = f"{name} exceeds a maximum bytesize of {MAX_CHECK_RUN_OUTPUT_BYTES}"
            return gh.reject(message, field=name, resource="CheckRun")
    return None


def _apply_check_run_fields(gh: FakeGitHub, run: dict[str, Any], body: dict[str, Any]) -> None:
    for key in ("name", "details_url", "external_id", "started_at"):
        if key in body:
            run[key] = body[key]
    if "conclusion" in body:
        # GitHub: giving a conclusion completes the run, whatever `status` says.
        completed_at = body.get("completed_at") or gh.now_iso()
        run.update(status="completed", conclusion=body["conclusion"], completed_at=completed_at)
    elif body.get("status") == "completed":
        run.update(status="completed", completed_at=body.get("completed_at") or gh.now_iso())
    elif "status" in body:
        run.update(status=body["status"], conclusion=None, completed_at=None)
    if "output" in body:
        output = body["output"]
        run["output"].update({k: output[k] for k in ("title", "summary", "text") if k in output})
        # Annotations accumulate across updates; the rest of the output is replaced.
        run["output"]["annotations_count"] += len(output.get("annotations", []))


def _check_run_in(gh: FakeGitHub, request: ApiRequest) -> dict[str, Any] | None:
    repo = repo_of(gh, request)
    run_id = request.params["check_run_id"]
    if repo is None or gh.check_run_repo.get(run_id) != repo["full_name"].lower():
        return None
    return gh.check_runs[run_id]


def get_check_run(gh: FakeGitHub, request: ApiRequest) -> Reply:
    run = _check_run_in(gh, request)
    return Reply(200, run) if run else not_found()


def list_check_runs_for_ref(gh: FakeGitHub, request: ApiRequest) -> Reply:
    repo = repo_of(gh, request)
    if repo is None:
        return not_found()
    sha = gh.resolve_ref(repo["full_name"], request.params["ref"])
    query = request.query
    runs = [r for r in gh.check_runs_for(repo["full_name"], sha) if query.get("check_name") in (None, r["name"])]
    if query.get("filter", "latest") == "latest":
        newest: dict[str, dict[str, Any]] = {}
        for run in runs:
            newest[run["name"]] = run
        runs = list(newest.values())
    if "status" in query:
        runs = [r for r in runs if r["status"] == query["status"]]
    if "app_id" in query:
        runs = [r for r in runs if r["app"]["id"] == query["app_id"]]
    runs.sort(key=lambda r: r["id"], reverse=True)
    total = len(runs)
    return paginate(request, runs, wrap=lambda page: {"total_count": total, "check_runs": page})


# ---------------------------------------------------------------------- deployments


def create_deployment(gh: FakeGitHub, request: ApiRequest) -> Reply:
    repo = repo_of(gh, request)
    if repo is None:
        return not_found()
    body = request.body
    sha = gh.resolve_ref(repo["full_name"], body["ref"])
    if sha is None:
        return error(422, f"No ref found for: {body['ref']}")
    environment = body.get("environment", "production")
    deployment = gh.add_deployment(
        repo["full_name"],
        sha=sha,
        ref=body["ref"],
        environment=environment,
        creator=gh.bot_login,
        task=body.get("task", "deploy"),
        payload=body.get("payload", {}),
        description=body.get("description", ""),
        transient_environment=body.get("transient_environment", False),
        production_environment=body.get("production_environment", environment == "production"),
    )
    return Reply(201, deployment)


def list_deployments(gh: FakeGitHub, request: ApiRequest) -> Reply:
    repo = repo_of(gh, request)
    if repo is None:
        return not_found()
    deployments = gh.deployments_of(repo["full_name"])
    for key in ("sha", "ref", "task", "environment"):
        # The description documents the literal "none" as "no filter".
        wanted = request.query.get(key)
        if wanted not in (None, "none"):
            deployments = [d for d in deployments if d[key] == wanted]
    return paginate(request, sorted(deployments, key=lambda d: d["id"], reverse=True))


def _deployment_in(gh: FakeGitHub, request: ApiRequest) -> dict[str, Any] | None:
    repo = repo_of(gh, request)
    deployment = gh.deployments.get(request.params["deployment_id"])
    if repo is None or deployment is None or deployment["repository_url"] != repo["url"]:
        return None
    return deployment


def get_deployment(gh: FakeGitHub, request: ApiRequest) -> Reply:
    deployment = _deployment_in(gh, request)
    return Reply(200, deployment) if deployment else not_found()


def create_deployment_status(gh: FakeGitHub, request: ApiRequest) -> Reply:
    deployment = _deployment_in(gh, request)
    if deployment is None:
        return not_found()
    body = request.body
    status = gh.add_deployment_status(
        deployment["id"],
        state=body["state"],
        creator=gh.bot_login,
        description=body.get("description", ""),
        environment=body.get("environment"),
        target_url=body.get("log_url") or body.get("target_url", ""),
        environment_url=body.get("environment_url", ""),
        auto_inactive=body.get("auto_inactive", True),
    )
    return Reply(201, status)


def list_deployment_statuses(gh: FakeGitHub, request: ApiRequest) -> Reply:
    deployment = _deployment_in(gh, request)
    if deployment is None:
        return not_found()
    return paginate(request, list(reversed(gh.deployment_statuses.get(deployment["id"], []))))


def review_custom_gates(gh: FakeGitHub, request: ApiRequest) -> Reply:
    repo = repo_of(gh, request)
    if repo is None:
        return not_found()
    review = {"repository": repo["full_name"], "run_id": request.params["run_id"], **request.body}
    gh.protection_reviews.append(review)
    return Reply(204)


# ----------------------------------------------------------------------- rate limit


def get_rate_limit(gh: FakeGitHub, request: ApiRequest) -> Reply:
    overview = gh.spec.example("rate-limit-overview")
    core = gh.rate_limit_state(request.identity)
    overview["rate"] = dict(core)
    overview["resources"]["core"] = dict(core)
    return Reply(200, overview)


# ---------------------------------------------------------------------- route table


@dataclass(frozen=True)
class Route:
    handler: Callable[[FakeGitHub, ApiRequest], Reply]
    auth: Auth


ROUTES: dict[str, Route] = {
    "apps/get-authenticated": Route(get_authenticated_app, Auth.APP),
    "apps/list-installations": Route(list_installations, Auth.APP),
    "apps/get-repo-installation": Route(get_repo_installation, Auth.APP),
    "apps/create-installation-access-token": Route(create_installation_token, Auth.APP),
    "apps/create-from-manifest": Route(create_from_manifest, Auth.NONE),
    "repos/get-collaborator-permission-level": Route(get_collaborator_permission, Auth.INSTALLATION),
    "repos/list-collaborators": Route(list_collaborators, Auth.INSTALLATION),
    "teams/get-membership-for-user-in-org": Route(get_team_membership, Auth.INSTALLATION),
    "repos/get": Route(get_repo, Auth.INSTALLATION),
    "repos/get-content": Route(get_content, Auth.INSTALLATION),
    "pulls/get": Route(get_pull, Auth.INSTALLATION),
    "pulls/list": Route(list_pulls, Auth.INSTALLATION),
    "pulls/list-reviews": Route(list_reviews, Auth.INSTALLATION),
    "repos/list-pull-requests-associated-with-commit": Route(list_pulls_for_commit, Auth.INSTALLATION),
    "issues/create-comment": Route(create_comment, Auth.INSTALLATION),
    "issues/update-comment": Route(update_comment, Auth.INSTALLATION),
    "issues/list-comments": Route(list_comments, Auth.INSTALLATION),
    "reactions/create-for-issue-comment": Route(create_reaction, Auth.INSTALLATION),
    "checks/create": Route(create_check_run, Auth.INSTALLATION),
    "checks/update": Route(update_check_run, Auth.INSTALLATION),
    "checks/get": Route(get_check_run, Auth.INSTALLATION),
    "checks/list-for-ref": Route(list_check_runs_for_ref, Auth.INSTALLATION),
    "repos/create-deployment": Route(create_deployment, Auth.INSTALLATION),
    "repos/list-deployments": Route(list_deployments, Auth.INSTALLATION),
    "repos/get-deployment": Route(get_deployment, Auth.INSTALLATION),
    "repos/create-deployment-status": Route(create_deployment_status, Auth.INSTALLATION),
    "repos/list-deployment-statuses": Route(list_deployment_statuses, Auth.INSTALLATION),
    "actions/review-custom-gates-for-run": Route(review_custom_gates, Auth.INSTALLATION),
    "rate-limit/get": Route(get_rate_limit, Auth.ANY),
}
