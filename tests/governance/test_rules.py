"""Permissions, rules, preview environments and vote weights."""

from datetime import timedelta

import pytest

from pinkflow_bot.governance.permissions import Permission, permission_from_collaborator, permission_from_github
from pinkflow_bot.governance.rules import Rules, is_preview_environment, webhook_url_problem, weight_for


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("none", Permission.NONE),
        ("read", Permission.READ),
        ("Triage", Permission.TRIAGE),
        ("WRITE", Permission.WRITE),
        ("maintain", Permission.MAINTAIN),
        (" admin ", Permission.ADMIN),
    ],
)
def test_permission_parse(text, expected):
    assert Permission.parse(text) is expected


@pytest.mark.parametrize("text", ["", "owner", "push", "pull", "writer", "3"])
def test_permission_parse_refuses_unknown_names(text):
    with pytest.raises(ValueError, match="unknown permission"):
        Permission.parse(text)


def test_permissions_are_ordered():
    assert Permission.NONE < Permission.READ < Permission.TRIAGE < Permission.WRITE < Permission.MAINTAIN
    assert Permission.MAINTAIN < Permission.ADMIN
    assert Permission.MAINTAIN >= Permission.WRITE
    assert str(Permission.MAINTAIN) == "maintain"


@pytest.mark.parametrize(
    ("permission", "role_name", "expected"),
    [
        ("admin", "admin", Permission.ADMIN),
        ("write", "maintain", Permission.MAINTAIN),  # legacy field folds maintain into write
        ("read", "triage", Permission.TRIAGE),  # and triage into read
        ("write", "write", Permission.WRITE),
        ("read", "read", Permission.READ),
        ("write", "release-manager", Permission.WRITE),  # custom role: its base level
        ("read", "Security Reviewer", Permission.READ),
        ("write", None, Permission.WRITE),
        ("none", None, Permission.NONE),
        (None, "MAINTAIN", Permission.MAINTAIN),
        (None, None, Permission.NONE),
        ("something-new", "custom", Permission.NONE),
    ],
)
def test_permission_from_github(permission, role_name, expected):
    assert permission_from_github(permission=permission, role_name=role_name) is expected


def _flags(*granted: str) -> dict[str, bool]:
    return {flag: flag in granted for flag in ("pull", "triage", "push", "maintain", "admin")}


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"role_name": "maintain", "permissions": _flags("pull", "triage", "push", "maintain")}, Permission.MAINTAIN),
        ({"role_name": "Triage", "permissions": _flags("pull", "triage")}, Permission.TRIAGE),
        # A custom role: the highest flag it grants is its base level.
        ({"role_name": "release-manager", "permissions": _flags("pull", "triage", "push")}, Permission.WRITE),
        ({"role_name": "auditor", "permissions": _flags("pull")}, Permission.READ),
        ({"role_name": "odd", "permissions": {"pull": True, "push": False, "admin": True}}, Permission.ADMIN),
        ({"role_name": "odd", "permissions": {"pull": "yes"}}, Permission.NONE),  # only true counts
        ({"role_name": "odd"}, Permission.NONE),
        # GitHub requires only the pull, push and admin flags: the role name tells maintain and triage.
        ({"role_name": "maintain", "permissions": {"pull": True, "push": True, "admin": False}}, Permission.MAINTAIN),
        ({"role_name": "triage", "permissions": {"pull": True, "push": False, "admin": False}}, Permission.TRIAGE),
        ({"role_name": "write"}, Permission.WRITE),
        ({}, Permission.NONE),
    ],
)
def test_permission_from_a_collaborators_list_entry(entry, expected):
    assert permission_from_collaborator(entry) is expected


def test_rules_defaults_match_the_documented_configuration():
    rules = Rules()
    assert rules.threshold == 75
    assert rules.min_votes == 3
    assert rules.voting_period == timedelta(hours=24)
    assert rules.min_voting_time == timedelta(0)
    assert rules.min_permission is Permission.WRITE
    assert dict(rules.weights) == {
        Permission.ADMIN: 3,
        Permission.MAINTAIN: 2,
        Permission.WRITE: 1,
        Permission.TRIAGE: 1,
        Permission.READ: 1,
        Permission.NONE: 0,
    }
    assert rules.promote_permission is Permission.WRITE
    assert not rules.allow_author and not rules.auto_promote and not rules.allow_force
    assert rules.production_environment == "production"


def test_rules_are_immutable_hashable_values():
    rules = Rules(user_weights={"Alice": 5})
    with pytest.raises(TypeError):
        rules.user_weights["bob"] = 1  # type: ignore[index]
    assert hash(rules) == hash(Rules(user_weights={"alice": 5}))
    assert rules == Rules(user_weights={"ALICE": 5})
    assert rules != Rules(user_weights={"alice": 4})


def test_rules_accept_plain_configuration_values():
    rules = Rules(
        weights={"admin": 10, "write": 2},
        min_permission="read",
        promote_permission="maintain",
        team_weights={"@Acme/Release-Team": 4},
        preview_environments=["staging-*"],
    )
    assert rules.weights[Permission.ADMIN] == 10
    assert rules.weights[Permission.WRITE] == 2
    assert rules.weights[Permission.MAINTAIN] == 2  # not given: the default
    assert rules.min_permission is Permission.READ
    assert rules.promote_permission is Permission.MAINTAIN
    assert dict(rules.team_weights) == {"acme/release-team": 4}
    assert rules.preview_environments == ("staging-*",)
    assert Rules(preview_environments="pr-*").preview_environments == ("pr-*",)


def test_promotion_may_be_left_to_readers():
    assert Rules(promote_permission="read").promote_permission is Permission.READ


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"threshold": 101}, "threshold"),
        ({"threshold": -1}, "threshold"),
        ({"threshold": 75.5}, "threshold"),
        ({"min_votes": 0}, "min_votes"),
        ({"min_votes": True}, "min_votes"),
        ({"min_votes": 2.5}, "min_votes"),
        ({"voting_period": timedelta(0)}, "voting_period"),
        ({"min_voting_time": timedelta(seconds=-1)}, "min_voting_time"),
        ({"open_on": "push"}, "open_on"),
        ({"promote_provider": "netlify"}, "provider"),
        ({"min_permission": "none"}, "min_permission"),
        ({"min_permission": "owner"}, "min_permission"),
        ({"promote_permission": "none"}, "promote.permission must be read or above"),
        ({"promote_permission": "owner"}, "promote.permission: unknown permission"),
        ({"weights": {"admin": -1}}, "weights"),
        ({"weights": {"owner": 1}}, "weights"),
        ({"user_weights": {"alice": "heavy"}}, "users"),
        ({"team_weights": {"acme/x": True}}, "teams"),
        ({"preview_health_path": "health"}, "preview_health.path"),
        ({"production_environment": " "}, "production"),
        ({"preview_environments": ()}, "environments.preview must list at least one pattern"),
        ({"preview_environments": ("Preview*", "")}, "environments.preview must be a list of non-empty patterns"),
    ],
)
def test_rules_refuse_values_that_cannot_be_meant(changes, message):
    with pytest.raises(ValueError, match=message):
        Rules(**changes)


def test_rules_stored_with_no_preview_pattern_read_with_the_default_ones():
    # Stored by a version that accepted `preview: []`: the proposal must still load.
    stored = {**Rules().as_dict(), "environments": {"preview": [], "production": "prod"}}
    rules = Rules.from_dict(stored)
    assert rules.preview_environments == Rules().preview_environments
    assert rules.production_environment == "prod"


def test_rules_survive_a_round_trip_through_json():
    import json

    rules = Rules(
        threshold=60,
        min_votes=2,
        voting_period=timedelta(hours=6),
        min_voting_time=timedelta(minutes=30),
        user_weights={"alice": 5},
        team_weights={"acme/core": 3},
        allow_author=True,
        promote_provider="vercel",
        allow_force=True,
    )
    assert Rules.from_dict(json.loads(json.dumps(rules.as_dict()))) == rules
    assert Rules.from_dict({}) == Rules()


def test_a_proposal_keeps_every_rule_it_was_opened_under():
    import json

    # Every setting away from its default, so that none can be lost in storage unnoticed.
    rules = Rules(
        threshold=51,
        min_votes=5,
        voting_period=timedelta(days=2),
        min_voting_time=timedelta(hours=1),
        open_on="pull_request",
        preview_environments=("pr-*", "review-*"),
        production_environment="live",
        min_permission="maintain",
        weights={"admin": 9, "maintain": 4, "write": 2, "triage": 0, "read": 0},
        user_weights={"alice": 5},
        team_weights={"acme/core": 3},
        allow_author=True,
        reset_on_push=False,
        preview_health_path="/api/health",
        preview_health_required=True,
        promote_provider="webhook",
        auto_promote=True,
        promote_permission="admin",
        allow_force=True,
        promote_webhook_url="https://deploy.example.com/pinkflow",
    )
    assert all(getattr(rules, name) != getattr(Rules(), name) for name in Rules.__dataclass_fields__)
    assert Rules.from_dict(json.loads(json.dumps(rules.as_dict()))) == rules


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Preview", True),
        ("preview", True),
        ("PREVIEW", True),
        ("Preview – my-project", True),  # Vercel, with an EN DASH
        ("Preview – pinkflow-web", True),
        ("preview/pr-12", True),
        ("production", False),
        ("Production", False),
        ("Production – my-project", False),
        ("staging", False),
        ("my-preview", False),
        ("", False),
        (None, False),
    ],
)
def test_preview_environments_with_default_patterns(name, expected):
    assert is_preview_environment(name, Rules().preview_environments) is expected


@pytest.mark.parametrize(
    ("name", "patterns", "expected"),
    [
        ("pr-42", ("pr-*",), True),
        ("PR-42", ("pr-*",), True),
        ("review-app", ("pr-*", "review-*"), True),
        ("Preview", ("pr-*",), False),
        ("Preview", (), False),
        # Vercel names it with an EN DASH; people type a hyphen.
        ("Preview – web", ("Preview - web",), True),
        ("preview — web", ("Preview - web",), True),
        ("Preview - web", ("Preview – web",), True),
        ("Preview – shop", ("Preview - web",), False),
    ],
)
def test_preview_environments_with_configured_patterns(name, patterns, expected):
    assert is_preview_environment(name, patterns) is expected


TEAM_RULES = Rules(
    weights={"read": 0},
    user_weights={"Alice": 7, "zero": 0},
    team_weights={"acme/core": 4, "acme/docs": 2, "Acme/Leads": 6, "@Xerox/Ops": 5},
)


@pytest.mark.parametrize(
    ("login", "permission", "teams", "expected"),
    [
        pytest.param("dave", Permission.ADMIN, (), 3, id="admin-role"),
        pytest.param("dave", Permission.MAINTAIN, (), 2, id="maintain-role"),
        pytest.param("dave", Permission.WRITE, (), 1, id="write-role"),
        pytest.param("dave", Permission.READ, (), 0, id="read-role-configured-to-zero"),
        pytest.param("dave", Permission.READ, ("other/team",), 0, id="unconfigured-team-adds-nothing"),
        pytest.param("dave", Permission.READ, ("acme/docs",), 2, id="team-lifts-a-zero-role"),
        pytest.param("dave", Permission.TRIAGE, (), 1, id="triage-role"),
        pytest.param("dave", Permission.NONE, (), 0, id="no-access"),
        pytest.param("dave", Permission.WRITE, ("acme/docs",), 2, id="team-above-role"),
        pytest.param("dave", Permission.ADMIN, ("acme/docs",), 3, id="role-above-team"),
        pytest.param("dave", Permission.WRITE, ("acme/docs", "acme/core"), 4, id="highest-team"),
        pytest.param("dave", Permission.WRITE, ("ACME/LEADS", "acme/core"), 6, id="teams-any-case"),
        pytest.param("dave", Permission.WRITE, ("other/team",), 1, id="unconfigured-team"),
        pytest.param("dave", Permission.WRITE, ("xerox/ops",), 5, id="team-written-with-at-sign"),
        pytest.param("alice", Permission.WRITE, (), 7, id="user-weight"),
        pytest.param("ALICE", Permission.ADMIN, ("acme/leads",), 7, id="user-weight-wins-any-case"),
        pytest.param("zero", Permission.ADMIN, ("acme/leads",), 0, id="user-weight-zero-wins"),
    ],
)
def test_weight_for(login, permission, teams, expected):
    assert weight_for(login=login, permission=permission, teams=teams, rules=TEAM_RULES) == expected


@pytest.mark.parametrize(
    ("name", "production", "expected"),
    [
        ("production", "production", True),
        ("Production", "production", True),
        ("Production – web", "production", True),  # Vercel, with an EN DASH
        ("Production - web", "production", True),  # a hyphen
        ("Production — web", "production", True),  # an EM DASH
        ("Production: web", "production", False),
        ("production-eu", "production", False),
        ("productions", "production", False),
        ("staging", "production", False),
        (None, "production", False),
        ("Live", "live", True),
    ],
)
def test_production_environment_names(name, production, expected):
    from pinkflow_bot.governance.rules import is_production_environment

    assert is_production_environment(name, production) is expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://deploy.example.com/pinkflow", None),
        ("http://localhost:8080/pinkflow", None),
        ("http://127.0.0.1/pinkflow", None),
        ("http://[::1]/pinkflow", None),
        ("", "must be an https URL"),
        ("   ", "must be an https URL"),
        (None, "must be an https URL"),
        (42, "must be an https URL"),
        ("https://deploy.example.com/a b", "must be a URL without spaces or control characters"),
        ("https://deploy.example.com/\x01", "must be a URL without spaces or control characters"),
        ("https://deploy.example.com/\x7f", "must be a URL without spaces or control characters"),
        ("https://deploy.example.com:port/", "is not a URL that can be read"),
        ("ftp://deploy.example.com/", "must be an https URL, such as https://deploy.example.com/pinkflow"),
        ("/pinkflow", "must be an https URL, such as https://deploy.example.com/pinkflow"),
        ("https://user@deploy.example.com/", "must not contain a user name or password"),
        ("https://:secret@deploy.example.com/", "must not contain a user name or password"),
        ("http://deploy.example.com/", "must use https (plain http is only accepted for localhost and 127.0.0.1)"),
        ("http://192.0.2.8/", "must use https (plain http is only accepted for localhost and 127.0.0.1)"),
    ],
)
def test_webhook_url_problems_in_the_words_the_configuration_shows(url, problem):
    assert webhook_url_problem(url) == problem
