"""Security properties, each shown by what the App does: signatures, body limits, secrets in
logs, the .env file, where rules come from, what the preview health check may reach,
signed dashboard links, and SQL built only with bound parameters."""

from __future__ import annotations

import ast
import asyncio
import hashlib
import hmac
import json
import os
import stat
import textwrap
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from pinkflow_bot import preview_health
from pinkflow_bot.links import proposal_link
from pinkflow_bot.storage.models import AuditEvent, Ballot, Proposal
from pinkflow_bot.storage.models import Delivery as StoredDelivery
from pinkflow_bot.web import setup as registration
from tests import payloads
from tests.harness import APP_ID, WEBHOOK_SECRET, app_under_test
from tests.paths import REPO_ROOT
from tests.process import AppProcess, eventually
from tests.proposal_world import SHOP, VAULT, World, recent_clock, seed_world

REPO = "octo-org/shop"
PR = 7
SHA = "3f786850e387550fdab836ed7e6dc881de23001b"
MAX_BODY = 20_000


@pytest.fixture
async def intake(tmp_path, app_private_key):
    # Intake never calls GitHub: an address where nothing listens proves it.
    async with app_under_test(
        tmp_path, github_url="http://127.0.0.1:9", private_key=app_private_key, MAX_BODY_BYTES=str(MAX_BODY)
    ) as app:
        yield app


async def stored_ids(app) -> set[str]:
    async with app.runtime.sessions() as session:
        return set(await session.scalars(select(StoredDelivery.delivery_id)))


# ---------------------------------------------------------------------------------------
# Webhook signatures
# ---------------------------------------------------------------------------------------


async def test_signatures_are_compared_in_constant_time(intake, monkeypatch):
    compared: list[tuple[bytes, bytes]] = []
    constant_time = hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return constant_time(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    delivery = payloads.comment("/approve", repo=REPO, number=PR, author="ann")
    body = delivery.body()
    headers = delivery.headers(WEBHOOK_SECRET, body)
    response = await intake.client.post("/api/github/webhooks", data=body, headers=headers)
    assert response.status == 202
    # The signature the request carried went through the constant-time comparison.
    assert any(headers["X-Hub-Signature-256"].encode() in pair for pair in compared), compared


async def test_a_signature_differing_only_in_its_last_character_is_refused(intake):
    delivery = payloads.comment("/approve", repo=REPO, number=PR, author="ann")
    body = delivery.body()
    headers = delivery.headers(WEBHOOK_SECRET, body)
    good = headers["X-Hub-Signature-256"]
    for bad in (good[:-1] + ("0" if good[-1] != "0" else "1"), good[:-1], good + "0", good.upper()):
        response = await intake.client.post("/api/github/webhooks", data=body, headers={**headers, "X-Hub-Signature-256": bad})
        assert response.status == 401, bad
    # One byte more in the body than was signed is refused too.
    response = await intake.client.post("/api/github/webhooks", data=body + b" ", headers=headers)
    assert response.status == 401
    assert await stored_ids(intake) == set()
    response = await intake.client.post("/api/github/webhooks", data=body, headers=headers)
    assert response.status == 202


async def test_a_sha1_signature_is_refused_even_in_the_sha256_header(intake):
    """GitHub signs with SHA-256; a SHA-1 HMAC (weaker) is not accepted in its place."""
    delivery = payloads.comment("/approve", repo=REPO, number=PR, author="ann")
    body = delivery.body()
    sha1 = "sha1=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha1).hexdigest()
    headers = {**delivery.headers(WEBHOOK_SECRET, body), "X-Hub-Signature-256": sha1}
    response = await intake.client.post("/api/github/webhooks", data=body, headers=headers)
    assert response.status == 401
    assert await stored_ids(intake) == set()


# ---------------------------------------------------------------------------------------
# Body size
# ---------------------------------------------------------------------------------------


def padded_body(size: int) -> bytes:
    text = json.dumps({"action": "created", "pad": ""})
    return text[:-2].encode() + b"x" * (size - len(text)) + b'"}'


async def _chunked(body: bytes):
    for start in range(0, len(body), 1000):
        yield body[start : start + 1000]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
async def test_a_body_over_the_limit_gets_413_before_anything_else(intake, chunked, signed):
    for size in (MAX_BODY + 1, 10 * MAX_BODY):
        body = padded_body(size)
        headers = payloads.delivery("issue_comment", {}).headers(WEBHOOK_SECRET, body)
        if not signed:
            del headers["X-Hub-Signature-256"]
        response = await intake.client.post(
            "/api/github/webhooks", data=_chunked(body) if chunked else body, headers=headers
        )
        assert response.status == 413, size
    assert await stored_ids(intake) == set()
    # Exactly at the limit, a signed body is taken.
    body = padded_body(MAX_BODY)
    response = await intake.client.post(
        "/api/github/webhooks", data=_chunked(body) if chunked else body,
        headers=payloads.delivery("issue_comment", {}).headers(WEBHOOK_SECRET, body),
    )
    assert response.status == 202


# ---------------------------------------------------------------------------------------
# Secrets in logs
# ---------------------------------------------------------------------------------------


@pytest.fixture
def github_world(fake_github):
    fake_github.add_installation(1, "octo-org")
    fake_github.add_repo(REPO, installation_id=1, default_branch="master")
    for login, role in [("ann", "admin"), ("max", "maintain"), ("dan", "write"), ("alice", "write")]:
        fake_github.add_user(login)
        fake_github.set_permission(REPO, login, role)
    fake_github.add_pull(REPO, PR, head_sha=SHA, author="alice")
    return fake_github


@pytest.mark.parametrize("log_format", ["json", "text"])
async def test_jwts_and_installation_tokens_never_reach_the_logs(tmp_path, github_world, app_private_key, log_format):
    fake = github_world
    jwts: set[str] = set()
    check_jwt = fake._jwt_problem

    def remember(token: str):
        jwts.add(token)
        return check_jwt(token)

    fake._jwt_problem = remember
    app = AppProcess(
        env={
            "APP_ID": str(APP_ID), "PRIVATE_KEY": app_private_key.strip().replace("\n", "\\n"),
            "WEBHOOK_SECRET": WEBHOOK_SECRET, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'pinkflow.db'}",
            "GITHUB_API_URL": fake.url, "PUBLIC_URL": "http://pinkflow.test", "LOG_FORMAT": log_format,
            "LOG_LEVEL": "debug",
        },
        log_path=tmp_path / "app.log",
    )
    await app.start()
    try:
        async with aiohttp.ClientSession() as http:

            async def send(delivery):
                assert await app.send(http, delivery, secret=WEBHOOK_SECRET) == 202

            await send(payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=4242))
            await eventually(lambda: fake.check_runs_for(REPO, SHA), message="check run", timeout=60)
            # A revoked token (401, renewed with a new JWT) and a failing edit (logged with its error).
            fake.revoke_tokens()
            fake.fail("checks/update", status=502, times=2)
            for voter in ("ann", "max", "dan"):
                await send(payloads.posted_comment(fake, "/approve", repo=REPO, number=PR, author=voter))
            await eventually(
                lambda: any(run.get("conclusion") == "success" for run in fake.check_runs_for(REPO, SHA)),
                message="the vote passed", timeout=60,
            )
    finally:
        await app.stop()
    log = app.log_text()
    assert "delivery handled" in log and "debug" in log.lower()
    assert fake.tokens_issued >= 2 and len(jwts) >= 1
    for token in fake.tokens:
        assert token not in log
        assert token[4:] not in log  # not even without its prefix
    for token in jwts:
        assert token not in log
        assert token.rsplit(".", 1)[1] not in log  # nor its signature alone
    assert WEBHOOK_SECRET not in log
    for line in app_private_key.strip().splitlines()[1:-1]:
        assert line not in log


# ---------------------------------------------------------------------------------------
# The .env file the setup flow writes
# ---------------------------------------------------------------------------------------


@pytest.fixture
def permissive_umask():
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_the_env_file_is_private_from_its_first_byte(tmp_path, permissive_umask, monkeypatch):
    """Written 0600 even with umask 0 and over a world-readable file, and never readable by
    others on the way: the content is complete and private before it is moved into place."""
    path = tmp_path / ".env"
    path.write_text("PORT=3000\n")
    path.chmod(0o666)
    seen: list[tuple[int, str]] = []
    replace = os.replace

    def spy(source, target):
        seen.append((stat.S_IMODE(os.stat(source).st_mode), Path(source).read_text()))
        replace(source, target)

    monkeypatch.setattr(registration.os, "replace", spy)
    registration.write_env_file(path, {"WEBHOOK_SECRET": "s3cret", "PRIVATE_KEY": "-----BEGIN-----\nabc\n-----END-----"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert seen and all(mode == 0o600 for mode, _ in seen)
    assert 'WEBHOOK_SECRET="s3cret"' in seen[-1][1]
    assert list(tmp_path.iterdir()) == [path]


def test_a_planted_symlink_does_not_redirect_the_secrets(tmp_path, permissive_umask):
    elsewhere = tmp_path / "public.txt"
    elsewhere.write_text("untouched\n")
    elsewhere.chmod(0o644)
    path = tmp_path / ".env"
    path.symlink_to(elsewhere)
    registration.write_env_file(path, {"WEBHOOK_SECRET": "s3cret"})
    assert elsewhere.read_text() == "untouched\n" and stat.S_IMODE(elsewhere.stat().st_mode) == 0o644
    assert not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "s3cret" in path.read_text()


async def test_the_setup_callback_writes_a_new_env_file_0600_whatever_the_umask(
    tmp_path, fake_github, app_private_key, permissive_umask
):
    from aiohttp.test_utils import TestClient

    from pinkflow_bot.runtime import Runtime
    from pinkflow_bot.settings import Settings
    from pinkflow_bot.web.app import create_app

    env_file = tmp_path / "app" / ".env"
    env_file.parent.mkdir()
    settings = Settings.from_mapping(
        {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'pinkflow.db'}", "GITHUB_API_URL": fake_github.url,
         "GITHUB_URL": fake_github.web_url, "PUBLIC_URL": "http://pinkflow.test"},
        env_file=env_file,
    )
    runtime = await Runtime.create(settings)
    client = TestClient(TestServer(create_app(runtime)))
    await client.start_server()
    try:
        page = await client.get("/setup")
        state = page.cookies["pinkflow_setup_state"].value
        fake_github.add_manifest_code("f00d", pem=app_private_key)
        response = await client.get("/setup/callback", params={"code": "f00d", "state": state}, allow_redirects=False)
        assert response.status == 302, await response.text()
    finally:
        await client.close()
        await runtime.close()
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert "WEBHOOK_SECRET=" in env_file.read_text()


# ---------------------------------------------------------------------------------------
# Rules come from the default branch only
# ---------------------------------------------------------------------------------------

CONFIG = ".github/pinkflow.yml"


def _on_master(delivery: payloads.Delivery) -> payloads.Delivery:
    delivery.payload["repository"]["default_branch"] = "master"
    return delivery


async def test_a_pull_request_cannot_rewrite_its_own_rules(tmp_path, github_world, app_private_key):
    fake = github_world
    fake.set_file(REPO, CONFIG, "min_votes: 2\nthreshold: 75\n")  # on the default branch
    # The pull request's branch makes it pass on any single vote and promote itself.
    fake.set_file(REPO, CONFIG, "min_votes: 1\nthreshold: 0\npromote:\n  auto: true\n", ref="feature")
    async with app_under_test(tmp_path, github_url=fake.url, private_key=app_private_key) as app:
        # The pull request's own push changes the file on its branch.
        push = payloads.delivery("push", payloads.example("push/with-installation.json"))
        push.payload.update(ref="refs/heads/feature", after=SHA, forced=False,
                            commits=[{"id": SHA, "added": [], "removed": [], "modified": [CONFIG]}],
                            head_commit={"id": SHA, "added": [], "removed": [], "modified": [CONFIG]})
        push.payload["repository"].update(full_name=REPO, name="shop", default_branch="master")
        push.payload["installation"] = {"id": 1}
        await app.deliver(
            _on_master(payloads.pull_request("synchronize", repo=REPO, number=PR, head_sha=SHA, author="alice")),
            push,
            _on_master(payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=4242)),
            _on_master(payloads.posted_comment(fake, "/approve", repo=REPO, number=PR, author="ann")),
        )
        async with app.runtime.sessions() as session:
            [proposal] = list(await session.scalars(select(Proposal)))
        assert proposal.rules["min_votes"] == 2 and proposal.state == "voting"
        assert fake.calls_for("repos/create-deployment") == []
        await app.deliver(_on_master(payloads.posted_comment(fake, "/approve", repo=REPO, number=PR, author="max")))
        async with app.runtime.sessions() as session:
            assert (await session.get(Proposal, proposal.id, populate_existing=True)).state == "passed"
        assert fake.calls_for("repos/create-deployment") == []  # auto-promotion was the branch's idea only
    reads = fake.calls_for("repos/get-content")
    assert reads, "the rules file was read"
    assert all(call.query.get("ref") in (None, "master") for call in reads), [c.query for c in reads]


# ---------------------------------------------------------------------------------------
# Preview health: only the deployment's own URL
# ---------------------------------------------------------------------------------------


class Site:
    """A small HTTP server on 127.0.0.1 that records the paths it was asked for."""

    def __init__(self, handler) -> None:
        self.paths: list[str] = []
        self.handler = handler
        self.server: TestServer | None = None

    async def __aenter__(self) -> "Site":
        async def record(request: web.Request) -> web.StreamResponse:
            self.paths.append(request.path_qs)
            return await self.handler(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.server.close()

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.server.port}{path}"


def _redirect(location: str):
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": location})

    return handler


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def test_preview_health_fetches_the_deployments_own_url_and_follows_no_redirect_elsewhere():
    async with Site(_ok) as internal:
        targets = [
            internal.url("/admin", host="localhost"),  # another host name for this machine
            "http://169.254.169.254/latest/meta-data/",  # a cloud metadata service
            "http://10.0.0.7/",
            "http://[::ffff:10.0.0.7]/",
            "http://0.0.0.0/",
            "file:///etc/passwd",
        ]
        for target in targets:
            async with Site(_redirect(target)) as preview:
                result = await preview_health.check_preview(preview.url("/pr-7"), path="/health", allow_loopback=True)
                assert preview.paths == ["/health"], target
                assert result.status == 302 and "not followed" in (result.error or ""), (target, result)
        assert internal.paths == []

        async def to_ready(request: web.Request) -> web.Response:
            return await (_ok(request) if request.path == "/ready" else _redirect("/ready")(request))

        async with Site(to_ready) as preview:  # the same host may redirect within itself
            result = await preview_health.check_preview(preview.url(), path="/health", allow_loopback=True)
            assert (result.status, result.error, preview.paths) == (200, None, ["/health", "/ready"])


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3:8080/",
        "http://192.168.0.1/",
        "http://[fd00::1]/",
        "http://[::ffff:127.0.0.1]:1/",
        "http://0.0.0.0:1/",
        "http://2130706433/",  # 127.0.0.1 written as a number
        "http://１２７.０.０.１:1/",  # full-width digits, which the HTTP client folds to 127.0.0.1
        "http://１６９.２５４.１６９.２５４/",
        "http://127。0。0。1:1/",  # ideographic full stops
        "gopher://example.com/",
    ],
)
async def test_preview_urls_naming_private_addresses_are_never_fetched(url, monkeypatch):
    connections: list[object] = []
    loop_class = type(asyncio.get_running_loop())
    for method in ("sock_connect", "create_connection"):
        real = getattr(loop_class, method)

        async def spy(self, *args, _real=real, **kwargs):
            connections.append(args)
            return await _real(self, *args, **kwargs)

        monkeypatch.setattr(loop_class, method, spy)
    result = await preview_health.check_preview(url, path="/")
    assert result.status is None and result.error
    assert connections == []


@pytest.mark.parametrize("url", ["http://[::1", "http://[zz]/", "http://a..b/", "http://" + "a" * 300 + "/", "http://℀/", "http://host:99999/"])
async def test_a_preview_url_that_is_not_valid_gets_a_reason_not_an_exception(url):
    result = await preview_health.check_preview(url, path="/")
    assert (result.status, result.elapsed_ms) == (None, None)
    assert "not a valid" in (result.error or ""), result


async def test_a_public_name_resolving_to_a_private_address_is_not_fetched(monkeypatch):
    """DNS may point a public-looking name inside: the addresses connected to are checked."""

    async def resolve(self, host, port=0, family=0):
        return [{"hostname": host, "host": "10.0.0.9", "port": port, "family": 2, "proto": 0, "flags": 0}]

    monkeypatch.setattr(preview_health.DefaultResolver, "resolve", resolve)
    result = await preview_health.check_preview("https://preview-7.example.dev/", path="/")
    assert result.status is None and "not checked" in (result.error or "")


async def test_the_app_checks_only_the_previews_own_url(tmp_path, github_world, app_private_key):
    fake = github_world
    async with Site(_ok) as internal:
        async with Site(_redirect(internal.url("/secret", host="localhost"))) as preview:
            async with app_under_test(tmp_path, github_url=fake.url, private_key=app_private_key) as app:
                await app.deliver(
                    _on_master(payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=4242, url=preview.url("/pr-7")))
                )
                async with app.runtime.sessions() as session:
                    [proposal] = list(await session.scalars(select(Proposal)))
            assert preview.paths == ["/"]  # the preview's host, at `preview_health.path`
            assert internal.paths == []
            assert proposal.health_status == 302 and "another host" in (proposal.health_error or "")


# ---------------------------------------------------------------------------------------
# The benchmarks' load generator reaches loopback only
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.1/api/github/webhooks", "http://169.254.169.254/", "http://[::1]:3000/",
     "http://[::ffff:127.0.0.1]:3000/", "ftp://127.0.0.1/", "http://0.0.0.0:3000/", "http:///nohost",
     "http://no-such-host.invalid/"],
)
async def test_the_load_generator_refuses_targets_outside_loopback(url):
    from bench.loadgen import TargetRefused, comment_bodies, generate_load, loopback_target

    with pytest.raises(TargetRefused):
        loopback_target(url)
    with pytest.raises(TargetRefused):
        await generate_load(url, comment_bodies(WEBHOOK_SECRET, variants=1), concurrency=1, max_requests=1,
                            max_seconds=1)


async def test_the_load_generator_sends_signed_deliveries_with_their_own_ids(intake):
    from bench.loadgen import comment_bodies, generate_load, loopback_target

    url = str(intake.client.make_url("/api/github/webhooks")).replace("127.0.0.1", "localhost")
    assert loopback_target(url)[0].startswith("http://127.0.0.1:")
    result = await generate_load(url, comment_bodies(WEBHOOK_SECRET, variants=2), concurrency=4, max_requests=12,
                                 max_seconds=30, warmup=2)
    assert (result.sent, dict(result.statuses)) == (12, {202: 12})
    assert len(await stored_ids(intake)) == 14  # every delivery stored once: no id repeated


# ---------------------------------------------------------------------------------------
# Signed dashboard links
# ---------------------------------------------------------------------------------------


@pytest.fixture
async def world(tmp_path, fake_github, app_private_key):
    seed_world(fake_github)
    async with app_under_test(tmp_path, github_url=fake_github.url, private_key=app_private_key, clock=recent_clock()) as app:
        yield World(app, fake_github)


def signature_of(world: World, proposal_id: int) -> str:
    link = proposal_link(world.app.runtime.settings, proposal_id=proposal_id, private=True)
    return parse_qs(urlsplit(link).query)["sig"][0]


async def test_a_private_proposal_opens_only_with_its_own_signature(world):
    first = await world.open(VAULT, 7)
    second = await world.open(VAULT, 8)
    public = await world.open(SHOP, 9)
    missing = second + 1000
    client = world.app.client

    async def answers(proposal_id: int, sig: str | None) -> tuple[int, int]:
        params = {} if sig is None else {"sig": sig}
        page = await client.get(f"/proposals/{proposal_id}", params=params)
        data = await client.get(f"/api/proposals/{proposal_id}", params=params)
        return page.status, data.status

    right = signature_of(world, first)
    wrong = [None, "", "0" * 64, right[:-1] + ("0" if right[-1] != "0" else "1"), right[:32],
             signature_of(world, second), hmac.new(b"another-secret", b"proposal:1", hashlib.sha256).hexdigest()]
    for sig in wrong:
        assert await answers(first, sig) == (404, 404), sig
    assert await answers(first, right) == (200, 200)
    assert await answers(second, right) == (404, 404)  # one proposal's signature opens no other
    assert await answers(second, signature_of(world, second)) == (200, 200)
    assert await answers(public, None) == (200, 200)
    # A private proposal without its signature looks exactly like one that does not exist.
    hidden = await client.get(f"/api/proposals/{first}")
    absent = await client.get(f"/api/proposals/{missing}")
    assert (hidden.status, await hidden.json()) == (absent.status, await absent.json())
    hidden_page, absent_page = await client.get(f"/proposals/{first}"), await client.get(f"/proposals/{missing}")
    assert await hidden_page.text() == await absent_page.text()
    # The seed's status API has no signature to take: private previews are not shown there.
    proposal = await world.proposal(first)
    response = await client.get("/api/deployments/status", params={"deploymentId": str(proposal.preview_deployment_id)})
    assert response.status == 404
    listed = await (await client.get("/api/proposals")).json()
    assert first not in {p["id"] for p in listed["proposals"]}


# ---------------------------------------------------------------------------------------
# SQL only through bound parameters
# ---------------------------------------------------------------------------------------

SQL_CALLS = {"text", "literal_column", "execute", "executemany", "exec_driver_sql", "executescript", "fetch",
             "fetchval", "fetchrow"}


def _is_built_string(node: ast.AST) -> bool:
    """An f-string with values, `%` formatting, `.format()` or concatenation with a non-literal."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(part, ast.FormattedValue) for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return isinstance(node.left, (ast.Constant, ast.JoinedStr)) and isinstance(getattr(node.left, "value", ""), str)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        sides = (node.left, node.right)
        stringy = any(isinstance(s, ast.Constant) and isinstance(s.value, str) or isinstance(s, ast.JoinedStr) for s in sides)
        return stringy and not all(isinstance(s, ast.Constant) for s in sides)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return True
    return False


def _literal_text(node: ast.AST) -> str:
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value for part in node.values if isinstance(part, ast.Constant))
    if isinstance(node, ast.BinOp):
        return _literal_text(node.left)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ""


def sql_built_from_strings(source: str, filename: str) -> list[str]:
    """Calls that hand a database a statement assembled from values, with where they are."""
    tree = ast.parse(source, filename)
    findings = []
    for function in [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))]:
        assigned: dict[str, list[ast.AST]] = {}
        for node in ast.walk(function):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        assigned.setdefault(target.id, []).append(node.value)
        for node in ast.walk(function):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name not in SQL_CALLS:
                continue
            statement = node.args[0]
            candidates = assigned.get(statement.id, []) if isinstance(statement, ast.Name) else [statement]
            for candidate in candidates:
                if not _is_built_string(candidate):
                    continue
                literal = _literal_text(candidate).lstrip()
                allowed = literal.upper().startswith("PRAGMA") or (
                    filename.endswith(os.path.join("storage", "database.py")) and literal.startswith("BEGIN ")
                )
                if not allowed:
                    findings.append(f"{filename}:{node.lineno}: {ast.unparse(node)[:120]}")
    return sorted(set(findings))


def test_the_sql_finder_finds_statements_built_from_values():
    """The finder below would see the ways a value gets into SQL text."""
    sample = textwrap.dedent(
        """
        async def bad(session, name, table):
            await session.execute(text(f"SELECT * FROM proposals WHERE repo = '{name}'"))
            await session.execute(text("SELECT * FROM %s" % table))
            await session.execute(text("SELECT * FROM {}".format(table)))
            query = "DELETE FROM ballots WHERE voter = '" + name + "'"
            await connection.exec_driver_sql(query)
        async def fine(session, name):
            await session.execute(text("SELECT * FROM proposals WHERE repo = :repo"), {"repo": name})
            cursor.execute("PRAGMA journal_mode=WAL")
        """
    )
    found = sql_built_from_strings(sample, "sample.py")
    assert [line.split(":")[1] for line in found] == ["3", "4", "5", "7"]


def test_sql_is_never_built_from_values_in_the_app():
    findings = []
    for path in sorted((REPO_ROOT / "pinkflow_bot").rglob("*.py")):
        findings += sql_built_from_strings(path.read_text(), str(path.relative_to(REPO_ROOT)))
    assert findings == [], "\n".join(findings)


HOSTILE = "it's \"fine\"; DROP TABLE ballots; -- 100% _x_ \\ /* */ ' OR '1'='1 ; SELECT pg_sleep(5)"


async def test_sql_metacharacters_round_trip_unchanged(tmp_path, fake_github, app_private_key, database_url):
    repo = "o'rg--x/sh;op_%"
    login = "o'brien\";--"
    fake_github.add_installation(1, "o'rg--x")
    fake_github.add_repo(repo, installation_id=1)
    for user, role in ((login, "admin"), ("alice", "write")):
        fake_github.add_user(user)
        fake_github.set_permission(repo, user, role)
    fake_github.add_pull(repo, PR, head_sha=SHA, author="alice")
    async with app_under_test(tmp_path, github_url=fake_github.url, private_key=app_private_key,
                              database_url=database_url) as app:
        await app.deliver(payloads.preview_ready(repo=repo, sha=SHA, deployment_id=4242))
        await app.deliver(payloads.posted_comment(fake_github, f"/reject {HOSTILE}", repo=repo, number=PR, author=login))
        async with app.runtime.sessions() as session:
            [proposal] = list(await session.scalars(select(Proposal)))
            [ballot] = list(await session.scalars(select(Ballot)))
            details = [event.detail for event in await session.scalars(select(AuditEvent))]
            assert await session.scalar(select(func.count()).select_from(StoredDelivery)) == 2
        assert proposal.repo_full_name == repo
        assert (ballot.voter, ballot.choice, ballot.reason) == (login, "reject", " ".join(HOSTILE.split()))
        assert any(ballot.reason in detail for detail in details)
        answer = await app.client.get(f"/api/proposals/{proposal.id}")
        data = (await answer.json())["proposal"]
        assert answer.status == 200, data
        assert data["repository"] == repo
        assert [(vote["voter"], vote["reason"]) for vote in data["votes"]] == [(login, ballot.reason)]


async def test_a_loopback_preview_is_not_fetched_unless_the_operator_allows_it():
    """A deployment status naming 127.0.0.1 must not let anyone probe the App host's ports."""
    async with Site(_ok) as local:
        refused = await preview_health.check_preview(local.url("/"), path="/")
        assert refused.status is None and "loopback" in (refused.error or "")
        allowed = await preview_health.check_preview(local.url("/"), path="/", allow_loopback=True)
        assert allowed.status == 200
