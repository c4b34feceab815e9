"""A repository's governance rules (DESIGN section 3) and the look-ups made with them."""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .permissions import Permission

K = TypeVar("K")
V = TypeVar("V")

OPEN_ON_CHOICES = ("deployment", "pull_request")
PROMOTE_PROVIDERS = ("github", "protection_rule", "vercel", "webhook")


class FrozenMap(Mapping[K, V]):
    """A read-only, hashable mapping, so that frozen `Rules` can be compared and hashed."""

    __slots__ = ("_data",)

    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        self._data: dict[K, V] = dict(items)

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


DEFAULT_WEIGHTS: FrozenMap[Permission, int] = FrozenMap(
    {
        Permission.ADMIN: 3,
        Permission.MAINTAIN: 2,
        Permission.WRITE: 1,
        Permission.TRIAGE: 1,
        Permission.READ: 1,
        Permission.NONE: 0,
    }
)


def _default_weights() -> FrozenMap[Permission, int]:
    return DEFAULT_WEIGHTS


def _empty() -> FrozenMap[str, int]:
    return FrozenMap()


# A GitHub login: letters, digits and hyphens, at most 39. An Enterprise Managed User's
# login adds "_" and the enterprise's short code ("mona_octo").
LOGIN_PATTERN = r"[A-Za-z0-9][A-Za-z0-9-]{0,38}(?:_[A-Za-z0-9]+)?"
LOGIN = re.compile(LOGIN_PATTERN)


def login_key(login: str) -> str:
    """GitHub logins are case-insensitive; this is the form they are compared in."""
    return login.strip().lower()


def team_key(team: str) -> str:
    """Teams are written "org/team-slug" (a leading "@" is tolerated), in any case."""
    return team.strip().lstrip("@").lower()


def _check_weight(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where} must be a whole number of 0 or more, not {value!r}")
    return value


# Plain http is only for a receiver on the same machine: anywhere else the signed
# promotion request (and whatever the receiver answers) would cross the network in clear.
_LOCAL_HOSTS = frozenset({"localhost"})


def webhook_url_problem(url: Any) -> str | None:
    """Why `url` cannot receive promotion webhooks, in words for the configuration's
    author; None when it can (https, or http to this machine, without credentials)."""
    if not isinstance(url, str) or not url.strip():
        return "must be an https URL"
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return "must be a URL without spaces or control characters"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        return "is not a URL that can be read"
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not host:
        return "must be an https URL, such as https://deploy.example.com/pinkflow"
    if parts.username is not None or parts.password is not None:
        # The request is signed with PROMOTION_WEBHOOK_SECRET; a password in the URL would
        # be shown wherever the rules are.
        return "must not contain a user name or password"
    if scheme == "http" and not _is_local_host(host):
        return "must use https (plain http is only accepted for localhost and 127.0.0.1)"
    return None


def _is_local_host(host: str) -> bool:
    if host.lower() in _LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _as_permission(value: Permission | str, where: str) -> Permission:
    if isinstance(value, Permission):
        return value
    try:
        return Permission.parse(value)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


@dataclass(frozen=True)
class Rules:
    """Governance rules as read from `.github/pinkflow.yml`, with the documented defaults.

    Mappings given as plain dicts are normalised into read-only ones: weight keys
    become `Permission`s (missing levels keep their default weight), user and team
    keys are lower-cased. Values that cannot be meant are refused with ValueError,
    so a bad configuration fails closed instead of voting under surprising rules.
    """

    threshold: int = 75
    min_votes: int = 3
    voting_period: timedelta = timedelta(hours=24)
    min_voting_time: timedelta = timedelta(0)
    open_on: str = "deployment"
    preview_environments: tuple[str, ...] = ("Preview*", "preview*")
    production_environment: str = "production"
    min_permission: Permission = Permission.WRITE
    weights: Mapping[Permission, int] = field(default_factory=_default_weights)
    user_weights: Mapping[str, int] = field(default_factory=_empty)
    team_weights: Mapping[str, int] = field(default_factory=_empty)
    allow_author: bool = False
    reset_on_push: bool = True
    preview_health_path: str = "/"
    preview_health_required: bool = False
    promote_provider: str = "github"
    auto_promote: bool = False
    promote_permission: Permission = Permission.WRITE
    allow_force: bool = False
    promote_webhook_url: str | None = None

    def __post_init__(self) -> None:
        def set_(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int):
            raise ValueError(f"threshold must be a whole percentage, not {self.threshold!r}")
        if not 0 <= self.threshold <= 100:
            raise ValueError(f"threshold must be between 0 and 100, not {self.threshold}")
        if isinstance(self.min_votes, bool) or not isinstance(self.min_votes, int) or self.min_votes < 1:
            raise ValueError(f"min_votes must be 1 or more, not {self.min_votes!r}")
        if self.voting_period <= timedelta(0):
            raise ValueError("voting_period must be longer than 0")
        if self.min_voting_time < timedelta(0):
            raise ValueError("min_voting_time must not be negative")
        if self.open_on not in OPEN_ON_CHOICES:
            raise ValueError(f"open_on must be one of {', '.join(OPEN_ON_CHOICES)}, not {self.open_on!r}")
        if self.promote_provider not in PROMOTE_PROVIDERS:
            raise ValueError(
                f"promote.provider must be one of {', '.join(PROMOTE_PROVIDERS)}, not {self.promote_provider!r}"
            )
        if isinstance(self.preview_environments, str):
            set_("preview_environments", (self.preview_environments,))
        else:
            set_("preview_environments", tuple(self.preview_environments))
        if not self.preview_environments:
            raise ValueError("environments.preview must list at least one pattern")
        if not all(isinstance(p, str) and p for p in self.preview_environments):
            raise ValueError("environments.preview must be a list of non-empty patterns")
        if not isinstance(self.production_environment, str) or not self.production_environment.strip():
            raise ValueError("environments.production must name an environment")
        if not isinstance(self.preview_health_path, str) or not self.preview_health_path.startswith("/"):
            raise ValueError(f"preview_health.path must start with '/', not {self.preview_health_path!r}")
        if self.promote_webhook_url is not None:
            problem = webhook_url_problem(self.promote_webhook_url)
            if problem is not None:
                raise ValueError(f"promote.webhook_url {problem}")

        min_permission = _as_permission(self.min_permission, "voters.min_permission")
        promote_permission = _as_permission(self.promote_permission, "promote.permission")
        # "none" would hand the vote (or the promotion) to anyone who can comment.
        if min_permission < Permission.READ:
            raise ValueError("voters.min_permission must be read or above")
        if promote_permission < Permission.READ:
            raise ValueError("promote.permission must be read or above")
        set_("min_permission", min_permission)
        set_("promote_permission", promote_permission)

        weights = dict(DEFAULT_WEIGHTS)
        for level, weight in self.weights.items():
            weights[_as_permission(level, "voters.weights")] = _check_weight(f"voters.weights.{level}", weight)
        set_("weights", FrozenMap(weights))
        set_(
            "user_weights",
            FrozenMap(
                (login_key(login), _check_weight(f"voters.users.{login}", weight))
                for login, weight in self.user_weights.items()
            ),
        )
        set_(
            "team_weights",
            FrozenMap(
                (team_key(team), _check_weight(f"voters.teams.{team}", weight))
                for team, weight in self.team_weights.items()
            ),
        )

    # Stored with each proposal (JSON), so a proposal keeps the rules it was opened under.
    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form that `Rules.from_dict` reads back; durations in seconds."""
        return {
            "threshold": self.threshold,
            "min_votes": self.min_votes,
            "voting_period_seconds": self.voting_period.total_seconds(),
            "min_voting_time_seconds": self.min_voting_time.total_seconds(),
            "open_on": self.open_on,
            "environments": {
                "preview": list(self.preview_environments),
                "production": self.production_environment,
            },
            "voters": {
                "min_permission": self.min_permission.label,
                "weights": {level.label: weight for level, weight in self.weights.items()},
                "users": dict(self.user_weights),
                "teams": dict(self.team_weights),
                "allow_author": self.allow_author,
            },
            "reset_on_push": self.reset_on_push,
            "preview_health": {"path": self.preview_health_path, "required": self.preview_health_required},
            "promote": {
                "provider": self.promote_provider,
                "auto": self.auto_promote,
                "permission": self.promote_permission.label,
                "allow_force": self.allow_force,
                "webhook_url": self.promote_webhook_url,
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rules:
        """Rules from `as_dict`'s shape; absent keys take their defaults."""
        defaults = cls()
        environments = data.get("environments") or {}
        voters = data.get("voters") or {}
        health = data.get("preview_health") or {}
        promote = data.get("promote") or {}
        return cls(
            threshold=data.get("threshold", defaults.threshold),
            min_votes=data.get("min_votes", defaults.min_votes),
            voting_period=timedelta(
                seconds=data.get("voting_period_seconds", defaults.voting_period.total_seconds())
            ),
            min_voting_time=timedelta(
                seconds=data.get("min_voting_time_seconds", defaults.min_voting_time.total_seconds())
            ),
            open_on=data.get("open_on", defaults.open_on),
            # An empty list, which was once accepted, matched nothing: it reads as the defaults.
            preview_environments=tuple(environments.get("preview") or defaults.preview_environments),
            production_environment=environments.get("production", defaults.production_environment),
            min_permission=voters.get("min_permission", defaults.min_permission),
            weights=voters.get("weights", defaults.weights),
            user_weights=voters.get("users", {}),
            team_weights=voters.get("teams", {}),
            allow_author=voters.get("allow_author", defaults.allow_author),
            reset_on_push=data.get("reset_on_push", defaults.reset_on_push),
            preview_health_path=health.get("path", defaults.preview_health_path),
            preview_health_required=health.get("required", defaults.preview_health_required),
            promote_provider=promote.get("provider", defaults.promote_provider),
            auto_promote=promote.get("auto", defaults.auto_promote),
            promote_permission=promote.get("permission", defaults.promote_permission),
            allow_force=promote.get("allow_force", defaults.allow_force),
            promote_webhook_url=promote.get("webhook_url", defaults.promote_webhook_url),
        )


def is_preview_environment(name: str | None, patterns: Sequence[str]) -> bool:
    """Does the deployment environment `name` match one of the preview glob patterns?

    Case-insensitive, so "Preview*" also covers Vercel's "Preview – my-project"
    (with an EN DASH) and "preview" from Actions workflows. Dashes are one to it: a
    pattern typed with a hyphen ("Preview - web") matches Vercel's EN DASH.
    """
    if not name:
        return False
    folded = _fold_environment(name)
    return any(fnmatch.fnmatchcase(folded, _fold_environment(pattern)) for pattern in patterns)


# Hyphen, non-breaking hyphen, figure dash, EN DASH, EM DASH and minus sign look alike in
# an environment's name; people type the hyphen.
_DASHES = str.maketrans({dash: "-" for dash in "\u2010\u2011\u2012\u2013\u2014\u2212"})


def _fold_environment(name: str) -> str:
    return name.casefold().translate(_DASHES)


def is_production_environment(name: str | None, production: str) -> bool:
    """Is `name` the production environment `production`, in any case? Vercel names it
    after the project too ("Production – web", with an EN DASH), which counts as well."""
    if not name:
        return False
    folded, wanted = name.casefold().strip(), production.casefold().strip()
    if folded == wanted:
        return True
    rest = folded.removeprefix(wanted)
    return rest != folded and rest[:1] == " " and rest.lstrip()[:1] in ("–", "-", "—")


def weight_for(*, login: str, permission: Permission, teams: Iterable[str] = (), rules: Rules) -> int:
    """The weight of a vote cast now by `login`.

    An explicit user weight wins over everything; otherwise the highest of the role
    weight and the weights of the voter's configured teams.
    """
    user_weight = rules.user_weights.get(login_key(login))
    if user_weight is not None:
        return user_weight
    weight = rules.weights.get(permission, 0)
    for team in teams:
        weight = max(weight, rules.team_weights.get(team_key(team), 0))
    return weight
