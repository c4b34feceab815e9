"""Webhook deliveries for tests, built from GitHub's own payload examples in shared/github.

Each builder loads a real example and changes only the fields the case needs."""

from __future__ import annotations

import copy
import functools
import hashlib
import hmac
import itertools
import json
import uuid
from dataclasses import dataclass
from typing import Any

from tests.paths import shared_dir

_ids = itertools.count(7_000_000)


@functools.cache
def _example(name: str) -> dict[str, Any]:
    return json.loads((shared_dir() / "github" / "webhooks" / name).read_text())


def example(name: str) -> dict[str, Any]:
    """A fresh copy of `webhooks/<name>` (e.g. "pull_request/opened.json")."""
    return copy.deepcopy(_example(name))


@dataclass(frozen=True)
class Delivery:
    event: str
    payload: dict[str, Any]
    delivery_id: str

    def body(self) -> bytes:
        return json.dumps(self.payload).encode()

    def headers(self, secret: str, body: bytes | None = None) -> dict[str, str]:
        body = self.body() if body is None else body
        return {
            "X-GitHub-Event": self.event,
            "X-GitHub-Delivery": self.delivery_id,
            "X-Hub-Signature-256": sign(secret, body),
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/test",
        }


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery(event: str, payload: dict[str, Any], *, delivery_id: str | None = None) -> Delivery:
    return Delivery(event=event, payload=payload, delivery_id=delivery_id or str(uuid.uuid4()))


def _place(payload: dict[str, Any], *, repo: str, installation_id: int | None, private: bool = False) -> None:
    owner, name = repo.split("/", 1)
    repository = payload["repository"]
    repository["full_name"] = repo
    repository["name"] = name
    repository["owner"]["login"] = owner
    repository["private"] = private
    # As the fake GitHub's repositories have it (`add_repo`'s default).
    repository["default_branch"] = "main"
    if installation_id is not None:
        payload["installation"] = {"id": installation_id, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ=="}


def _user(login: str, *, type_: str = "User") -> dict[str, Any]:
    user = copy.deepcopy(_example("issue_comment/created.json")["comment"]["user"])
    user.update(login=login, type=type_, id=abs(hash(login)) % 10_000_000)
    return user


def pull_request(
    action: str,
    *,
    repo: str,
    number: int,
    head_sha: str,
    author: str,
    installation_id: int | None = 1,
    state: str = "open",
) -> Delivery:
    payload = example(f"pull_request/{action}.json")
    _place(payload, repo=repo, installation_id=installation_id)
    payload["number"] = number
    pull = payload["pull_request"]
    pull.update(number=number, state=state, user=_user(author))
    pull["head"]["sha"] = head_sha
    payload["sender"] = _user(author)
    return delivery("pull_request", payload)


def preview_ready(
    *,
    repo: str,
    sha: str,
    deployment_id: int,
    url: str = "https://preview-abc.example.dev",
    environment: str = "Preview",
    state: str = "success",
    installation_id: int | None = 1,
    private: bool = False,
) -> Delivery:
    """A `deployment_status` as Vercel or an Actions job sends it for a preview."""
    payload = example("deployment_status/created.with-installation.json")
    _place(payload, repo=repo, installation_id=installation_id, private=private)
    deployment = payload["deployment"]
    deployment.update(id=deployment_id, sha=sha, ref=sha, environment=environment, original_environment=environment)
    status = payload["deployment_status"]
    status.update(id=next(_ids), state=state, environment=environment, target_url=url, environment_url=url)
    return delivery("deployment_status", payload)


def comment(
    body: str,
    *,
    repo: str,
    number: int,
    author: str,
    comment_id: int | None = None,
    author_type: str = "User",
    installation_id: int | None = 1,
    on_pull_request: bool = True,
) -> Delivery:
    payload = example("issue_comment/created.with-installation.json")
    _place(payload, repo=repo, installation_id=installation_id)
    issue = payload["issue"]
    issue["number"] = number
    if on_pull_request:
        base = f"https://api.github.com/repos/{repo}/pulls/{number}"
        issue["pull_request"] = {
            "url": base,
            "html_url": f"https://github.com/{repo}/pull/{number}",
            "diff_url": f"https://github.com/{repo}/pull/{number}.diff",
            "patch_url": f"https://github.com/{repo}/pull/{number}.patch",
        }
    user = _user(author, type_=author_type)
    payload["comment"].update(id=comment_id or next(_ids), body=body, user=user)
    payload["sender"] = copy.deepcopy(user)
    return delivery("issue_comment", payload)


def posted_comment(fake_github: Any, body: str, *, repo: str, number: int, author: str, **kwargs: Any) -> Delivery:
    """A comment that exists at the fake GitHub, as every comment GitHub tells us about does."""
    stored = fake_github.add_comment(repo, number, author=author, body=body)
    return comment(body, repo=repo, number=number, author=author, comment_id=stored["id"], **kwargs)


def promote_clicked(
    *,
    repo: str,
    number: int,
    check_run_id: int,
    head_sha: str,
    clicker: str,
    external_id: str = "",
    installation_id: int | None = 1,
) -> Delivery:
    """The Promote button of the check run (a `check_run` `requested_action`)."""
    payload = example("check_run/requested_action.json")
    _place(payload, repo=repo, installation_id=installation_id)
    check_run = payload["check_run"]
    check_run.update(id=check_run_id, name="Pinkflow governance", head_sha=head_sha, external_id=external_id)
    for pull in check_run["pull_requests"]:
        pull["number"] = number
        pull["head"]["sha"] = head_sha
    payload["requested_action"] = {"identifier": "promote"}
    payload["sender"] = _user(clicker)
    return delivery("check_run", payload)


def ping() -> Delivery:
    return delivery("ping", example("ping/with-app_id.json"))


def comment_edited(
    body: str,
    *,
    before: str,
    repo: str,
    number: int,
    author: str,
    comment_id: int,
    editor: str | None = None,
    installation_id: int | None = 1,
    created_at: str | None = None,
) -> Delivery:
    """`issue_comment` `edited`: the comment now reads `body`; `changes.body.from` is `before`.
    `created_at` is when the comment was written (GitHub's example's time otherwise)."""
    payload = example("issue_comment/edited.json")
    _place(payload, repo=repo, installation_id=installation_id)
    payload["issue"]["number"] = number
    payload["issue"]["pull_request"] = {
        "url": f"https://api.github.com/repos/{repo}/pulls/{number}",
        "html_url": f"https://github.com/{repo}/pull/{number}",
        "diff_url": f"https://github.com/{repo}/pull/{number}.diff",
        "patch_url": f"https://github.com/{repo}/pull/{number}.patch",
    }
    payload["comment"].update(id=comment_id, body=body, user=_user(author))
    if created_at is not None:
        payload["comment"]["created_at"] = created_at
    payload["changes"] = {"body": {"from": before}}
    payload["sender"] = _user(editor or author)
    return delivery("issue_comment", payload)


def comment_deleted(
    *, repo: str, number: int, author: str, comment_id: int, body: str = "", deleted_by: str | None = None,
    author_type: str = "User", installation_id: int | None = 1,
) -> Delivery:
    payload = example("issue_comment/deleted.json")
    _place(payload, repo=repo, installation_id=installation_id)
    payload["issue"]["number"] = number
    payload["issue"]["pull_request"] = {
        "url": f"https://api.github.com/repos/{repo}/pulls/{number}",
        "html_url": f"https://github.com/{repo}/pull/{number}",
        "diff_url": f"https://github.com/{repo}/pull/{number}.diff",
        "patch_url": f"https://github.com/{repo}/pull/{number}.patch",
    }
    payload["comment"].update(id=comment_id, body=body, user=_user(author, type_=author_type))
    payload["sender"] = _user(deleted_by or author)
    return delivery("issue_comment", payload)


def push(
    *,
    repo: str,
    ref: str = "refs/heads/main",
    default_branch: str = "main",
    modified: tuple[str, ...] = (),
    added: tuple[str, ...] = (),
    installation_id: int | None = 1,
) -> Delivery:
    """A push of one commit that added and modified the given paths."""
    payload = example("push/with-installation.json")
    _place(payload, repo=repo, installation_id=installation_id)
    payload["repository"]["default_branch"] = default_branch
    payload["repository"]["master_branch"] = default_branch
    payload["ref"] = ref
    commit = {
        "id": "1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6",
        "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
        "distinct": True,
        "message": "Change the rules",
        "timestamp": "2026-11-02T09:00:00Z",
        "url": f"https://github.com/{repo}/commit/1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6",
        "author": {"name": "Ann", "email": "ann@example.com", "username": "ann"},
        "committer": {"name": "Ann", "email": "ann@example.com", "username": "ann"},
        "added": list(added),
        "removed": [],
        "modified": list(modified),
    }
    payload["commits"] = [commit]
    payload["head_commit"] = commit
    return delivery("push", payload)


def installation_event(
    action: str, *, installation_id: int, account: str = "octo-org", repositories: tuple[str, ...] = ()
) -> Delivery:
    """`installation` created, deleted, suspend or unsuspend."""
    payload = example(f"installation/{action}.json")
    payload["installation"]["id"] = installation_id
    payload["installation"]["account"]["login"] = account
    if action == "created":
        payload["repositories"] = [
            {"id": 900 + n, "node_id": "MDEwOlJlcG9zaXRvcnkx", "name": name.split("/")[1], "full_name": name, "private": False}
            for n, name in enumerate(repositories)
        ]
    return delivery("installation", payload)


def installation_repositories(
    action: str, *, installation_id: int, account: str = "octo-org", repositories: tuple[str, ...] = ()
) -> Delivery:
    """`installation_repositories` added or removed."""
    payload = example(f"installation_repositories/{action}.json")
    payload["installation"]["id"] = installation_id
    payload["installation"]["account"]["login"] = account
    listed = [
        {"id": 900 + n, "node_id": "MDEwOlJlcG9zaXRvcnkx", "name": name.split("/")[1], "full_name": name, "private": False}
        for n, name in enumerate(repositories)
    ]
    payload["repositories_added"] = listed if action == "added" else []
    payload["repositories_removed"] = listed if action == "removed" else []
    return delivery("installation_repositories", payload)


def protection_rule_requested(
    *, repo: str, sha: str, run_id: int, environment: str = "production", installation_id: int | None = 1
) -> Delivery:
    """`deployment_protection_rule` `requested`. GitHub's examples have none: built from its schema,
    with the deployment, repository and sender of the `deployment_status` example."""
    base = example("deployment_status/created.with-installation.json")
    _place(base, repo=repo, installation_id=installation_id)
    deployment = base["deployment"]
    deployment.update(sha=sha, ref=sha, environment=environment, original_environment=environment)
    payload: dict[str, Any] = {
        "action": "requested",
        "environment": environment,
        "event": "push",
        "deployment_callback_url": f"https://api.github.com/repos/{repo}/actions/runs/{run_id}/deployment_protection_rule",
        "deployment": deployment,
        "pull_requests": [],
        "repository": base["repository"],
        "sender": base["sender"],
    }
    if installation_id is not None:
        payload["installation"] = base["installation"]
    return delivery("deployment_protection_rule", payload)
