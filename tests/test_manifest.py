"""`app-manifest.yml` asks for the least the App needs: exactly the events it handles and
the permissions its calls need (DESIGN section 7)."""

from __future__ import annotations

from pathlib import Path

import yaml

from pinkflow_bot.handlers import router

MANIFEST = yaml.safe_load((Path(__file__).resolve().parents[1] / "app-manifest.yml").read_text())
# GitHub sends these to every App; a manifest cannot subscribe to them.
SENT_TO_EVERY_APP = {"installation", "installation_repositories"}


def handled_events() -> set[str]:
    return set(router._shallow_routes) | set(router._deep_routes)


def test_every_event_in_the_manifest_has_a_handler_and_every_handler_an_event():
    subscribed = set(MANIFEST["default_events"])
    assert subscribed == handled_events() - SENT_TO_EVERY_APP
    assert SENT_TO_EVERY_APP <= handled_events()
    assert len(MANIFEST["default_events"]) == len(subscribed)


def test_the_permissions_are_the_least_the_app_needs():
    assert MANIFEST["default_permissions"] == {
        "checks": "write",  # the check run and its Promote button
        "pull_requests": "write",  # heads and authors; comments and reactions on pull requests
        "issues": "write",  # the status comment, replies, reactions
        "deployments": "write",  # the production deployment; protection rule reviews
        "contents": "read",  # .github/pinkflow.yml
        "metadata": "read",
        "members": "read",  # team weights
        "actions": "read",  # deployment protection rules
    }
