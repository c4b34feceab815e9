"""GitHub-shaped objects, built from the description's own examples.

Each builder starts from a named example in `components/examples` (so the object has
every field GitHub sends, in GitHub's shape), moves its URLs onto the fake's API and
the repository at hand, and overrides the fields the fake keeps state for.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import FakeGitHub

WEB_URL = "https://github.com"
EXAMPLE_API_URL = "https://api.github.com"
# The legacy `permission` field folds maintain into write and triage into read.
LEGACY_PERMISSION = {
    "admin": "admin", "maintain": "write", "write": "write", "triage": "read", "read": "read", "none": "none",
}


def iso8601(timestamp: float) -> str:
    """GitHub's timestamps: ISO 8601, UTC, whole seconds, `Z`."""
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(kind: str, number: int) -> str:
    """GitHub's legacy global id: base64 of `<len>:<Type><id>`."""
    return base64.b64encode(f"0{len(kind)}:{kind}{number}".encode()).decode()


def rebrand(value: Any, replacements: list[tuple[str, str]]) -> Any:
    """Rewrite every string in an example, e.g. its URLs onto the fake and this repository."""
    if isinstance(value, str):
        for old, new in replacements:
            value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return {k: rebrand(v, replacements) for k, v in value.items()}
    if isinstance(value, list):
        return [rebrand(v, replacements) for v in value]
    return value


def user_object(gh: FakeGitHub, *, login: str, user_id: int, type: str) -> dict[str, Any]:
    user = rebrand(
        gh.spec.example("issue-comment")["user"],
        [(f"{EXAMPLE_API_URL}/users/octocat", f"{gh.url}/users/{login}"), (f"{WEB_URL}/octocat", f"{WEB_URL}/{login}")],
    )
    user.update(
        login=login,
        id=user_id,
        node_id=node_id("Bot" if type == "Bot" else "User" if type == "User" else "Organization", user_id),
        avatar_url=f"https://avatars.githubusercontent.com/u/{user_id}?v=4",
        type=type,
        site_admin=False,
    )
    if type == "Organization":
        user["url"] = f"{gh.url}/orgs/{login}"
        user["repos_url"] = f"{gh.url}/orgs/{login}/repos"
        user["events_url"] = f"{gh.url}/orgs/{login}/events"
    return user


def repository_object(
    gh: FakeGitHub, *, full_name: str, repo_id: int, owner: dict[str, Any], private: bool, default_branch: str
) -> dict[str, Any]:
    example = gh.spec.example("full-repository-default-response")
    for unrelated in ("template_repository", "parent", "source", "organization", "temp_clone_token"):
        example.pop(unrelated, None)
    repo = rebrand(example, [(EXAMPLE_API_URL, gh.url), ("octocat/Hello-World", full_name)])
    now = gh.now_iso()
    repo.update(
        id=repo_id,
        node_id=node_id("Repository", repo_id),
        name=full_name.split("/", 1)[1],
        full_name=full_name,
        owner=owner,
        private=private,
        visibility="private" if private else "public",
        description=None,
        homepage=None,
        language=None,
        mirror_url=None,
        default_branch=default_branch,
        topics=[],
        forks=0, forks_count=0, stargazers_count=0, watchers=0, watchers_count=0,
        open_issues=0, open_issues_count=0, subscribers_count=1, network_count=0, size=0,
        created_at=now, updated_at=now, pushed_at=now,
        permissions={"admin": False, "maintain": False, "push": False, "triage": False, "pull": True},
    )
    if owner["type"] == "Organization":
        repo["organization"] = owner
    return repo


def installation_object(gh: FakeGitHub, *, installation_id: int, account: dict[str, Any]) -> dict[str, Any]:
    installation = rebrand(gh.spec.example("installation"), [(EXAMPLE_API_URL, gh.url)])
    now = gh.now_iso()
    html_url = (
        f"{WEB_URL}/organizations/{account['login']}/settings/installations/{installation_id}"
        if account["type"] == "Organization"
        else f"{WEB_URL}/settings/installations/{installation_id}"
    )
    installation.update(
        id=installation_id,
        account=account,
        repository_selection="selected",
        access_tokens_url=f"{gh.url}/app/installations/{installation_id}/access_tokens",
        repositories_url=f"{gh.url}/installation/repositories",
        html_url=html_url,
        app_id=gh.app_id,
        app_slug=gh.app_slug,
        client_id=gh.client_id,
        target_id=account["id"],
        target_type=account["type"],
        permissions=dict(gh.app_permissions),
        events=list(gh.app_events),
        created_at=now,
        updated_at=now,
        single_file_name=None,
        has_multiple_single_files=False,
        single_file_paths=[],
        suspended_at=None,
        suspended_by=None,
    )
    return installation


def app_object(gh: FakeGitHub) -> dict[str, Any]:
    app = rebrand(gh.spec.example("integration"), [(EXAMPLE_API_URL, gh.url)])
    app.update(
        id=gh.app_id,
        slug=gh.app_slug,
        client_id=gh.client_id,
        node_id=node_id("Integration", gh.app_id),
        owner=gh.add_user(gh.app_owner, type="Organization"),
        name=gh.app_name,
        description="Puts the promotion of a preview deployment to production under a vote.",
        external_url="https://pinkflow.example.com",
        html_url=f"{WEB_URL}/apps/{gh.app_slug}",
        created_at="2024-01-15T09:30:00Z",
        updated_at="2024-01-15T09:30:00Z",
        permissions=dict(gh.app_permissions),
        events=list(gh.app_events),
    )
    return app


def branch_object(gh: FakeGitHub, *, repo: dict[str, Any], ref: str, sha: str) -> dict[str, Any]:
    return {
        "label": f"{repo['owner']['login']}:{ref}",
        "ref": ref,
        "sha": sha,
        "user": repo["owner"],
        "repo": repo,
    }


def pull_object(
    gh: FakeGitHub,
    *,
    repo: dict[str, Any],
    number: int,
    pull_id: int,
    author: dict[str, Any],
    head_sha: str,
    head_ref: str,
    base_ref: str,
    state: str,
    title: str,
    body: str | None,
) -> dict[str, Any]:
    full_name = repo["full_name"]
    pull = rebrand(
        gh.spec.example("pull-request"),
        [
            (EXAMPLE_API_URL, gh.url),
            ("octocat/Hello-World", full_name),
            ("/1347", f"/{number}"),
            ("6dcb09b5b57875f334f61aebed695e2e4193db5e", head_sha),
        ],
    )
    now = gh.now_iso()
    pull.update(
        id=pull_id,
        node_id=node_id("PullRequest", pull_id),
        number=number,
        state=state,
        locked=False,
        active_lock_reason=None,
        title=title,
        body=body,
        user=author,
        labels=[],
        milestone=None,
        assignee=None,
        assignees=[],
        requested_reviewers=[],
        requested_teams=[],
        created_at=now,
        updated_at=now,
        closed_at=None if state == "open" else now,
        merged_at=None,
        merge_commit_sha=None,
        merged=False,
        merged_by=None,
        mergeable=True,
        rebaseable=True,
        mergeable_state="clean",
        author_association=gh.author_association(full_name, author["login"]),
        auto_merge=None,
        draft=False,
        comments=0,
        review_comments=0,
        commits=1,
        additions=1,
        deletions=0,
        changed_files=1,
        head=branch_object(gh, repo=repo, ref=head_ref, sha=head_sha),
        base=branch_object(gh, repo=repo, ref=base_ref, sha=gh.branch_sha(full_name, base_ref)),
    )
    return pull


PULL_SIMPLE_FIELDS = (
    "url id node_id html_url diff_url patch_url issue_url commits_url review_comments_url "
    "review_comment_url comments_url statuses_url number state locked title user body labels "
    "milestone active_lock_reason created_at updated_at closed_at merged_at merge_commit_sha "
    "assignee assignees requested_reviewers requested_teams head base _links author_association "
    "auto_merge draft"
).split()


def pull_simple(pull: dict[str, Any]) -> dict[str, Any]:
    """The shorter shape GitHub uses in lists of pull requests."""
    return {key: pull[key] for key in PULL_SIMPLE_FIELDS if key in pull}


def check_run_object(
    gh: FakeGitHub, *, repo: dict[str, Any], check_run_id: int, check_suite_id: int, head_sha: str, name: str
) -> dict[str, Any]:
    run = gh.spec.example("check-run")
    run.update(
        id=check_run_id,
        node_id=node_id("CheckRun", check_run_id),
        head_sha=head_sha,
        name=name,
        external_id="",
        url=f"{gh.url}/repos/{repo['full_name']}/check-runs/{check_run_id}",
        html_url=f"{WEB_URL}/{repo['full_name']}/runs/{check_run_id}",
        details_url=f"{WEB_URL}/apps/{gh.app_slug}",
        status="queued",
        conclusion=None,
        started_at=gh.now_iso(),
        completed_at=None,
        output={
            "title": None,
            "summary": None,
            "text": None,
            "annotations_count": 0,
            "annotations_url": f"{gh.url}/repos/{repo['full_name']}/check-runs/{check_run_id}/annotations",
        },
        check_suite={"id": check_suite_id},
        app=gh.app,
        pull_requests=[],
    )
    return run


def check_run_pull_reference(gh: FakeGitHub, pull: dict[str, Any]) -> dict[str, Any]:
    """How a check run names the pull requests whose head is its commit."""
    def side(branch: dict[str, Any]) -> dict[str, Any]:
        repo = branch["repo"]
        short_repo = {"id": repo["id"], "url": repo["url"], "name": repo["name"]}
        return {"ref": branch["ref"], "sha": branch["sha"], "repo": short_repo}

    return {
        "url": pull["url"],
        "id": pull["id"],
        "number": pull["number"],
        "head": side(pull["head"]),
        "base": side(pull["base"]),
    }


def comment_object(
    gh: FakeGitHub, *, repo: dict[str, Any], number: int, comment_id: int, author: dict[str, Any], body: str
) -> dict[str, Any]:
    full_name = repo["full_name"]
    comment = gh.spec.example("issue-comment")
    comment_url = f"{gh.url}/repos/{full_name}/issues/comments/{comment_id}"
    now = gh.now_iso()
    comment.update(
        id=comment_id,
        node_id=node_id("IssueComment", comment_id),
        url=comment_url,
        html_url=f"{WEB_URL}/{full_name}/pull/{number}#issuecomment-{comment_id}",
        issue_url=f"{gh.url}/repos/{full_name}/issues/{number}",
        body=body,
        user=author,
        created_at=now,
        updated_at=now,
        author_association=gh.author_association(full_name, author["login"]),
        pin=None,
        minimized=None,
        reactions=reaction_rollup(gh, comment_url=comment_url, reactions=[]),
    )
    return comment


REACTION_CONTENTS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")


def reaction_rollup(gh: FakeGitHub, *, comment_url: str, reactions: list[dict[str, Any]]) -> dict[str, Any]:
    rollup: dict[str, Any] = {"url": f"{comment_url}/reactions", "total_count": len(reactions)}
    for content in REACTION_CONTENTS:
        rollup[content] = sum(1 for r in reactions if r["content"] == content)
    return rollup


def reaction_object(gh: FakeGitHub, *, reaction_id: int, user: dict[str, Any], content: str) -> dict[str, Any]:
    reaction = gh.spec.example("reaction")
    reaction.update(
        id=reaction_id, node_id=node_id("Reaction", reaction_id), user=user, content=content, created_at=gh.now_iso()
    )
    return reaction


def deployment_object(
    gh: FakeGitHub,
    *,
    repo: dict[str, Any],
    deployment_id: int,
    sha: str,
    ref: str,
    task: str,
    environment: str,
    payload: Any,
    description: str | None,
    creator: dict[str, Any],
    transient_environment: bool,
    production_environment: bool,
) -> dict[str, Any]:
    full_name = repo["full_name"]
    deployment = gh.spec.example("deployment")
    now = gh.now_iso()
    deployment.update(
        url=f"{gh.url}/repos/{full_name}/deployments/{deployment_id}",
        id=deployment_id,
        node_id=node_id("Deployment", deployment_id),
        sha=sha,
        ref=ref,
        task=task,
        payload=payload,
        original_environment=environment,
        environment=environment,
        description=description,
        creator=creator,
        created_at=now,
        updated_at=now,
        statuses_url=f"{gh.url}/repos/{full_name}/deployments/{deployment_id}/statuses",
        repository_url=repo["url"],
        transient_environment=transient_environment,
        production_environment=production_environment,
    )
    if creator["type"] == "Bot":
        deployment["performed_via_github_app"] = gh.app if creator["login"] == gh.bot_login else None
    return deployment


def deployment_status_object(
    gh: FakeGitHub,
    *,
    deployment: dict[str, Any],
    status_id: int,
    state: str,
    creator: dict[str, Any],
    description: str,
    environment: str,
    target_url: str,
    log_url: str,
    environment_url: str,
) -> dict[str, Any]:
    status = gh.spec.example("deployment-status")
    now = gh.now_iso()
    status.update(
        url=f"{deployment['url']}/statuses/{status_id}",
        id=status_id,
        node_id=node_id("DeploymentStatus", status_id),
        state=state,
        creator=creator,
        description=description,
        environment=environment,
        target_url=target_url,
        log_url=log_url,
        environment_url=environment_url,
        created_at=now,
        updated_at=now,
        deployment_url=deployment["url"],
        repository_url=deployment["repository_url"],
    )
    return status


def content_file_object(gh: FakeGitHub, *, repo: dict[str, Any], path: str, ref: str, text: str) -> dict[str, Any]:
    data = text.encode()
    blob_sha = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    encoded = base64.b64encode(data).decode()
    # GitHub wraps the base64 text at 60 characters, each line ending with a newline.
    wrapped = "".join(encoded[i : i + 60] + "\n" for i in range(0, len(encoded), 60))
    full_name = repo["full_name"]
    api_url = f"{gh.url}/repos/{full_name}/contents/{path}?ref={ref}"
    git_url = f"{gh.url}/repos/{full_name}/git/blobs/{blob_sha}"
    html_url = f"{WEB_URL}/{full_name}/blob/{ref}/{path}"
    return {
        "type": "file",
        "encoding": "base64",
        "size": len(data),
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "content": wrapped,
        "sha": blob_sha,
        "url": api_url,
        "git_url": git_url,
        "html_url": html_url,
        "download_url": f"https://raw.githubusercontent.com/{full_name}/{ref}/{path}",
        "_links": {"self": api_url, "git": git_url, "html": html_url},
    }


def review_object(
    gh: FakeGitHub, *, pull: dict[str, Any], review_id: int, author: dict[str, Any], state: str, body: str, commit_id: str
) -> dict[str, Any]:
    review = gh.spec.example("pull-request-review-items")[0]
    html_url = f"{pull['html_url']}#pullrequestreview-{review_id}"
    review.update(
        id=review_id,
        node_id=node_id("PullRequestReview", review_id),
        user=author,
        body=body,
        state=state,
        html_url=html_url,
        pull_request_url=pull["url"],
        _links={"html": {"href": html_url}, "pull_request": {"href": pull["url"]}},
        submitted_at=gh.now_iso(),
        commit_id=commit_id,
        author_association=gh.author_association(pull["base"]["repo"]["full_name"], author["login"]),
    )
    return review
