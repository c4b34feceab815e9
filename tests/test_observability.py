"""What operators see: Prometheus metrics, request ids, error reports only when asked for."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import aiohttp
import pytest

from pinkflow_bot.error_reports import init_error_reports
from pinkflow_bot.metrics import github_route
from pinkflow_bot.settings import Settings
from tests import payloads
from tests.harness import app_under_test
from tests.paths import REPO_ROOT

REPO = "octo-org/shop"
SHA = "5d41402abc4b2a76b9719d911017c592ae4d5f1a"


@pytest.fixture
async def app(tmp_path, fake_github, app_private_key):
    fake_github.add_installation(1, "octo-org")
    fake_github.add_repo(REPO, installation_id=1)
    fake_github.add_user("alice")
    fake_github.add_user("ann")
    fake_github.set_permission(REPO, "ann", "admin")
    fake_github.add_pull(REPO, 3, head_sha=SHA, author="alice")
    async with app_under_test(tmp_path, github_url=fake_github.url, private_key=app_private_key) as app:
        yield app


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.rsplit("} ", 1)[0])) if "{" in line else {}
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name} {labels}")


async def test_metrics_count_deliveries_github_calls_and_stored_state(app, fake_github):
    before = await (await app.client.get("/metrics")).text()
    accepted_before = 0.0
    try:
        accepted_before = sample(before, "pinkflow_deliveries_total", event="deployment_status", outcome="accepted")
    except AssertionError:
        pass
    await app.deliver(payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=31))
    await app.deliver(payloads.posted_comment(fake_github, "/approve", repo=REPO, number=3, author="ann"))
    response = await app.client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert sample(text, "pinkflow_deliveries_total", event="deployment_status", outcome="accepted") == accepted_before + 1
    assert sample(text, "pinkflow_deliveries_total", event="issue_comment", outcome="handled") >= 1
    assert sample(text, "pinkflow_delivery_processing_seconds_count", event="issue_comment") >= 1
    assert sample(text, "pinkflow_github_requests_total", method="POST", route="/repos/{owner}/{repo}/check-runs", status="201") >= 1
    assert sample(text, "pinkflow_github_rate_limit_remaining", resource="core") > 0
    assert sample(text, "pinkflow_proposals", state="voting") == 1
    assert sample(text, "pinkflow_votes", choice="approve") == 1
    assert sample(text, "pinkflow_backlog", kind="pending_deliveries") == 0
    assert sample(text, "pinkflow_effects_total", kind="sync_check_run", outcome="done") >= 1


async def test_a_refused_delivery_is_counted_without_trusting_its_event_header(app):
    delivery = payloads.delivery("made-up-event-" + "x" * 80, {"zen": "x"})
    response = await app.send(delivery, secret="not-the-secret")
    assert response.status == 401
    text = await (await app.client.get("/metrics")).text()
    assert sample(text, "pinkflow_deliveries_total", event="unverified", outcome="refused_401") >= 1
    assert "made-up-event" not in text


async def test_a_ping_is_counted_as_a_ping_not_as_a_redelivery(app):
    def pings_and_duplicates(text: str) -> tuple[float, float]:
        counts = []
        for outcome in ("ping", "duplicate"):
            try:
                counts.append(sample(text, "pinkflow_deliveries_total", event="ping", outcome=outcome))
            except AssertionError:  # none counted yet in this process
                counts.append(0.0)
        return counts[0], counts[1]

    before = pings_and_duplicates(await (await app.client.get("/metrics")).text())
    assert (await app.send(payloads.ping())).status == 200
    after = pings_and_duplicates(await (await app.client.get("/metrics")).text())
    assert (after[0] - before[0], after[1] - before[1]) == (1, 0)


async def test_github_enterprise_routes_are_labelled_from_the_api_root():
    """`GITHUB_API_URL=https://HOST/api/v3`: one label per route, not per repository."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from pinkflow_bot.github.client import _VersionedClient
    from pinkflow_bot.metrics import GITHUB_REQUESTS

    async def answer(request):
        return web.json_response({})

    server_app = web.Application()
    server_app.router.add_route("*", "/{tail:.*}", answer)
    async with TestServer(server_app) as server, aiohttp.ClientSession() as http:
        gh = _VersionedClient(http, "test", oauth_token="t", base_url=str(server.make_url("/api/v3")))
        await gh.getitem("/repos/team2/site2/pulls/5")
    routes = {sample.labels["route"] for metric in GITHUB_REQUESTS.collect() for sample in metric.samples}
    assert "/repos/{owner}/{repo}/pulls/{id}" in routes
    assert not any("team2" in route or route.startswith("/api/v3") for route in routes)


@pytest.mark.parametrize(
    "path, method",
    [("/api/health", "get"), ("/nothing-here", "get"), ("/api/github/webhooks", "post"), ("/metrics", "get")],
)
async def test_every_answer_carries_a_request_id(app, path, method):
    response = await getattr(app.client, method)(path)
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
    echoed = await getattr(app.client, method)(path, headers={"X-Request-ID": "edge-7f3a.42"})
    assert echoed.headers["X-Request-ID"] == "edge-7f3a.42"
    unsafe = await getattr(app.client, method)(path, headers={"X-Request-ID": "bad id\\r\\nSet-Cookie: x"})
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe.headers["X-Request-ID"])


@pytest.mark.parametrize(
    "path, route",
    [
        ("/repos/octo/shop/check-runs/42", "/repos/{owner}/{repo}/check-runs/{id}"),
        ("/repos/octo/shop/commits/" + SHA + "/pulls", "/repos/{owner}/{repo}/commits/{sha}/pulls"),
        ("/repos/octo/shop/collaborators/ann/permission", "/repos/{owner}/{repo}/collaborators/{name}/permission"),
        ("/app/installations/7/access_tokens", "/app/installations/{id}/access_tokens"),
        ("/orgs/octo/teams/core/memberships/ann", "/orgs/{org}/teams/{name}/memberships/{name}"),
    ],
)
def test_github_routes_are_labelled_without_names(path, route):
    assert github_route(path) == route


def test_no_error_reports_without_a_dsn():
    assert init_error_reports(Settings.load({}, env_file=None)) is False


def test_error_reports_go_to_sentry_with_secrets_masked(tmp_path):
    script = textwrap.dedent(
        """
        import gzip, http.server, logging, threading
        bodies = []
        class Sentry(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                bodies.append(gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" else body)
                self.send_response(200); self.end_headers(); self.wfile.write(b"{}")
            def log_message(self, *args): pass
        server = http.server.HTTPServer(("127.0.0.1", 0), Sentry)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        from pinkflow_bot.settings import Settings
        from pinkflow_bot.error_reports import init_error_reports
        from pinkflow_bot.logs import configure_logging
        settings = Settings.load({"SENTRY_DSN": f"http://k3y@127.0.0.1:{server.server_port}/7",
                                  "WEBHOOK_SECRET": "hook-secret-value-x"}, env_file=None)
        configure_logging(secrets=settings.secrets())
        assert init_error_reports(settings)
        try:
            raise RuntimeError("token ghs_16C7e42F292c6912E7710c838347Ae178B4a and hook-secret-value-x")
        except RuntimeError:
            logging.getLogger("pinkflow_bot.test").exception("handler failed")
        import sentry_sdk
        sentry_sdk.flush(10)
        sent = b"".join(bodies)
        print("SENT", len(bodies), b"handler failed" in sent or b"RuntimeError" in sent,
              b"ghs_16C7" in sent, b"hook-secret-value-x" in sent)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr
    line = next(text for text in result.stdout.splitlines() if text.startswith("SENT"))
    count, reported, token_leaked, secret_leaked = line.split()[1:]
    assert int(count) >= 1 and reported == "True"
    assert (token_leaked, secret_leaked) == ("False", "False")


async def test_metrics_keep_counting_while_the_database_is_away_and_say_so(tmp_path, app_private_key):
    """A scrape while the database does not answer is still served: the refused deliveries
    are counted, `pinkflow_database_up` is 0 and the stored state's gauges show nothing
    rather than what they last read; once the database is back, they are read again."""
    from aiohttp.test_utils import TestClient, TestServer

    from pinkflow_bot.runtime import Runtime
    from pinkflow_bot.storage.database import migrate
    from pinkflow_bot.web.app import create_app
    from tests.harness import WEBHOOK_SECRET, app_settings

    folder = tmp_path / "data"
    settings = app_settings(
        database_url=f"sqlite+aiosqlite:///{folder / 'pinkflow.db'}", github_url="http://127.0.0.1:9", private_key=app_private_key
    )
    runtime = await Runtime.create(settings, with_worker=False, run_migrations=False)
    try:
        async with TestClient(TestServer(create_app(runtime))) as client:
            delivery = payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=41)
            body = delivery.body()
            refused = await client.post("/api/github/webhooks", data=body, headers=delivery.headers(WEBHOOK_SECRET, body))
            assert refused.status == 503

            away = await client.get("/metrics")
            assert away.status == 200
            text = await away.text()
            assert sample(text, "pinkflow_database_up") == 0
            assert sample(text, "pinkflow_deliveries_total", event="unverified", outcome="refused_503") >= 1
            assert "pinkflow_backlog{" not in text and "pinkflow_proposals{" not in text
            assert str(sample(text, "pinkflow_oldest_pending_delivery_age_seconds")) == "nan"

            folder.mkdir()
            await migrate(runtime.engine)
            back = await (await client.get("/metrics")).text()
            assert sample(back, "pinkflow_database_up") == 1
            assert sample(back, "pinkflow_backlog", kind="pending_deliveries") == 0
    finally:
        await runtime.close()
