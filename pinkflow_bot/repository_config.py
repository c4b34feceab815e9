"""A repository's governance rules as GitHub holds them (DESIGN section 3).

`.github/pinkflow.yml` is read from the repository's default branch (never a pull
request's branch), else from the same path in the owner's `.github` repository, else the
installation-wide defaults apply. A file that cannot be used fails closed: its problems
come back with the defaults, and whoever opens a proposal with them refuses to count or
promote until the file is fixed.

Answers are kept for a minute per repository, and forgotten at once when a push to the
default branch touches the file; a replica that did not see the push catches up when its
copy runs out.
"""

from __future__ import annotations

import dataclasses

import base64
import binascii
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

import gidgethub
from cachetools import TTLCache

from .governance.config import CONFIG_PATH, ConfigError, ConfigProblem, parse_config
from .governance.rules import Rules

CONFIG_TTL = 60.0
MAX_CACHED_REPOSITORIES = 2048
# The repository whose `.github/pinkflow.yml` applies to every repository of its owner without one.
OWNER_CONFIG_REPOSITORY = ".github"


@dataclass(frozen=True)
class RulesLookup:
    """The rules that apply, where they came from, and what is wrong with the file, if anything."""

    rules: Rules
    problems: tuple[ConfigProblem, ...] = ()
    source: str = "defaults"  # "repository", "owner" (its .github repository) or "defaults"

    @property
    def usable(self) -> bool:
        return not self.problems


def problems_as_json(problems: Sequence[ConfigProblem]) -> list[dict[str, object]] | None:
    """The form a proposal stores them in; None when there are none."""
    if not problems:
        return None
    return [{"key": p.key, "line": p.line, "message": p.message, "repository": p.repository} for p in problems]


def problems_from_json(stored: Sequence[dict[str, object]] | None) -> tuple[ConfigProblem, ...]:
    return tuple(
        ConfigProblem(
            str(p.get("key") or ""),
            p.get("line") if isinstance(p.get("line"), int) else None,
            str(p.get("message") or ""),
            str(p.get("repository") or ""),
        )
        for p in stored or ()
    )


class RepositoryConfig:
    def __init__(
        self,
        *,
        defaults: Rules,
        ttl: float = CONFIG_TTL,
        maxsize: int = MAX_CACHED_REPOSITORIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.defaults = defaults
        self._cache: TTLCache[str, RulesLookup] = TTLCache(maxsize=maxsize, ttl=ttl, timer=clock)

    async def read(self, gh, *, repo_full_name: str, default_branch: str | None = None) -> RulesLookup:
        """The rules for `repo_full_name`, through `gh` acting as its installation.

        GitHub's outages raise (the caller's delivery or effect is tried again later);
        a file that is missing falls back, one that is unusable comes back with its problems.
        """
        key = repo_full_name.lower()
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        lookup = await self._look_up(gh, repo_full_name, default_branch)
        self._cache[key] = lookup
        return lookup

    def forget(self, repo_full_name: str) -> None:
        """After a push that changed the repository's file."""
        self._cache.pop(repo_full_name.lower(), None)

    def forget_owner(self, owner: str) -> None:
        """After a push that changed the owner's `.github/pinkflow.yml`: every repository of
        the owner may have been using it."""
        prefix = owner.lower() + "/"
        for key in [key for key in list(self._cache.keys()) if key.startswith(prefix)]:
            self._cache.pop(key, None)

    async def _look_up(self, gh, repo_full_name: str, default_branch: str | None) -> RulesLookup:
        owner, _, name = repo_full_name.partition("/")
        found = await _config_file(gh, owner, name, ref=default_branch, missing_if_forbidden=False)
        source = "repository"
        if found is None and name.lower() != OWNER_CONFIG_REPOSITORY:
            # The owner's `.github` repository may not be installed: then it is simply absent.
            found = await _config_file(gh, owner, OWNER_CONFIG_REPOSITORY, ref=None, missing_if_forbidden=True)
            source = "owner"
        if found is None:
            return RulesLookup(self.defaults)
        text, problem = found
        # Problems of the owner's file say so: fixing this repository's (absent) file is not the cure.
        where = f"{owner}/{OWNER_CONFIG_REPOSITORY}" if source == "owner" else ""
        if problem is not None:
            return RulesLookup(self.defaults, (dataclasses.replace(problem, repository=where),), source)
        try:
            return RulesLookup(parse_config(text, defaults=self.defaults), (), source)
        except ConfigError as error:
            return RulesLookup(self.defaults, tuple(dataclasses.replace(p, repository=where) for p in error.problems), source)


async def _config_file(
    gh, owner: str, repo: str, *, ref: str | None, missing_if_forbidden: bool
) -> tuple[str, ConfigProblem | None] | None:
    """(text, None), ("", problem) when the file cannot be read as text, or None when there is none."""
    url = f"/repos/{quote(owner, safe='')}/{quote(repo, safe='')}/contents/{CONFIG_PATH}"
    if ref:
        url += f"?ref={quote(ref, safe='')}"
    try:
        answer = await gh.getitem(url)
    except gidgethub.BadRequest as error:
        status = error.status_code.value
        if status == 404 or (status == 403 and missing_if_forbidden):
            return None
        if status in (401, 403):
            message = f"GitHub refused to let the App read it ({status}); the App needs the contents: read permission"
            return "", ConfigProblem("", None, message)
        raise
    if not isinstance(answer, dict) or answer.get("type") != "file":
        return "", ConfigProblem("", None, f"{CONFIG_PATH} is not a file")
    if answer.get("encoding") != "base64":
        return "", ConfigProblem("", None, "the file is too large to be read; at most 64 KiB is read")
    try:
        data = base64.b64decode(answer.get("content") or "")
        return data.decode("utf-8"), None
    except (binascii.Error, ValueError):
        return "", ConfigProblem("", None, "the file is not UTF-8 text")
