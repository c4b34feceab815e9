"""Reading `.github/pinkflow.yml`: every key in its forms, every problem with its key and line."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pinkflow_bot.governance.config import (
    CONFIG_REFERENCE,
    MAX_CONFIG_BYTES,
    PROMOTE_KEYS,
    TOP_LEVEL_KEYS,
    VOTER_KEYS,
    ConfigError,
    ConfigProblem,
    parse_config,
)
from pinkflow_bot.governance.permissions import Permission
from pinkflow_bot.governance.render import render_config_error
from pinkflow_bot.governance.rules import Rules
from tests.paths import shared_dir

# Installation-wide defaults that differ from the built-in ones, so a test can tell
# "left out of the file" (these) from "Rules()" (the built-in ones).
DEFAULTS = Rules(
    threshold=60,
    min_votes=2,
    voting_period=timedelta(hours=6),
    auto_promote=True,
    weights={"admin": 5},
)


def problems_of(text: str, *, defaults: Rules = DEFAULTS) -> tuple[ConfigProblem, ...]:
    with pytest.raises(ConfigError) as raised:
        parse_config(text, defaults=defaults)
    return raised.value.problems


# --- The documented example ---------------------------------------------------------------


def design_example() -> str:
    design = (shared_dir() / "DESIGN.md").read_text()
    section = design.split("## 3. Governance rules", 1)[1]
    return re.search(r"```yaml\n(.*?)```", section, re.DOTALL).group(1)


def test_the_documented_example_reads_as_the_built_in_defaults():
    assert parse_config(design_example(), defaults=Rules()) == Rules()


def test_the_reference_shown_to_users_is_the_documented_example_and_reads_as_the_defaults():
    assert CONFIG_REFERENCE.startswith(design_example())
    assert parse_config(CONFIG_REFERENCE, defaults=Rules()) == Rules()


def test_the_documented_example_overrides_installation_defaults_it_names():
    rules = parse_config(design_example(), defaults=DEFAULTS)
    assert rules.threshold == 75 and rules.min_votes == 3
    assert rules.voting_period == timedelta(hours=24)
    assert rules.auto_promote is False
    assert rules.weights[Permission.ADMIN] == 3


# --- Every key in its accepted forms ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("threshold: 80", {"threshold": 80}, id="threshold"),
        pytest.param("threshold: 0", {"threshold": 0}, id="threshold-0"),
        pytest.param("threshold: 100", {"threshold": 100}, id="threshold-100"),
        pytest.param("threshold: '66%'", {"threshold": 66}, id="threshold-percent-sign"),
        pytest.param("threshold: 70.0", {"threshold": 70}, id="threshold-whole-float"),
        pytest.param("min_votes: 1", {"min_votes": 1}, id="min_votes"),
        pytest.param("min_votes: 12", {"min_votes": 12}, id="min_votes-12"),
        pytest.param("voting_period: 45s", {"voting_period": timedelta(seconds=45)}, id="period-seconds"),
        pytest.param("voting_period: 90m", {"voting_period": timedelta(minutes=90)}, id="period-minutes"),
        pytest.param("voting_period: 24h", {"voting_period": timedelta(hours=24)}, id="period-hours"),
        pytest.param("voting_period: 2d", {"voting_period": timedelta(days=2)}, id="period-days"),
        pytest.param("voting_period: 1h30m", {"voting_period": timedelta(minutes=90)}, id="period-combined"),
        pytest.param("voting_period: 1.5h", {"voting_period": timedelta(minutes=90)}, id="period-fraction"),
        pytest.param("voting_period: 3600", {"voting_period": timedelta(hours=1)}, id="period-bare-seconds"),
        pytest.param("voting_period: 12H", {"voting_period": timedelta(hours=12)}, id="period-upper-case"),
        pytest.param("min_voting_time: 0", {"min_voting_time": timedelta(0)}, id="min-time-zero"),
        pytest.param("min_voting_time: 10m", {"min_voting_time": timedelta(minutes=10)}, id="min-time"),
        pytest.param("open_on: pull_request", {"open_on": "pull_request"}, id="open_on"),
        pytest.param("open_on: Deployment", {"open_on": "deployment"}, id="open_on-any-case"),
        pytest.param("reset_on_push: false", {"reset_on_push": False}, id="reset_on_push"),
        pytest.param("environments: {preview: 'pr-*'}", {"preview_environments": ("pr-*",)}, id="preview-one"),
        pytest.param(
            "environments:\n  preview:\n    - Preview*\n    - staging-*\n",
            {"preview_environments": ("Preview*", "staging-*")},
            id="preview-list",
        ),
        pytest.param("environments: {production: Production}", {"production_environment": "Production"}, id="prod"),
        pytest.param("environments: {production: 2024}", {"production_environment": "2024"}, id="prod-number"),
        pytest.param("voters: {min_permission: maintain}", {"min_permission": Permission.MAINTAIN}, id="min_perm"),
        pytest.param("voters: {min_permission: READ}", {"min_permission": Permission.READ}, id="min_perm-case"),
        pytest.param(
            "voters:\n  weights: {maintain: 4, read: 0}\n",
            # Levels left out keep the installation's weights (admin 5), not the built-in ones.
            {"weights": {**DEFAULTS.weights, Permission.MAINTAIN: 4, Permission.READ: 0}},
            id="weights-partial",
        ),
        pytest.param(
            "voters: {users: {'@Alice': 4, bob-2: 0}}", {"user_weights": {"alice": 4, "bob-2": 0}}, id="users"
        ),
        pytest.param(
            # Enterprise Managed Users' logins end in "_" and the enterprise's short code.
            "voters: {users: {mona_octo: 3, '@Hubot-2_ACME': 2}}",
            {"user_weights": {"mona_octo": 3, "hubot-2_acme": 2}},
            id="users-managed",
        ),
        pytest.param("voters: {teams: {Acme/Core-Team: 2}}", {"team_weights": {"acme/core-team": 2}}, id="teams"),
        pytest.param("voters: {allow_author: true}", {"allow_author": True}, id="allow_author"),
        pytest.param("voters: {allow_author: yes}", {"allow_author": True}, id="allow_author-yes"),
        pytest.param("voters:\n  # nothing yet\n", {}, id="empty-section"),
        pytest.param("voters: {users: }", {"user_weights": {}}, id="empty-users"),
        pytest.param("preview_health: {path: /api/health}", {"preview_health_path": "/api/health"}, id="path"),
        pytest.param("preview_health: {required: true}", {"preview_health_required": True}, id="health-required"),
        pytest.param("promote: {provider: vercel}", {"promote_provider": "vercel"}, id="provider-vercel"),
        pytest.param("promote: {provider: protection_rule}", {"promote_provider": "protection_rule"}, id="provider-pr"),
        pytest.param("promote: {provider: GitHub}", {"promote_provider": "github"}, id="provider-case"),
        pytest.param("promote: {auto: false}", {"auto_promote": False}, id="auto"),
        pytest.param("promote: {permission: admin}", {"promote_permission": Permission.ADMIN}, id="permission"),
        pytest.param("promote: {allow_force: true}", {"allow_force": True}, id="allow_force"),
        pytest.param(
            "promote:\n  provider: webhook\n  webhook_url: https://deploy.example.com/pinkflow?team=web\n",
            {"promote_provider": "webhook", "promote_webhook_url": "https://deploy.example.com/pinkflow?team=web"},
            id="webhook",
        ),
        pytest.param(
            "promote: {provider: webhook, webhook_url: 'http://localhost:8080/hook'}",
            {"promote_provider": "webhook", "promote_webhook_url": "http://localhost:8080/hook"},
            id="webhook-localhost",
        ),
        pytest.param(
            "promote: {provider: webhook, webhook_url: 'http://127.0.0.1:9000/'}",
            {"promote_provider": "webhook", "promote_webhook_url": "http://127.0.0.1:9000/"},
            id="webhook-loopback",
        ),
        pytest.param(
            "promote: {webhook_url: 'https://hooks.example.com/x'}",
            {"promote_webhook_url": "https://hooks.example.com/x"},
            id="webhook-url-kept-for-later",
        ),
    ],
)
def test_each_key_in_its_accepted_forms(text, expected):
    rules = parse_config(text, defaults=DEFAULTS)
    assert rules == Rules(**{**_fields(DEFAULTS), **expected})


def _fields(rules: Rules) -> dict:
    return {name: getattr(rules, name) for name in Rules.__dataclass_fields__}


@pytest.mark.parametrize(
    "text",
    ["", "\n\n", "# only a comment\n", "---\n", "~\n", "null", "---\n# nothing\n...\n"],
    ids=["empty", "blank-lines", "comment", "document-start", "tilde", "null", "empty-document"],
)
def test_an_empty_file_means_the_installation_defaults(text):
    assert parse_config(text, defaults=DEFAULTS) == DEFAULTS


def test_keys_left_out_take_the_installation_defaults_not_the_built_in_ones():
    rules = parse_config("min_votes: 5\nvoters: {allow_author: true}\n", defaults=DEFAULTS)
    assert rules.min_votes == 5 and rules.allow_author is True
    assert rules.threshold == 60  # DEFAULTS, where Rules() says 75
    assert rules.voting_period == timedelta(hours=6)
    assert rules.auto_promote is True
    assert rules.weights[Permission.ADMIN] == 5


def test_a_full_file_sets_every_field():
    text = """\
threshold: 90
min_votes: 4
voting_period: 2d
min_voting_time: 1h
open_on: pull_request
environments:
  preview: "review-*"
  production: live
voters:
  min_permission: triage
  weights: {admin: 9, maintain: 8, write: 7, triage: 6, read: 5}
  users: {alice: 10}
  teams: {"acme/core": 3}
  allow_author: true
reset_on_push: false
preview_health:
  path: /healthz
  required: true
promote:
  provider: webhook
  auto: true
  permission: maintain
  allow_force: true
  webhook_url: https://deploy.example.com/hook
"""
    rules = parse_config(text, defaults=Rules())
    assert rules == Rules(
        threshold=90,
        min_votes=4,
        voting_period=timedelta(days=2),
        min_voting_time=timedelta(hours=1),
        open_on="pull_request",
        preview_environments=("review-*",),
        production_environment="live",
        min_permission=Permission.TRIAGE,
        weights={"admin": 9, "maintain": 8, "write": 7, "triage": 6, "read": 5},
        user_weights={"alice": 10},
        team_weights={"acme/core": 3},
        allow_author=True,
        reset_on_push=False,
        preview_health_path="/healthz",
        preview_health_required=True,
        promote_provider="webhook",
        auto_promote=True,
        promote_permission=Permission.MAINTAIN,
        allow_force=True,
        promote_webhook_url="https://deploy.example.com/hook",
    )
    # Nothing the file set fell back to a default.
    differing = [name for name in Rules.__dataclass_fields__ if getattr(rules, name) != getattr(Rules(), name)]
    assert len(differing) == len(Rules.__dataclass_fields__)


# --- Every kind of problem, located -----------------------------------------------------------

WHOLE_NUMBER = "must be a whole number 0 or more"
PERCENTAGE = "must be a whole percentage from 0 to 100"
DURATION = "must be a duration such as 30m, 24h or 2d"


@pytest.mark.parametrize(
    ("text", "key", "line", "message"),
    [
        # Unknown keys, with a suggestion where one is close.
        pytest.param("treshold: 80", "treshold", 1, 'unknown key; did you mean "threshold"?', id="typo-top"),
        pytest.param("voters:\n  weigths: {}\n", "voters.weigths", 2, 'did you mean "weights"?', id="typo-nested"),
        pytest.param(
            "promote:\n  provder: github\n", "promote.provder", 2, 'did you mean "provider"?', id="typo-promote"
        ),
        pytest.param("allow_author: true", "allow_author", 1, "voters.allow_author", id="misplaced-key"),
        pytest.param("colour: pink", "colour", 1, "expected one of threshold, min_votes", id="unknown-no-match"),
        pytest.param("Threshold: 80", "Threshold", 1, 'did you mean "threshold"?', id="keys-are-case-sensitive"),
        pytest.param("voters:\n  weights: {owner: 2}\n", "voters.weights.owner", 2, "unknown key", id="unknown-role"),
        pytest.param("threshold: 80\nthreshold: 90\n", "threshold", 2, "more than once (first on line 1)", id="dup"),
        pytest.param(
            "voters:\n  users:\n    alice: 1\n    Alice: 2\n", "voters.users.Alice", 4, "more than once", id="dup-login"
        ),
        # Wrong types and values out of range.
        pytest.param("threshold: high", "threshold", 1, PERCENTAGE, id="threshold-text"),
        pytest.param("threshold: 101", "threshold", 1, PERCENTAGE, id="threshold-over"),
        pytest.param("threshold: -1", "threshold", 1, PERCENTAGE, id="threshold-negative"),
        pytest.param("threshold: 75.5", "threshold", 1, PERCENTAGE, id="threshold-fraction"),
        pytest.param("threshold: '120%'", "threshold", 1, PERCENTAGE, id="threshold-percent-over"),
        pytest.param("threshold: true", "threshold", 1, PERCENTAGE, id="threshold-bool"),
        pytest.param("threshold:\n", "threshold", 1, PERCENTAGE, id="threshold-empty"),
        pytest.param("threshold: [75]", "threshold", 1, PERCENTAGE, id="threshold-list"),
        pytest.param("min_votes: 0", "min_votes", 1, "must be a whole number 1 or more", id="min_votes-0"),
        pytest.param("min_votes: 2.5", "min_votes", 1, "must be a whole number 1 or more", id="min_votes-fraction"),
        pytest.param("reset_on_push: maybe", "reset_on_push", 1, "must be true or false", id="bool-text"),
        pytest.param("reset_on_push: 'true'", "reset_on_push", 1, "must be true or false", id="bool-quoted"),
        pytest.param("open_on: push", "open_on", 1, "must be one of deployment or pull_request", id="open_on"),
        pytest.param("open_on: pullrequest", "open_on", 1, 'did you mean "pull_request"?', id="open_on-typo"),
        pytest.param("voters: [alice]", "voters", 1, "must be a mapping", id="section-list"),
        pytest.param("voters: write", "voters", 1, "must be a mapping", id="section-text"),
        pytest.param(
            "voters:\n  min_permission: none\n", "voters.min_permission", 2, "must be one of admin", id="perm-none"
        ),
        pytest.param("promote: {permission: owner}", "promote.permission", 1, "must be one of", id="perm-unknown"),
        pytest.param("voters:\n  weights:\n    admin: -1\n", "voters.weights.admin", 3, WHOLE_NUMBER, id="weight-neg"),
        pytest.param(
            "voters:\n  weights:\n    admin: lots\n", "voters.weights.admin", 3, WHOLE_NUMBER, id="weight-text"
        ),
        pytest.param(
            "voters:\n  weights:\n    admin: 5000\n", "voters.weights.admin", 3, "at most 1000", id="weight-big"
        ),
        pytest.param("voters:\n  users: {alice: 1.5}\n", "voters.users.alice", 2, WHOLE_NUMBER, id="user-weight"),
        pytest.param(
            "voters:\n  users: {not a login: 1}\n", "voters.users.not a login", 2, "not a GitHub login", id="login"
        ),
        pytest.param("voters:\n  users: {mona_: 1}\n", "voters.users.mona_", 2, "not a GitHub login", id="login-no-code"),
        pytest.param("voters:\n  users: {_octo: 1}\n", "voters.users._octo", 2, "not a GitHub login", id="login-only-code"),
        pytest.param(
            "voters:\n  users: {mona_octo_x: 1}\n", "voters.users.mona_octo_x", 2, "not a GitHub login", id="login-two-codes"
        ),
        pytest.param("voters:\n  users: [alice]\n", "voters.users", 2, "must map each login", id="users-list"),
        pytest.param("voters:\n  teams: {core: 2}\n", "voters.teams.core", 2, '"org/team-slug"', id="team-no-org"),
        pytest.param(
            "voters:\n  teams: {acme/core: -2}\n", "voters.teams.acme/core", 2, WHOLE_NUMBER, id="team-weight"
        ),
        # Durations.
        pytest.param("voting_period: 24 hours", "voting_period", 1, DURATION, id="period-words"),
        pytest.param("voting_period: 1:30", "voting_period", 1, DURATION, id="period-sexagesimal"),
        pytest.param("voting_period: 5ms", "voting_period", 1, DURATION, id="period-ms"),
        pytest.param("voting_period: 0", "voting_period", 1, "must be longer than 0", id="period-zero"),
        pytest.param("voting_period: 0h", "voting_period", 1, "must be longer than 0", id="period-zero-hours"),
        pytest.param("voting_period: 400d", "voting_period", 1, "must be at most 365d", id="period-too-long"),
        pytest.param(
            "voting_period: 99999999999999999999999999d", "voting_period", 1, "at most 365d", id="period-huge"
        ),
        pytest.param("min_voting_time: -5m", "min_voting_time", 1, DURATION, id="min-time-negative"),
        pytest.param("min_voting_time: true", "min_voting_time", 1, DURATION, id="min-time-bool"),
        # Environments and the health path.
        pytest.param(
            "environments: {preview: {a: 1}}", "environments.preview", 1, "list of patterns", id="preview-map"
        ),
        # No pattern would match no deployment: no vote would ever open.
        pytest.param(
            "environments:\n  preview: []\n", "environments.preview", 2, "must list at least one pattern", id="preview-none"
        ),
        pytest.param(
            "environments:\n  preview:\n", "environments.preview", 2, "must be a non-empty pattern", id="preview-null"
        ),
        pytest.param(
            "environments:\n  preview:\n    - Preview*\n    - ''\n",
            "environments.preview[1]",
            4,
            "non-empty",
            id="pattern",
        ),
        pytest.param(
            "environments: {production: ''}", "environments.production", 1, "must name an environment", id="p"
        ),
        pytest.param(
            "environments: {production: [a]}", "environments.production", 1, "must name an environment", id="pl"
        ),
        pytest.param("preview_health: {path: health}", "preview_health.path", 1, "starting with /", id="path-relative"),
        pytest.param("preview_health: {path: '/a b'}", "preview_health.path", 1, "starting with /", id="path-space"),
        # The webhook provider's URL.
        pytest.param(
            "promote:\n  provider: webhook\n", "promote.webhook_url", 2, "needs promote.webhook_url", id="no-url"
        ),
        pytest.param(
            "promote: {webhook_url: 'http://deploy.example.com/x'}",
            "promote.webhook_url",
            1,
            "must use https",
            id="http",
        ),
        pytest.param(
            "promote: {webhook_url: 'https://user:pw@deploy.example.com/'}",
            "promote.webhook_url",
            1,
            "user name or password",
            id="credentials",
        ),
        pytest.param("promote: {webhook_url: 'ftp://example.com/'}", "promote.webhook_url", 1, "https URL", id="ftp"),
        pytest.param("promote: {webhook_url: '/relative'}", "promote.webhook_url", 1, "https URL", id="relative"),
        pytest.param(
            "promote: {webhook_url: 'https://x:port/'}", "promote.webhook_url", 1, "can be read", id="bad-port"
        ),
        # YAML itself.
        pytest.param("threshold: 75\nvoters: [\n", "", 3, "YAML syntax error", id="syntax"),
        pytest.param("threshold: 75\n  min_votes: 3\n", "", 2, "YAML syntax error", id="bad-indentation"),
        pytest.param("a: &x 1\nthreshold: *x\n", "", 2, "aliases", id="alias"),
        pytest.param("threshold: 75\n---\nmin_votes: 2\n", "", 2, "YAML syntax error", id="two-documents"),
        pytest.param("- threshold: 75\n", "", 1, "must be a mapping of settings", id="list-document"),
        pytest.param("just some text", "", 1, "must be a mapping of settings", id="text-document"),
        pytest.param("threshold: 7\x005", "", 1, "character YAML does not allow", id="nul"),
        pytest.param("a: " + "[" * 50 + "]" * 50, "", 1, "nested more than", id="deep"),
        pytest.param("threshold: !!python/object/apply:os.system ['true']", "threshold", 1, "YAML tag", id="tag-seq"),
        pytest.param("threshold: !!python/name:os.system", "threshold", 1, "YAML tag", id="tag-scalar"),
        pytest.param("threshold: !!binary aGVsbG8=", "threshold", 1, "YAML tag", id="tag-binary"),
        pytest.param("? [a, b]\n: 1\n", "", 1, "keys must be plain names", id="complex-key"),
    ],
)
def test_each_kind_of_problem_is_located_by_key_and_line(text, key, line, message):
    problems = problems_of(text)
    assert [(p.key, p.line) for p in problems] == [(key, line)], problems
    assert message in problems[0].message


def test_a_text_too_large_is_a_problem_not_a_crash():
    text = "# " + "x" * MAX_CONFIG_BYTES + "\nthreshold: 75\n"
    (problem,) = problems_of(text)
    assert problem.line is None and "at most 64 KiB" in problem.message


def test_an_alias_bomb_is_refused_at_once():
    bomb = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(9)
    )
    (problem,) = problems_of(bomb)
    assert problem.line == 2 and "aliases" in problem.message


def test_every_problem_is_reported_not_only_the_first_in_file_order():
    text = """\
threshold: 120
min_votes: three
voters:
  weights: {admin: -1, owner: 2}
  allow_author: perhaps
promote:
  provider: webhok
colour: pink
"""
    problems = problems_of(text)
    assert [(p.line, p.key) for p in problems] == [
        (1, "threshold"),
        (2, "min_votes"),
        (4, "voters.weights.admin"),
        (4, "voters.weights.owner"),
        (5, "voters.allow_author"),
        (7, "promote.provider"),
        (8, "colour"),
    ]
    assert 'did you mean "webhook"?' in problems[5].message


def test_a_configuration_error_names_its_problems():
    error = ConfigError([ConfigProblem("voters.weights.admin", 4, "must be a whole number 0 or more")])
    assert "line 4, voters.weights.admin: must be a whole number 0 or more" in str(error)
    assert ConfigProblem("", None, "the file is 70 KiB").describe() == "the file is 70 KiB"
    assert ConfigProblem("", 3, "YAML syntax error").describe() == "line 3: YAML syntax error"


# --- The webhook URL in Rules ------------------------------------------------------------------


def test_the_webhook_url_survives_the_json_round_trip_of_stored_rules():
    import json

    rules = Rules(promote_provider="webhook", promote_webhook_url="https://deploy.example.com/hook")
    stored = json.loads(json.dumps(rules.as_dict()))
    assert stored["promote"]["webhook_url"] == "https://deploy.example.com/hook"
    assert Rules.from_dict(stored) == rules
    # Rules stored before the key existed read back without one.
    del stored["promote"]["webhook_url"]
    assert Rules.from_dict(stored).promote_webhook_url is None


@pytest.mark.parametrize(
    "url",
    ["http://deploy.example.com/hook", "ftp://example.com/", "https://user:secret@example.com/", "hook", "https:///x"],
)
def test_rules_refuse_a_webhook_url_that_would_leak_or_go_nowhere(url):
    with pytest.raises(ValueError, match="promote.webhook_url"):
        Rules(promote_webhook_url=url)


@pytest.mark.parametrize(
    "url", ["https://example.com", "http://localhost:3000/x", "http://127.0.0.1/", "http://[::1]:8/"]
)
def test_rules_accept_https_and_local_http_webhook_urls(url):
    assert Rules(promote_webhook_url=url).promote_webhook_url == url


# --- The check run that says so -----------------------------------------------------------


def test_render_config_error_is_a_failed_check_run_listing_each_problem():
    problems = problems_of("threshold: 101\nvoters:\n  weights:\n    admin: -1\n")
    output = render_config_error(problems)
    assert output.status == "completed"
    assert output.conclusion == "failure"
    assert output.title == "Invalid .github/pinkflow.yml: 2 problems"
    assert "- line 1, threshold: must be a whole percentage from 0 to 100" in output.summary
    assert "- line 4, voters.weights.admin: must be a whole number 0 or more" in output.summary
    assert "Nothing will be promoted until the file on the default branch is fixed" in output.summary
    assert output.actions == ()
    body = output.as_github()
    assert body["conclusion"] == "failure" and body["output"]["title"] == output.title


def test_render_config_error_one_problem_another_path():
    output = render_config_error(
        [ConfigProblem("", 2, "YAML syntax error: could not find expected ':'")],
        path="acme/.github: .github/pinkflow.yml",
    )
    assert output.title == "Invalid acme/.github: .github/pinkflow.yml: 1 problem"
    assert "line 2: YAML syntax error" in output.summary


def test_render_config_error_escapes_what_people_wrote_in_the_file():
    problems = problems_of("'<img src=x onerror=alert(1)>': 1\n'@everyone #12': 2\n")
    output = render_config_error(problems)
    assert "<img" not in output.summary and "&lt;img" in output.summary
    assert "@everyone" not in output.summary  # no mention of anyone
    assert "#12" not in output.summary  # no cross-reference


def test_render_config_error_keeps_within_githubs_limits():
    many = [ConfigProblem(f"voters.users.user{i}", i, "x" * 400) for i in range(1, 400)]
    output = render_config_error(many)
    assert len(output.summary) <= 65535 and len(output.title) <= 255
    assert "and 349 more problems" in output.summary


# --- Properties -------------------------------------------------------------------------------

KEYS = list(TOP_LEVEL_KEYS) + list(VOTER_KEYS) + list(PROMOTE_KEYS) + ["weights", "admin", "users", "x", "preview"]
yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["24h", "0", "github", "webhook", "write", "none", "Preview*", "/", "75%", "https://x.test/h"]),
    st.text(max_size=20),
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.sampled_from(KEYS), children, max_size=5)
    ),
    max_leaves=20,
)
yaml_documents = st.dictionaries(st.sampled_from(KEYS), yaml_values, max_size=8).map(
    lambda document: yaml.safe_dump(document, allow_unicode=True)
)
YAML_BITS = ["\n", "  ", ": ", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "!!", "'", '"', "#", "---", "? ", "|", ">"]
yaml_like_text = st.lists(st.one_of(st.sampled_from(YAML_BITS + KEYS), st.text(max_size=8)), max_size=40).map("".join)


def parse_or_problems(text: str) -> Rules | tuple[ConfigProblem, ...]:
    try:
        return parse_config(text, defaults=DEFAULTS)
    except ConfigError as error:
        return error.problems


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(), yaml_like_text, yaml_documents))
def test_any_text_gives_rules_or_located_problems_and_nothing_else(text):
    outcome = parse_or_problems(text)
    if isinstance(outcome, Rules):
        return
    assert outcome, "a ConfigError always says what is wrong"
    line_count = len(re.findall("\r\n|[\r\n\x85\u2028\u2029]", text)) + 1  # YAML's line breaks
    for problem in outcome:
        assert problem.message
        assert problem.line is None or 1 <= problem.line <= line_count + 1


valid_settings = st.fixed_dictionaries(
    {},
    optional={
        "threshold": st.integers(min_value=0, max_value=100),
        "min_votes": st.integers(min_value=1, max_value=50),
        "voting_period": st.integers(min_value=1, max_value=72),
        "allow_author": st.booleans(),
        "weights": st.dictionaries(
            st.sampled_from(["admin", "maintain", "write", "triage", "read"]), st.integers(0, 9)
        ),
        "provider": st.sampled_from(["github", "protection_rule", "vercel"]),
    },
)


@settings(max_examples=100)
@given(valid_settings)
def test_a_valid_file_reads_as_the_rules_it_states(chosen):
    document: dict = {}
    expected = _fields(DEFAULTS)
    if "threshold" in chosen:
        document["threshold"] = expected["threshold"] = chosen["threshold"]
    if "min_votes" in chosen:
        document["min_votes"] = expected["min_votes"] = chosen["min_votes"]
    if "voting_period" in chosen:
        document["voting_period"] = f"{chosen['voting_period']}h"
        expected["voting_period"] = timedelta(hours=chosen["voting_period"])
    if "allow_author" in chosen:
        document.setdefault("voters", {})["allow_author"] = expected["allow_author"] = chosen["allow_author"]
    if "weights" in chosen:
        document.setdefault("voters", {})["weights"] = chosen["weights"]
        expected["weights"] = {**DEFAULTS.weights, **{Permission.parse(k): v for k, v in chosen["weights"].items()}}
    if "provider" in chosen:
        document["promote"] = {"provider": chosen["provider"]}
        expected["promote_provider"] = chosen["provider"]
    text = yaml.safe_dump(document) if document else ""
    assert parse_config(text, defaults=DEFAULTS) == Rules(**expected)


# --- First tries: each problem says what to write instead --------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "line", "fix"),
    [
        pytest.param("threshold: 0.6", "threshold", 1, "0.6 reads as a fraction: for 60% write 60", id="threshold-fraction"),
        pytest.param("voting_period: 2 days", "voting_period", 1, "write 2d", id="period-days-in-words"),
        pytest.param("voting_period: 24 hours", "voting_period", 1, "write 24h", id="period-hours-in-words"),
        pytest.param("voting_period: 1 hour 30 minutes", "voting_period", 1, "write 1h30m", id="period-words-combined"),
        pytest.param("voting_period: 1w", "voting_period", 1, "write 7d", id="period-week"),
        pytest.param("min_voting_time: 10 mins", "min_voting_time", 1, "write 10m", id="min-time-words"),
        pytest.param(
            "voting_period: 86400000", "voting_period", 1, "not milliseconds: for 86400000 ms write 24h", id="period-ms"
        ),
        pytest.param("quorum: 3", "quorum", 1, 'did you mean "min_votes"?', id="quorum"),
        pytest.param("reset_on_push: 'false'", "reset_on_push", 1, "must be true or false, without quotes", id="quoted-bool"),
        pytest.param("promote: {provider: netlify}", "promote.provider", 1, "for Netlify, use github", id="netlify"),
        pytest.param("open_on: push", "open_on", 1, "pull_request opens a vote on each push", id="open-on-push"),
        pytest.param("voters:\n  users: [alice, bob]\n", "voters.users", 2, "such as {alice: 2}", id="users-as-list"),
        pytest.param("voters:\n  weights: [admin]\n", "voters.weights", 2, "such as {admin: 3, write: 1}", id="weights-list"),
        pytest.param("threshold: 60\n\tmin_votes: 2\n", "", 2, "YAML is indented with spaces only", id="tab"),
        pytest.param(
            "voters:\nmin_permission: write\n  weights: {admin: 3}\n", "", 3, "check the indentation", id="unindented-key"
        ),
        pytest.param(
            "voters:\n    min_permission: write\n  allow_author: true\n", "", 3, "not indented like the lines", id="dedented"
        ),
        pytest.param("voters:\n  users:\n    @alice: 2\n", "", 3, "must be quoted ('@alice')", id="at-login"),
        pytest.param('environments:\n  preview: ["Preview*"\n', "", 3, "not closed with ]", id="unclosed-list"),
    ],
)
def test_a_first_try_is_told_what_to_write_instead(text, key, line, fix):
    problems = problems_of(text)
    assert [(p.key, p.line) for p in problems] == [(key, line)], problems
    assert fix in problems[0].message
    # No reader jargon in front of the people fixing the file.
    assert "<block" not in problems[0].message and "token" not in problems[0].message


def test_the_readmes_reference_reads_as_the_defaults_and_names_every_key_the_file_accepts():
    from pinkflow_bot.governance.config import SECTIONS
    from tests.paths import REPO_ROOT

    section = (REPO_ROOT / "README.md").read_text().split("## Rules of a repository", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL).group(1)
    assert parse_config(block, defaults=Rules()) == Rules()
    named, parent = set(), ""
    for line in block.splitlines():
        found = re.match(r"(\s*)#?\s*([a-z_]+):", line)
        if found:
            parent = found.group(2) if not found.group(1) else parent
            named.add(found.group(2) if not found.group(1) else f"{parent}.{found.group(2)}")
    accepted = set(TOP_LEVEL_KEYS) | {f"{name}.{key}" for name, keys in SECTIONS.items() for key in keys}
    assert named == accepted
