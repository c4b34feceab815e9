"""Reading a repository's `.github/pinkflow.yml` into `Rules` (DESIGN section 3).

Pure: the caller fetches the file's text (from the default branch, never the pull
request's) and passes the installation-wide defaults in. The file fails closed: every
problem is collected with its key and line, and any problem refuses the whole file,
because rules read half-way would put a vote under rules nobody wrote.

YAML is read node by node (`yaml.compose` with a safe loader), so that every value
keeps the line it came from; nothing is ever constructed from arbitrary tags.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .durations import format_duration
from .permissions import Permission
from .rules import LOGIN, OPEN_ON_CHOICES, PROMOTE_PROVIDERS, Rules, login_key, team_key, webhook_url_problem

CONFIG_PATH = ".github/pinkflow.yml"
MAX_CONFIG_BYTES = 64 * 1024
# Deep enough for any real configuration; the YAML composer recurses once per level.
MAX_NESTING = 20
# Vote weights are stored as 32-bit integers and summed; nobody needs more than this.
MAX_WEIGHT = 1000
# Deadlines are stored as datetimes: a period of centuries would overflow them.
MAX_DURATION = timedelta(days=365)
MAX_NAME_LENGTH = 255  # GitHub's limit on an environment name
MAX_PATTERNS = 100
MAX_PATH_LENGTH = 2000

TOP_LEVEL_KEYS = (
    "threshold",
    "min_votes",
    "voting_period",
    "min_voting_time",
    "open_on",
    "environments",
    "voters",
    "reset_on_push",
    "preview_health",
    "promote",
)
ENVIRONMENT_KEYS = ("preview", "production")
VOTER_KEYS = ("min_permission", "weights", "users", "teams", "allow_author")
PREVIEW_HEALTH_KEYS = ("path", "required")
PROMOTE_KEYS = ("provider", "auto", "permission", "allow_force", "webhook_url")
SECTIONS = {
    "environments": ENVIRONMENT_KEYS,
    "voters": VOTER_KEYS,
    "preview_health": PREVIEW_HEALTH_KEYS,
    "promote": PROMOTE_KEYS,
}
# Levels a configuration may name; "none" would hand the vote to anyone who can comment.
PERMISSION_NAMES = tuple(level.label for level in sorted(Permission, reverse=True) if level >= Permission.READ)

_YAML = "tag:yaml.org,2002:"
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # what YAML counts as a new line
_DURATION = re.compile(r"\s*(?:\d+(?:\.\d+)?\s*[smhd]\s*)+", re.IGNORECASE)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])", re.IGNORECASE)
_BARE_SECONDS = re.compile(r"\s*\d+(?:\.\d+)?\s*")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PERCENTAGE = re.compile(r"\s*(\d{1,3})\s*%?\s*")
_TEAM = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")

# The documented file (DESIGN section 3): every key with its built-in default. Shown to
# people whose file could not be read; the tests check that it reads as `Rules()`.
CONFIG_REFERENCE = """\
threshold: 75            # percent of weighted approve / (approve + reject); pass at or over
min_votes: 3             # distinct voters (approve, reject, abstain) for quorum
voting_period: 24h       # from the proposal's opening; units s, m, h, d
min_voting_time: 0       # no promotion before the vote has been open this long
open_on: deployment      # deployment: on a preview deployment's success; pull_request: on open/push
environments:
  preview: ["Preview*", "preview*"]      # glob patterns, matched case-insensitively
  production: production
voters:
  min_permission: write  # read | triage | write | maintain | admin
  weights: {admin: 3, maintain: 2, write: 1, triage: 1, read: 1}
  users: {}              # login: weight, overrides the role weight
  teams: {}              # "org/team-slug": weight; a voter gets the highest that applies
  allow_author: false    # may the pull request's author vote?
reset_on_push: true      # a new head SHA starts a new proposal with no votes
preview_health:
  path: /                # the bot GETs the preview URL + path and shows status and time
  required: false        # true: no promotion while the preview answers with an error
promote:
  provider: github       # github | protection_rule | vercel | webhook
  auto: false            # promote as soon as the vote passes
  permission: write
  allow_force: false
  # webhook_url: https://deploy.example.com/pinkflow   # where the webhook provider POSTs
"""

DURATION_HINT = "a duration such as 30m, 24h or 2d (units s, m, h, d; a bare number is seconds)"
# Durations as people write them in words ("2 days", "1 hour 30 minutes", "1w"): refused,
# with the short form to write instead.
_SPELLED_PART = re.compile(
    r"(\d+(?:\.\d+)?)\s*(weeks?|wks?|w|days?|hours?|hrs?|minutes?|mins?|seconds?|secs?)\b", re.IGNORECASE
)
_SPELLED_DURATION = re.compile(r"\s*(?:" + _SPELLED_PART.pattern + r"[\s,]*(?:and\s+)?)+", re.IGNORECASE)
_SPELLED_UNITS = {"w": ("d", 7), "d": ("d", 1), "h": ("h", 1), "m": ("m", 1), "s": ("s", 1)}
# Messages of the YAML reader for the usual slips, in the words of someone fixing the file.
_YAML_SLIPS = (
    ("found character '\\t'", "a tab character: YAML is indented with spaces only"),
    (
        "mapping values are not allowed here",
        "a key: value where none was expected; check the indentation of this line and the one above "
        "(the keys of one section start in the same column), and that each key ends with a colon",
    ),
    (
        "expected <block end>",
        "this line is not indented like the lines around it (the keys of one section start in the same column)",
    ),
    ("could not find expected ':'", "a line without a colon after its key"),
    ("found character '@'", "a value or key starting with @ must be quoted ('@alice')"),
    ("found character '`'", "a value starting with ` must be quoted"),
    ("expected ',' or ']'", "a [ list ] that is not closed with ]"),
    ("expected ',' or '}'", "a { mapping } that is not closed with }"),
    ("found unexpected end of stream", "a quote that is not closed"),
)


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the file: where (dotted key, 1-based line) and what."""

    key: str  # "voters.weights.admin"; "" for the file as a whole
    line: int | None
    message: str
    # The repository whose file it is, when not the pull request's own: the owner's
    # `.github` repository, whose file applies where a repository has none.
    repository: str = ""

    def describe(self) -> str:
        """`line 4, voters.weights.admin: must be a whole number 0 or more`."""
        where = ", ".join(part for part in (f"line {self.line}" if self.line else "", self.key) if part)
        return f"{where}: {self.message}" if where else self.message


class ConfigError(Exception):
    """The file cannot be used; `problems` lists everything found, in file order."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems: tuple[ConfigProblem, ...] = tuple(problems)
        listed = "; ".join(problem.describe() for problem in self.problems)
        super().__init__(f"{_count(len(self.problems), 'problem')} in {CONFIG_PATH}: {listed}")


def parse_config(text: str, *, defaults: Rules) -> Rules:
    """The rules that `text` (the file's content) sets, over `defaults` for keys it leaves out.

    An empty file (or one with only comments) means the defaults. Raises ConfigError
    with every problem found; never anything else.
    """
    root, problems = _compose(text)
    if problems:
        raise ConfigError(problems)
    if root is None or _is_null(root):
        return defaults
    reader = _Reader()
    changes = reader.document(root)
    reader.check_webhook_provider(changes, defaults=defaults)
    if "weights" in changes:
        # Levels the file leaves out keep the installation's weight, not the built-in one.
        changes["weights"] = {**defaults.weights, **changes["weights"]}
    if not reader.problems:
        try:
            return dataclasses.replace(defaults, **changes)
        except ValueError as error:  # the readers should have caught it; fail closed all the same
            reader.problem("", None, str(error))
    raise ConfigError(reader.in_file_order())


def duration_seconds(text: str) -> float | None:
    """`24h`, `90m`, `1h30m`, `45s`, `2d`, or a bare number of seconds, in seconds;
    None when `text` is none of these. Very large values come back as `inf`."""
    if _BARE_SECONDS.fullmatch(text):
        return float(text)
    if _DURATION.fullmatch(text):
        return sum(float(amount) * _UNIT_SECONDS[unit.lower()] for amount, unit in _DURATION_PART.findall(text))
    return None


# --- Reading YAML safely ----------------------------------------------------------------


class _Refused(ComposerError):
    """YAML that is valid but not accepted here."""


class _ConfigLoader(yaml.SafeLoader):
    """A safe loader that also refuses aliases and deep nesting: both would let a few
    bytes of YAML cost unbounded time or recursion once walked."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise _Refused(None, None, "YAML aliases (*name) are not supported; write the value out", mark)
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                mark = self.peek_event().start_mark
                raise _Refused(None, None, f"nested more than {MAX_NESTING} levels deep", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _compose(text: str) -> tuple[Node | None, list[ConfigProblem]]:
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_CONFIG_BYTES:
        message = f"the file is {size // 1024} KiB; at most {MAX_CONFIG_BYTES // 1024} KiB is read"
        return None, [ConfigProblem("", None, message)]
    try:
        return yaml.compose(text, Loader=_ConfigLoader), []
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        if isinstance(error, _Refused):
            return None, [ConfigProblem("", line, str(error.problem))]
        detail = ", ".join(part for part in (error.context, error.problem) if part) or "unreadable YAML"
        return None, [ConfigProblem("", line, f"YAML syntax error: {_plain_yaml_error(detail)}")]
    except yaml.reader.ReaderError as error:
        line = len(_LINE_BREAK.findall(text, 0, error.position)) + 1
        return None, [ConfigProblem("", line, f"contains a character YAML does not allow (#x{error.character:04x})")]
    except yaml.YAMLError as error:
        return None, [ConfigProblem("", None, f"YAML error: {error}")]


def _plain_yaml_error(detail: str) -> str:
    """The YAML reader's message in plain words where it is one of the usual slips."""
    return next((plain for found, plain in _YAML_SLIPS if found in detail), detail)


def spelled_duration(text: str) -> str | None:
    """The short form of a duration written in words ("2 days" is "2d", "1 week" is "7d");
    None when `text` is not one."""
    if not _SPELLED_DURATION.fullmatch(text):
        return None
    parts = []
    for amount, unit in _SPELLED_PART.findall(text):
        short, factor = _SPELLED_UNITS[unit[0].lower()]
        parts.append(f"{float(amount) * factor:g}{short}")
    return "".join(parts)


_PLAIN_TAGS = frozenset(_YAML + kind for kind in ("null", "bool", "int", "float", "str", "timestamp", "seq", "map"))


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _YAML + "null"


# Values people try that are not choices here, and what to write instead.
_PROVIDER_HINTS = {"netlify": "; for Netlify, use github (your CD promotes on the deployment event) or webhook"}
_OPEN_ON_HINTS = {"push": "; pull_request opens a vote on each push to the pull request"}


def _milliseconds_hint(text: str) -> str:
    """For a bare number too long in seconds: DAO_VOTING_PERIOD counts milliseconds, the file seconds."""
    if not _BARE_SECONDS.fullmatch(text):
        return ""
    seconds = float(text) / 1000
    # Compared as a number first: a timedelta cannot hold the largest numbers written.
    if not 0 < seconds <= MAX_DURATION.total_seconds():
        return ""
    meant = timedelta(seconds=seconds)
    return f"; a bare number is seconds here, not milliseconds: for {text} ms write {format_duration(meant)}"


def _count(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _choices(values: Sequence[str]) -> str:
    return ", ".join(values[:-1]) + " or " + values[-1] if len(values) > 1 else values[0]


def _suggestion(word: str, candidates: Iterable[str]) -> str:
    match = difflib.get_close_matches(word.lower(), list(candidates), n=1, cutoff=0.6)
    return f'; did you mean "{match[0]}"?' if match else ""


# Names people bring from other tools, and the key that means the same here.
_KEY_SYNONYMS = {"quorum": "min_votes", "period": "voting_period"}


def _unknown_key_message(name: str, *, section: str, known: Sequence[str]) -> str:
    synonym = _KEY_SYNONYMS.get(name.lower()) if not section else None
    if synonym in known:
        return f'unknown key; did you mean "{synonym}"?'
    suggestion = _suggestion(name, known)
    if not suggestion:
        # A key written at the wrong level: `allow_author:` at the top instead of under `voters:`.
        for other, keys in SECTIONS.items():
            if name.lower() in keys and other != section:
                return f'unknown key here; it belongs under "{other}:" ({other}.{name.lower()})'
        return f"unknown key; expected one of {', '.join(known)}"
    return "unknown key" + suggestion


class _Invalid:
    """A value that could not be read; its problem is already recorded."""


INVALID: Any = _Invalid()


@dataclass(frozen=True)
class _Section:
    """A mapping's entries by name, with the dotted path that names them in problems."""

    path: str
    entries: dict[str, tuple[Node, Node]]

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name


_EMPTY = _Section("", {})


class _Reader:
    """Walks the composed document, converting values and collecting problems."""

    def __init__(self) -> None:
        # With the position each was found at, so they can be listed in file order.
        self._problems: list[tuple[float, float, ConfigProblem]] = []
        self.nodes: dict[str, Node] = {}  # the value node each key was read from
        self._constructor = SafeConstructor()

    @property
    def problems(self) -> list[ConfigProblem]:
        return [problem for _, _, problem in self._problems]

    def in_file_order(self) -> list[ConfigProblem]:
        return [problem for _, _, problem in sorted(self._problems, key=lambda entry: entry[:2])]

    def refuse_tag(self, key: str, node: Node) -> bool:
        """Records a problem for an explicit tag (`!!python/...`, `!!binary`): nothing here
        is ever constructed from one, and silently reading past it would hide a mistake."""
        if node.tag in _PLAIN_TAGS:
            return False
        self.problem(key, node, f"uses the YAML tag {node.tag}, which is not supported")
        return True

    def problem(self, key: str, node: Node | None, message: str) -> Any:
        if node is None:
            self._problems.append((math.inf, math.inf, ConfigProblem(key, None, message)))
        else:
            mark = node.start_mark
            self._problems.append((mark.line, mark.column, ConfigProblem(key, mark.line + 1, message)))
        return INVALID

    # -- structure ------------------------------------------------------------------

    def mapping(
        self,
        node: Node,
        path: str,
        *,
        known: Sequence[str] | None,
        normalise: Callable[[str], str] = str.lower,
        must_be: str = "must be a mapping of keys to values",
    ) -> _Section:
        if _is_null(node) or self.refuse_tag(path, node):
            return _Section(path, {})
        if not isinstance(node, MappingNode):
            self.problem(path, node, must_be)
            return _Section(path, {})
        section = _Section(path, {})
        first_seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or not key_node.value.strip():
                self.problem(path, key_node, "keys must be plain names")
                continue
            # The text as written: YAML 1.1 would read a key `on:` or `yes:` as true.
            name = key_node.value.strip()
            key = section.key(name)
            if known is not None and name not in known:
                self.problem(key, key_node, _unknown_key_message(name, section=path, known=known))
                continue
            identity = normalise(name)
            if identity in first_seen:
                self.problem(key, key_node, f"appears more than once (first on line {first_seen[identity]})")
                continue
            first_seen[identity] = _line(key_node)
            section.entries[name] = (key_node, value_node)
        return section

    def section(self, parent: _Section, name: str) -> _Section:
        if name not in parent.entries:
            return _Section(parent.key(name), {})
        return self.mapping(parent.entries[name][1], parent.key(name), known=SECTIONS[name])

    def read(
        self, section: _Section, name: str, changes: dict[str, Any], field: str, convert: Callable[[str, Node], Any]
    ) -> None:
        if name not in section.entries:
            return
        key, node = section.key(name), section.entries[name][1]
        self.nodes[key] = node
        value = convert(key, node)
        if value is not INVALID:
            changes[field] = value

    # -- the document -----------------------------------------------------------------

    def document(self, root: Node) -> dict[str, Any]:
        """The `Rules` fields the file sets, by field name."""
        top = self.mapping(
            root,
            "",
            known=TOP_LEVEL_KEYS,
            must_be="the file must be a mapping of settings (key: value lines), like the documented example",
        )
        changes: dict[str, Any] = {}
        self.read(top, "threshold", changes, "threshold", self.percentage)
        self.read(top, "min_votes", changes, "min_votes", self.min_votes)
        self.read(top, "voting_period", changes, "voting_period", self.voting_period)
        self.read(top, "min_voting_time", changes, "min_voting_time", self.min_voting_time)
        self.read(top, "open_on", changes, "open_on", self.choice(OPEN_ON_CHOICES, _OPEN_ON_HINTS))
        self.read(top, "reset_on_push", changes, "reset_on_push", self.boolean)

        environments = self.section(top, "environments")
        self.read(environments, "preview", changes, "preview_environments", self.patterns)
        self.read(environments, "production", changes, "production_environment", self.environment_name)

        voters = self.section(top, "voters")
        self.read(voters, "min_permission", changes, "min_permission", self.permission)
        self.read(voters, "weights", changes, "weights", self.role_weights)
        self.read(voters, "users", changes, "user_weights", self.user_weights)
        self.read(voters, "teams", changes, "team_weights", self.team_weights)
        self.read(voters, "allow_author", changes, "allow_author", self.boolean)

        health = self.section(top, "preview_health")
        self.read(health, "path", changes, "preview_health_path", self.health_path)
        self.read(health, "required", changes, "preview_health_required", self.boolean)

        promote = self.section(top, "promote")
        self.read(promote, "provider", changes, "promote_provider", self.choice(PROMOTE_PROVIDERS, _PROVIDER_HINTS))
        self.read(promote, "auto", changes, "auto_promote", self.boolean)
        self.read(promote, "permission", changes, "promote_permission", self.permission)
        self.read(promote, "allow_force", changes, "allow_force", self.boolean)
        self.read(promote, "webhook_url", changes, "promote_webhook_url", self.webhook_url)
        return changes

    def check_webhook_provider(self, changes: dict[str, Any], *, defaults: Rules) -> None:
        provider = changes.get("promote_provider", defaults.promote_provider)
        has_url = "promote.webhook_url" in self.nodes or defaults.promote_webhook_url is not None
        if provider == "webhook" and not has_url:
            self.problem(
                "promote.webhook_url",
                self.nodes.get("promote.provider"),
                "the webhook provider needs promote.webhook_url, the https URL that receives the promotion",
            )

    # -- scalars ----------------------------------------------------------------------

    def scalar(self, key: str, node: Node, must_be: str) -> tuple[str, Any] | None:
        """(kind, value) of a scalar: kind is null, bool, int, float or str; None after a problem."""
        if self.refuse_tag(key, node):
            return None
        if not isinstance(node, ScalarNode):
            self.problem(key, node, must_be)
            return None
        tag = node.tag.removeprefix(_YAML)
        try:
            if tag == "null":
                return "null", None
            if tag == "bool":
                return "bool", self._constructor.construct_yaml_bool(node)
            if tag == "int":
                return "int", self._constructor.construct_yaml_int(node)
            if tag == "float":
                return "float", self._constructor.construct_yaml_float(node)
        except (ValueError, ArithmeticError, yaml.YAMLError):
            self.problem(key, node, must_be)
            return None
        return "str", node.value  # a timestamp-looking value is only ever wanted as text here

    def whole_number(self, key: str, node: Node, *, minimum: int, maximum: int | None, must_be: str) -> Any:
        value = self.scalar(key, node, must_be)
        if value is None:
            return INVALID
        kind, number = value
        if kind == "float" and math.isfinite(number) and number == int(number):
            kind, number = "int", int(number)  # `3.0` is a whole number
        if kind != "int" or number < minimum:
            return self.problem(key, node, must_be)
        if maximum is not None and number > maximum:
            return self.problem(key, node, f"must be at most {maximum}")
        return number

    def percentage(self, key: str, node: Node) -> Any:
        must_be = "must be a whole percentage from 0 to 100"
        if isinstance(node, ScalarNode) and node.tag == _YAML + "float":
            fraction = self.scalar(key, node, must_be)
            if fraction is not None and 0 < fraction[1] < 1:
                return self.problem(key, node, f"{must_be}; {node.value} reads as a fraction: for {fraction[1]:.0%} write {round(fraction[1] * 100)}")
        if isinstance(node, ScalarNode) and node.tag == _YAML + "str":
            match = _PERCENTAGE.fullmatch(node.value)  # `75%` and "75" read as meant
            if match is None or int(match.group(1)) > 100:
                return self.problem(key, node, must_be)
            return int(match.group(1))
        value = self.whole_number(key, node, minimum=0, maximum=None, must_be=must_be)
        if value is not INVALID and value > 100:
            return self.problem(key, node, must_be)
        return value

    def min_votes(self, key: str, node: Node) -> Any:
        return self.whole_number(key, node, minimum=1, maximum=None, must_be="must be a whole number 1 or more")

    def weight(self, key: str, node: Node) -> Any:
        return self.whole_number(key, node, minimum=0, maximum=MAX_WEIGHT, must_be="must be a whole number 0 or more")

    def boolean(self, key: str, node: Node) -> Any:
        value = self.scalar(key, node, "must be true or false")
        if value is None:
            return INVALID
        if value[0] != "bool":
            quoted = value[0] == "str" and node.value.strip().lower() in ("true", "false")
            return self.problem(key, node, "must be true or false, without quotes" if quoted else "must be true or false")
        return value[1]

    def text(self, key: str, node: Node, must_be: str) -> Any:
        """A non-empty string; numbers are taken as written (`production: 2024`)."""
        value = self.scalar(key, node, must_be)
        if value is None:
            return INVALID
        if value[0] not in ("str", "int", "float") or not node.value.strip():
            return self.problem(key, node, must_be)
        return node.value.strip()

    def choice(self, choices: Sequence[str], hints: dict[str, str] | None = None) -> Callable[[str, Node], Any]:
        def convert(key: str, node: Node) -> Any:
            must_be = f"must be one of {_choices(choices)}"
            value = self.text(key, node, must_be)
            if value is INVALID:
                return INVALID
            if value.lower() not in choices:
                return self.problem(key, node, must_be + (hints or {}).get(value.lower(), _suggestion(value, choices)))
            return value.lower()

        return convert

    def permission(self, key: str, node: Node) -> Any:
        value = self.choice(PERMISSION_NAMES)(key, node)
        return value if value is INVALID else Permission.parse(value)

    def duration(self, key: str, node: Node, *, allow_zero: bool) -> Any:
        value = self.scalar(key, node, f"must be {DURATION_HINT}")
        if value is None:
            return INVALID
        if value[0] not in ("str", "int", "float"):
            return self.problem(key, node, f"must be {DURATION_HINT}")
        # The text as written: YAML 1.1 would read `1:30` as the number 90.
        seconds = duration_seconds(node.value)
        if seconds is None:
            short = spelled_duration(node.value)
            instead = f"; write {short}" if short else ""
            return self.problem(key, node, f"must be {DURATION_HINT}{instead}")
        if not math.isfinite(seconds) or seconds > MAX_DURATION.total_seconds():
            return self.problem(key, node, f"must be at most {MAX_DURATION.days}d" + _milliseconds_hint(node.value))
        if not allow_zero and seconds <= 0:
            return self.problem(key, node, "must be longer than 0")
        return timedelta(seconds=seconds)

    def voting_period(self, key: str, node: Node) -> Any:
        return self.duration(key, node, allow_zero=False)

    def min_voting_time(self, key: str, node: Node) -> Any:
        return self.duration(key, node, allow_zero=True)

    def environment_name(self, key: str, node: Node) -> Any:
        value = self.text(key, node, "must name an environment")
        if value is not INVALID and len(value) > MAX_NAME_LENGTH:
            return self.problem(key, node, f"must be at most {MAX_NAME_LENGTH} characters")
        return value

    def patterns(self, key: str, node: Node) -> Any:
        must_be = 'must be a pattern or a list of patterns, such as ["Preview*", "preview*"]'
        if isinstance(node, ScalarNode):
            items: list[tuple[str, Node]] = [(key, node)]
        elif self.refuse_tag(key, node):
            return INVALID
        elif isinstance(node, SequenceNode):
            items = [(f"{key}[{index}]", item) for index, item in enumerate(node.value)]
            if not items:
                # No pattern matches no deployment: no vote would ever open, and nothing would say why.
                return self.problem(
                    key, node, 'must list at least one pattern, such as ["Preview*", "preview*"] (the default when the key is left out)'
                )
            if len(items) > MAX_PATTERNS:
                return self.problem(key, node, f"must list at most {MAX_PATTERNS} patterns")
        else:
            return self.problem(key, node, must_be)
        patterns = [self.pattern(item_key, item) for item_key, item in items]
        return INVALID if INVALID in patterns else tuple(patterns)

    def pattern(self, key: str, node: Node) -> Any:
        value = self.text(key, node, "must be a non-empty pattern, such as Preview*")
        if value is not INVALID and len(value) > MAX_NAME_LENGTH:
            return self.problem(key, node, f"must be at most {MAX_NAME_LENGTH} characters")
        return value

    def health_path(self, key: str, node: Node) -> Any:
        must_be = "must be a path starting with /, such as /api/health"
        value = self.text(key, node, must_be)
        if value is INVALID:
            return INVALID
        if not value.startswith("/") or any(ch.isspace() or ord(ch) < 0x20 for ch in value):
            return self.problem(key, node, must_be)
        if len(value) > MAX_PATH_LENGTH:
            return self.problem(key, node, f"must be at most {MAX_PATH_LENGTH} characters")
        return value

    def webhook_url(self, key: str, node: Node) -> Any:
        value = self.text(key, node, "must be an https URL")
        if value is INVALID:
            return INVALID
        problem = webhook_url_problem(value)
        return value if problem is None else self.problem(key, node, problem)

    # -- weights ----------------------------------------------------------------------

    def role_weights(self, key: str, node: Node) -> Any:
        section = self.mapping(node, key, known=PERMISSION_NAMES, must_be="must map each role to its weight, such as {admin: 3, write: 1}")
        weights = {name: self.weight(section.key(name), value) for name, (_, value) in section.entries.items()}
        if INVALID in weights.values():
            return INVALID
        return {Permission.parse(name): weight for name, weight in weights.items()}

    def user_weights(self, key: str, node: Node) -> Any:
        return self._named_weights(
            key,
            node,
            normalise=lambda name: login_key(name.lstrip("@")),
            valid=LOGIN,
            must_be="is not a GitHub login",
            shape="must map each login to its weight, such as {alice: 2}",
        )

    def team_weights(self, key: str, node: Node) -> Any:
        return self._named_weights(
            key,
            node,
            normalise=team_key,
            valid=_TEAM,
            must_be='must be written "org/team-slug"',
            shape='must map each team to its weight, such as {"acme/core": 2}',
        )

    def _named_weights(
        self, key: str, node: Node, *, normalise: Callable[[str], str], valid: re.Pattern[str], must_be: str, shape: str
    ) -> Any:
        section = self.mapping(node, key, known=None, normalise=normalise, must_be=shape)
        weights: dict[str, int] = {}
        failed = False
        for name, (key_node, value_node) in section.entries.items():
            entry_key = section.key(name)
            if not valid.fullmatch(name.lstrip("@")):
                self.problem(entry_key, key_node, must_be)
                failed = True
                continue
            weight = self.weight(entry_key, value_node)
            failed = failed or weight is INVALID
            weights[normalise(name)] = weight
        return INVALID if failed else weights
