"""Bad input at the door and in the worker: malformed, truncated, oversized, wrongly typed
and unicode-heavy deliveries never get a 5xx, never break the worker, never cast a vote
that no command asked for."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from pinkflow_bot.governance.commands import CommandKind, parse_commands
from pinkflow_bot.storage.inbox import MAX_ATTEMPTS
from pinkflow_bot.storage.models import Ballot
from pinkflow_bot.storage.models import Delivery as StoredDelivery
from tests import payloads
from tests.harness import WEBHOOK_SECRET, Clock, app_under_test

# Modest and without deadlines: the whole file stays well under a minute on both databases.
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
MAX_BODY = 20_000
REPO = "octo-org/shop"
PR = 12
SHA = "c0ffee0000000000000000000000000000000012"
EVENTS = ["issue_comment", "pull_request", "deployment_status", "check_run", "installation", "push", "ping"]
ANSWERS = {200, 202, 400, 413, 415}

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=200),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
# Strings GitHub users type: every plane, controls, bidi overrides, joiners, escapes of lone surrogates.
unicode_heavy = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=300
) | st.sampled_from(["\u0000", "\ud83d\ude80", "\u202e\u2066evil", "é" * 150, "\\ud800", "𝕬" * 120, "'; DROP TABLE deliveries; --"])


def headers_for(body: bytes, *, event: str = "issue_comment", delivery_id: str | None = None,
                content_type: str = "application/json") -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        "X-Hub-Signature-256": payloads.sign(WEBHOOK_SECRET, body),
        "Content-Type": content_type,
    }


async def stored(app, delivery_id: str) -> StoredDelivery | None:
    async with app.runtime.sessions() as session:
        return await session.scalar(select(StoredDelivery).where(StoredDelivery.delivery_id == delivery_id))


@pytest.fixture
async def app(tmp_path, app_private_key, database_url):
    # Intake never calls GitHub: an address where nothing listens proves it.
    async with app_under_test(
        tmp_path, github_url="http://127.0.0.1:9", private_key=app_private_key, database_url=database_url,
        MAX_BODY_BYTES=str(MAX_BODY),
    ) as app:
        yield app


def _real_example() -> bytes:
    return json.dumps(payloads.comment("/approve", repo=REPO, number=PR, author="dan").payload).encode()


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=2_000),
        json_values.map(lambda value: json.dumps(value).encode()),
        st.integers(min_value=0, max_value=4_000).map(lambda cut: _real_example()[:cut]),
    ),
    event=st.one_of(st.sampled_from(EVENTS), st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E),
                                                       min_size=1, max_size=150)),
    content_type=st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain",
                                  "application/x-www-form-urlencoded"]),
)
@example(body=b"\xef\xbb\xbf{}", event="issue_comment", content_type="application/json")  # a byte order mark
@example(body=b'{"a": NaN}', event="issue_comment", content_type="application/json")
@example(body=b'{"a": "\\ud800"}', event="issue_comment", content_type="application/json")
@example(body=b"{}", event="x" * 150, content_type="application/json")
async def test_any_signed_body_gets_a_clear_answer_and_what_is_accepted_is_stored_as_sent(
    app, body, event, content_type
):
    headers = headers_for(body, event=event, content_type=content_type)
    response = await app.client.post("/api/github/webhooks", data=body, headers=headers)
    assert response.status in ANSWERS, (response.status, await response.text())
    assert "error" in await response.json() or response.status < 300
    row = await stored(app, headers["X-GitHub-Delivery"])
    if response.status == 202:
        assert isinstance(json.loads(body), dict)
        assert row is not None and row.body == body.decode("utf-8") and row.event == event
    else:
        assert row is None


@FUZZ
@given(
    signature=st.one_of(
        st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"), max_size=90),
        st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).map(lambda digest: "sha256=" + digest),
    )
)
@example(signature="sha256=é")
@example(signature="sha256=" + "ÿ" * 64)
async def test_any_wrong_signature_gets_401_and_nothing_is_stored(app, signature):
    body = _real_example()
    headers = headers_for(body)
    assume(signature.strip() != headers["X-Hub-Signature-256"])
    headers["X-Hub-Signature-256"] = signature
    response = await app.client.post("/api/github/webhooks", data=body, headers=headers)
    assert response.status == 401, (response.status, await response.text())
    assert await stored(app, headers["X-GitHub-Delivery"]) is None


def _place(payload: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        child = payload.get(key)
        if not isinstance(child, dict):
            child = payload[key] = {}
        payload = child
    payload[path[-1]] = value


@FUZZ
@given(
    path=st.sampled_from([
        ("installation",), ("installation", "id"), ("action",), ("repository",), ("repository", "full_name"),
        ("issue",), ("issue", "number"), ("comment",), ("comment", "body"), ("sender",), ("pull_request",),
    ]),
    value=st.one_of(json_values, unicode_heavy, st.text(min_size=101, max_size=400)),
)
@example(path=("installation", "id"), value=2**70)
@example(path=("installation", "id"), value=True)
@example(path=("action",), value="created" * 40)
@example(path=("repository",), value=None)
@example(path=("repository", "full_name"), value="a/" + "b" * 400)
async def test_wrongly_typed_fields_are_accepted_and_stored_unchanged(app, path, value):
    payload = payloads.comment("/approve", repo=REPO, number=PR, author="dan").payload
    _place(payload, path, value)
    try:
        body = json.dumps(payload, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate travels escaped, as GitHub would send it
        body = json.dumps(payload).encode()
    headers = headers_for(body)
    response = await app.client.post("/api/github/webhooks", data=body, headers=headers)
    # GitHub signed it and it is a JSON object: it must be kept, or GitHub retries it for days.
    assert response.status == 202, (response.status, await response.text())
    row = await stored(app, headers["X-GitHub-Delivery"])
    assert row is not None and json.loads(row.body) == json.loads(body)


@FUZZ
@given(delivery_id=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=150))
async def test_delivery_ids_up_to_100_characters_are_kept_longer_ones_refused(app, delivery_id):
    body = b'{"action": "created"}'
    seen = await stored(app, delivery_id) is not None
    response = await app.client.post("/api/github/webhooks", data=body, headers=headers_for(body, delivery_id=delivery_id))
    if len(delivery_id) > 100:
        assert response.status == 400
    else:
        assert response.status == (200 if seen else 202)
        assert (await stored(app, delivery_id)).body == body.decode()


async def _chunks(body: bytes, size: int = 4096):
    for start in range(0, len(body), size):
        yield body[start : start + size]


@FUZZ
@given(extra=st.integers(min_value=1, max_value=3 * MAX_BODY), chunked=st.booleans())
@example(extra=1, chunked=True)
@example(extra=1, chunked=False)
async def test_a_body_over_the_limit_gets_413_and_is_not_stored(app, extra, chunked):
    text = json.dumps({"action": "created", "pad": ""})
    body = text[:-2].encode() + b"x" * (MAX_BODY + extra - len(text)) + b'"}'
    assert len(body) == MAX_BODY + extra
    headers = headers_for(body)
    # Without Content-Length (chunked), the limit must hold while reading.
    data = _chunks(body) if chunked else body
    response = await app.client.post("/api/github/webhooks", data=data, headers=headers)
    assert response.status == 413
    assert await stored(app, headers["X-GitHub-Delivery"]) is None


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_of_exactly_the_limit_is_accepted(app, chunked):
    text = json.dumps({"action": "created", "pad": ""})
    body = text[:-2].encode() + b"x" * (MAX_BODY - len(text)) + b'"}'
    assert len(body) == MAX_BODY
    headers = headers_for(body)
    response = await app.client.post("/api/github/webhooks", data=_chunks(body) if chunked else body, headers=headers)
    assert response.status == 202
    assert (await stored(app, headers["X-GitHub-Delivery"])).body == body.decode()


# ---------------------------------------------------------------------------------------
# The worker: signed deliveries of the right event with wrongly typed fields
# ---------------------------------------------------------------------------------------


@pytest.fixture
async def world(tmp_path, fake_github, app_private_key, database_url):
    """An open proposal on PR 12, voters with write permission, and a clock the test moves."""
    fake_github.add_installation(1, "octo-org")
    fake_github.add_repo(REPO, installation_id=1)
    for login in ("ann", "max", "dan", "alice"):
        fake_github.add_user(login)
        fake_github.set_permission(REPO, login, "write")
    fake_github.add_pull(REPO, PR, head_sha=SHA, author="alice")
    clock = Clock()
    async with app_under_test(
        tmp_path, github_url=fake_github.url, private_key=app_private_key, database_url=database_url, clock=clock
    ) as app:
        await app.deliver(payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=7001))
        yield app, fake_github, clock


def templates(fake) -> dict[str, payloads.Delivery]:
    created = payloads.posted_comment(fake, "/approve looks right", repo=REPO, number=PR, author="dan")
    edited = copy.deepcopy(created.payload)
    edited.update(action="edited", changes={"body": {"from": "/reject"}})
    deleted = copy.deepcopy(created.payload)
    deleted["action"] = "deleted"
    return {
        "comment created": created,
        "comment edited": payloads.delivery("issue_comment", edited),
        "comment deleted": payloads.delivery("issue_comment", deleted),
        "pull request synchronize": payloads.pull_request(
            "synchronize", repo=REPO, number=PR, head_sha=SHA, author="alice"
        ),
        "pull request closed": payloads.pull_request("closed", repo=REPO, number=PR, head_sha=SHA, author="alice",
                                                     state="closed"),
        "preview ready": payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=7002),
        "promote clicked": payloads.promote_clicked(repo=REPO, number=PR, check_run_id=1, head_sha=SHA, clicker="ann"),
    }


MUTABLE_PATHS = {
    "comment created": [("issue", "number"), ("comment", "body"), ("comment", "user"), ("comment", "id"),
                        ("comment", "user", "login"), ("issue",), ("issue", "pull_request"), ("sender",)],
    "comment edited": [("comment", "body"), ("changes",), ("comment", "user"), ("sender", "login")],
    "comment deleted": [("comment", "id"), ("comment",), ("issue", "number")],
    "pull request synchronize": [("pull_request", "number"), ("pull_request", "head"), ("pull_request", "head", "sha"),
                                 ("pull_request", "state"), ("pull_request", "user")],
    "pull request closed": [("pull_request",), ("pull_request", "merged"), ("number",)],
    "preview ready": [("deployment", "sha"), ("deployment", "id"), ("deployment_status", "state"),
                      ("deployment", "environment"), ("deployment_status", "environment_url"), ("deployment",)],
    "promote clicked": [("check_run", "pull_requests"), ("requested_action",), ("check_run", "id"),
                        ("check_run", "head_sha"), ("sender",)],
}
COMMON_PATHS = [("repository",), ("repository", "full_name"), ("installation",), ("installation", "id"), ("action",)]


@st.composite
def mutations(draw):
    name = draw(st.sampled_from(sorted(MUTABLE_PATHS)))
    paths = draw(st.lists(st.sampled_from(MUTABLE_PATHS[name] + COMMON_PATHS), min_size=1, max_size=3, unique=True))
    values = [draw(st.one_of(json_values, unicode_heavy)) for _ in paths]
    return name, list(zip(paths, values, strict=True))


async def settle(app, clock, delivery_id: str) -> StoredDelivery:
    """Drains, moving the clock past each retry, until the delivery is done or parked."""
    for _ in range(MAX_ATTEMPTS + 3):
        await app.drain()
        row = await stored(app, delivery_id)
        if row.status in ("done", "failed"):
            return row
        clock.advance(minutes=1)
    return row


async def votes_cast(app) -> int:
    """Ballots that cast a vote (not a withdrawal)."""
    async with app.runtime.sessions() as session:
        return await session.scalar(select(func.count()).select_from(Ballot).where(Ballot.choice != "retract"))


@settings(FUZZ, max_examples=50)
@given(mutation=mutations())
@example(mutation=("comment created", [(("issue", "number"), "12")]))
@example(mutation=("comment created", [(("comment", "body"), ["/approve"])]))
@example(mutation=("comment created", [(("repository",), None)]))
@example(mutation=("comment created", [(("installation", "id"), 2**70)]))
@example(mutation=("pull request synchronize", [(("pull_request", "head"), "c0ffee")]))
@example(mutation=("preview ready", [(("deployment", "id"), "7002")]))
@example(mutation=("promote clicked", [(("check_run", "pull_requests"), {"number": PR})]))
async def test_a_wrongly_typed_delivery_ends_done_or_parked_and_votes_only_from_a_command(world, mutation):
    app, fake, clock = world
    name, changes = mutation
    delivery = templates(fake)[name]
    for path, value in changes:
        _place(delivery.payload, path, value)
    before = await votes_cast(app)
    response = await app.send(delivery)
    assert response.status == 202, (response.status, await response.text())
    row = await settle(app, clock, delivery.delivery_id)
    assert row.status in ("done", "failed"), (row.status, row.error)
    if row.status == "failed":
        assert row.error, "a parked delivery says why"
    new_votes = await votes_cast(app) - before
    if new_votes:
        comment = delivery.payload.get("comment")
        body = comment.get("body") if isinstance(comment, dict) else None
        assert delivery.event == "issue_comment" and isinstance(body, str), (name, changes)
        assert any(c.kind in (CommandKind.APPROVE, CommandKind.REJECT, CommandKind.ABSTAIN) for c in parse_commands(body))
        assert new_votes == 1
    # Whatever GitHub sent, the App asked GitHub only what GitHub would answer.
    fake.errors.clear()


# Prose around commands, with the ways people quote and show commands without giving them.
not_a_command = st.lists(
    st.one_of(
        st.text(max_size=60).filter(lambda line: not line.lstrip(" ").startswith("/")),
        st.sampled_from([
            "> /approve", "`/approve`", "```\n/approve\n```", "<!-- /approve -->", "    /approve", "/approved",
            "/approve-ish", "please /approve", "／approve", "\u200b/approve", "\t/approve", "    \t/reject",
            "/ approve", "//approve", "\\/approve", "ap/prove", "/ａｐｐｒｏｖｅ",
        ]),
    ),
    min_size=1,
    max_size=6,
).map("\n\n".join)


@FUZZ
@given(body=not_a_command)
async def test_a_comment_without_a_command_never_votes(world, body):
    app, fake, clock = world
    assume(not any(c.kind in (CommandKind.APPROVE, CommandKind.REJECT, CommandKind.ABSTAIN) for c in parse_commands(body)))
    before = await votes_cast(app)
    delivery = payloads.posted_comment(fake, body, repo=REPO, number=PR, author="dan")
    response = await app.send(delivery)
    assert response.status == 202
    row = await settle(app, clock, delivery.delivery_id)
    assert row.status == "done", row.error
    assert await votes_cast(app) == before
    fake.errors.clear()


async def test_the_same_voter_with_a_command_does_vote(world):
    """The counterpart of the property above: the world does count a real command."""
    app, fake, clock = world
    before = await votes_cast(app)
    delivery = payloads.posted_comment(fake, "> /reject\n\n/approve ship it", repo=REPO, number=PR, author="dan")
    await app.deliver(delivery)
    assert await votes_cast(app) == before + 1
