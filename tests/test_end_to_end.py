"""The real `python app.py` process against the fake GitHub: open, vote, pass, promote, restart."""

from __future__ import annotations

import signal

import aiohttp
import pytest

from tests import payloads
from tests.harness import APP_ID, WEBHOOK_SECRET
from tests.process import AppProcess, eventually, free_port
from tests.test_observability import sample

REPO = "octo-org/shop"
PR = 7
SHA = "3f786850e387550fdab836ed7e6dc881de23001b"
PREVIEW_ID = 424242
PREVIEW_URL = "https://shop-git-feature-octo.vercel.app"
MARKER = "<!-- pinkflow:status -->"


@pytest.fixture
def github_world(fake_github):
    fake_github.add_installation(1, "octo-org")
    fake_github.add_repo(REPO, installation_id=1)
    for login, role in [
        ("owner-ann", "admin"),
        ("maint-max", "maintain"),
        ("dev-dan", "write"),
        ("reader-rita", "read"),
        ("alice", "admin"),
    ]:
        fake_github.add_user(login)
        fake_github.set_permission(REPO, login, role)
    fake_github.add_user("stranger-sam")
    fake_github.add_user("ci-helper[bot]", type="Bot")
    fake_github.add_pull(REPO, PR, head_sha=SHA, author="alice")
    return fake_github


def app_env(database_url: str, fake_github, private_key: str) -> dict[str, str]:
    return {
        "APP_ID": str(APP_ID),
        # Inline with escaped newlines, as operators paste it into a platform's settings.
        "PRIVATE_KEY": private_key.strip().replace("\n", "\\n"),
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "DATABASE_URL": database_url,
        "GITHUB_API_URL": fake_github.url,
        "PUBLIC_URL": "http://pinkflow.test",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "debug",
    }


def status_comments(fake_github) -> list[dict]:
    return [c for c in fake_github.comments_on(REPO, PR) if MARKER in c["body"]]


def reactions_on(fake_github, comment_id: int) -> set[str]:
    return {r["content"] for r in fake_github.reactions.get(comment_id, [])}


def governance_runs(fake_github) -> list[dict]:
    """The commit's governance check runs, newest (the one GitHub shows) first."""
    runs = fake_github.check_runs_for(REPO, SHA, name="Pinkflow governance")
    return sorted(runs, key=lambda run: run["id"], reverse=True)


async def test_a_preview_is_voted_on_passed_and_promoted_once_across_a_restart(
    tmp_path, github_world, app_private_key, database_url
):
    fake = github_world
    app = AppProcess(env=app_env(database_url, fake, app_private_key), log_path=tmp_path / "app.log")
    await app.start()
    async with aiohttp.ClientSession() as http:

        async def send(delivery):
            status = await app.send(http, delivery, secret=WEBHOOK_SECRET)
            assert status == 202, status
            return delivery

        # The preview's success opens the proposal: a check run in progress and one status comment.
        await send(payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=PREVIEW_ID, url=PREVIEW_URL))
        await eventually(lambda: governance_runs(fake) and status_comments(fake), message="proposal opened")
        assert governance_runs(fake)[0]["status"] == "in_progress"

        def said(body, author, **kwargs):
            return payloads.posted_comment(fake, body, repo=REPO, number=PR, author=author, **kwargs)

        not_counted = [
            await send(said("/approve", "reader-rita")),  # read permission only
            await send(said("/approve", "stranger-sam")),  # not a collaborator
            await send(said("/approve ship it", "alice")),  # the pull request's author
        ]
        ignored = [
            await send(said("/approve", "ci-helper[bot]", author_type="Bot")),
            await send(said("> /approve\n\nquoting the instructions", "dev-dan")),
            await send(said("To vote, write:\n\n```\n/approve\n```", "maint-max")),
            await send(said("try `/approve` inline", "maint-max")),
        ]
        counted = [
            await send(said("/approve looks good on mobile", "owner-ann")),
            await send(said("/APPROVE", "maint-max")),
            await send(said("/reject the footer overlaps", "dev-dan")),
        ]
        # A command not counted is answered 😕; a counted one shows in the status comment (its
        # absence of any reaction is checked once everything has gone out, below).
        await eventually(
            lambda: all(reactions_on(fake, d.payload["comment"]["id"]) for d in not_counted),
            message="reactions on every command not counted",
        )
        for delivery in not_counted:
            assert reactions_on(fake, delivery.payload["comment"]["id"]) == {"confused"}

        # 3 + 2 approve, 1 rejects: 83.33 % over the 75 % threshold with quorum 3.
        await eventually(lambda: governance_runs(fake)[0].get("conclusion") == "success", message="vote passed")
        run = governance_runs(fake)[0]
        assert [a["identifier"] for a in fake.check_run_actions[run["id"]]] == ["promote"]
        # The comment is edited by its own effect: it converges on the same state.
        await eventually(lambda: "Passed" in status_comments(fake)[0]["body"], message="comment shows the pass")
        [comment] = status_comments(fake)
        for expected in ("@owner-ann", "@maint-max", "@dev-dan", "the footer overlaps", PREVIEW_URL, "83.33"):
            assert expected in comment["body"], expected
        for voter in ("reader-rita", "stranger-sam", "ci-helper"):
            assert f"| @{voter}" not in comment["body"]

        # /promote twice and the button: one production deployment.
        promotes = [await send(said("/promote", "dev-dan")), await send(said("/promote", "owner-ann"))]
        await send(payloads.promote_clicked(repo=REPO, number=PR, check_run_id=run["id"], head_sha=SHA, clicker="maint-max", external_id=run["external_id"]))
        await eventually(lambda: fake.calls_for("repos/create-deployment"), message="a deployment")
        await eventually(
            lambda: any(reactions_on(fake, d.payload["comment"]["id"]) for d in promotes),
            message="the second /promote refused",
        )
        await eventually(lambda: fake.calls_for("checks/update") and "Promoted" in governance_runs(fake)[0]["output"]["title"],
                         message="check run shows the promotion")
        [deployment_call] = fake.calls_for("repos/create-deployment")
        assert deployment_call.json["ref"] == SHA
        assert deployment_call.json["environment"] == "production"
        assert deployment_call.json["auto_merge"] is False
        assert deployment_call.json["required_contexts"] == []

        # One /promote counted (no reaction), the other refused: one promotion, one 😕.
        answers = sorted(sorted(reactions_on(fake, d.payload["comment"]["id"])) for d in promotes)
        assert answers == [[], ["confused"]]
        # Counted votes got no reaction: the status comment and the check run answer them.
        for delivery in counted:
            assert reactions_on(fake, delivery.payload["comment"]["id"]) == set()
        assert len(fake.calls_for("reactions/create-for-issue-comment")) == len(not_counted) + 1
        # No message went out with a delivery that did not count.
        for delivery in ignored:
            assert reactions_on(fake, delivery.payload["comment"]["id"]) == set()

        # SIGTERM: a clean stop, then the same database in a new process.
        assert await app.stop(signal.SIGTERM) == 0
        app = AppProcess(env=app_env(database_url, fake, app_private_key), log_path=tmp_path / "app.log")
        await app.start()
        async with http.get(f"{app.url}/api/deployments/status", params={"deploymentId": str(PREVIEW_ID)}) as response:
            assert response.status == 200
            status = (await response.json())["deployment"]
        assert status["project"] == REPO
        assert status["pr_number"] == PR
        assert status["deploy_url"] == PREVIEW_URL
        assert status["status"] == "promoted"
        votes = status["votes"]
        assert (votes["total"], votes["approvals"], votes["rejections"]) == (3, 2, 1)
        assert votes["approvalRate"] == pytest.approx(83.33)
        assert votes["isApproved"] is True

        await send(said("/promote", "owner-ann"))
        updates_before = len(fake.calls_for("issues/update-comment"))
        await send(said("/status", "reader-rita"))
        await eventually(lambda: len(fake.calls_for("issues/update-comment")) > updates_before, message="/status refresh")
        assert len(fake.calls_for("repos/create-deployment")) == 1
        assert len(status_comments(fake)) == 1
        assert len(governance_runs(fake)) == 1
        assert await app.stop(signal.SIGTERM) == 0

    log_text = app.log_text()
    assert "delivery handled" in log_text
    for secret in (WEBHOOK_SECRET, app_private_key.strip().splitlines()[1], "ghs_", "PRIVATE KEY"):
        assert secret not in log_text


async def test_without_credentials_the_app_starts_and_serves_the_setup_page(tmp_path):
    env = {"APP_ID": "", "PRIVATE_KEY": "", "PRIVATE_KEY_PATH": "", "WEBHOOK_SECRET": "", "DATABASE_URL": ""}
    app = AppProcess(env=env, log_path=tmp_path / "app.log")
    await app.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{app.url}/") as response:
                page = await response.text()
                assert response.status == 200
                assert "Set up pinkflow-bot" in page and "APP_ID" in page
            status = await app.send(http, payloads.ping(), secret="anything")
            assert status == 401
    finally:
        assert await app.stop() == 0
    # The default database is SQLite, in the working folder.
    assert (tmp_path / "pinkflow.db").exists()


@pytest.mark.parametrize(
    "command, env, code, says",
    [
        (["migrate"], {"DATABASE_URL": "postgresql+asyncpg://nobody:pw@127.0.0.1:1/pinkflow"}, 1,
         "cannot start: database postgresql+asyncpg://nobody:***@127.0.0.1:1/pinkflow (DATABASE_URL): "),
        # As Heroku, DigitalOcean and Neon give it: asyncpg, libpq's sslmode as asyncpg's ssl.
        (["migrate"], {"DATABASE_URL": "postgres://nobody@127.0.0.1:1/pinkflow?sslmode=require"}, 1,
         "cannot start: database postgresql+asyncpg://nobody@127.0.0.1:1/pinkflow?ssl=require (DATABASE_URL): "),
        (["migrate"], {"DATABASE_URL": "mysql://nobody@127.0.0.1:1/pinkflow"}, 2,
         "configuration error: DATABASE_URL: the App does not run on 'mysql'; write sqlite+aiosqlite:///pinkflow.db or"),
        (["migrate"], {"DATABASE_URL": "sqlite+aiosqlite:////no-such-folder/x/pinkflow.db"}, 1,
         "(DATABASE_URL): unable to open database file (its folder must exist and be writable by this user)"),
        (["web"], {"HOST": "no-such-host.invalid", "LOG_LEVEL": "warning"}, 1, "cannot start: cannot listen on no-such-host.invalid:"),
        (["web"], {"PRIVATE_KEY": "not a key", "APP_ID": "1", "WEBHOOK_SECRET": "s"}, 2, "PRIVATE_KEY is not a PEM private key"),
        (["worker"], {"WORKER_CONCURRENCY": "0"}, 2, "WORKER_CONCURRENCY must be at least 1"),
        (["worker"], {"METRICS_PORT": "metrics"}, 2, "METRICS_PORT must be a whole number"),
        (["worker"], {"METRICS_PORT": "99999"}, 2, "METRICS_PORT must be from 1 to 65535"),
    ],
    ids=["database-unreachable", "platform-url", "no-driver", "no-folder", "no-such-host", "bad-key", "no-workers",
         "bad-metrics-port", "metrics-port-out-of-range"],
)
def test_settings_that_cannot_work_stop_the_app_with_one_line_saying_why(tmp_path, command, env, code, says):
    import subprocess
    import sys

    from tests.paths import REPO_ROOT
    from tests.process import free_port

    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "app.py"), *command], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PORT": str(free_port()), **env},
    )
    assert result.returncode == code, result.stderr
    assert says in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert ":pw@" not in result.stderr  # the database's password is not printed


def test_help_says_what_each_command_does_and_where_settings_come_from(tmp_path):
    import subprocess
    import sys

    from tests.paths import REPO_ROOT

    def app_py(*args: str) -> subprocess.CompletedProcess:
        # A .env the App cannot run with: help is shown all the same.
        (tmp_path / ".env").write_text("PORT=http\n")
        return subprocess.run([sys.executable, str(REPO_ROOT / "app.py"), *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})

    shown = app_py("--help")
    assert shown.returncode == 0, shown.stderr
    for command, does in [("serve", "web server and worker in one process"), ("web", "only the web server"),
                          ("worker", "only the worker"), ("migrate", "bring the database schema up to date"),
                          ("demo", "embedded fake GitHub")]:
        assert f"\n{command} " in shown.stdout and does in shown.stdout, shown.stdout
    assert ".env" in shown.stdout and "DATABASE_URL" in shown.stdout
    unknown = app_py("sevre")
    assert unknown.returncode == 2 and "invalid choice: 'sevre'" in unknown.stderr and "Traceback" not in unknown.stderr
    assert not (tmp_path / "pinkflow.db").exists()


@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_ctrl_c_while_waiting_for_the_database_stops_with_one_line(tmp_path, command):
    import signal
    import socket
    import subprocess
    import sys
    import time

    from tests.paths import REPO_ROOT
    from tests.process import free_port

    # A database server that takes the connection and never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"postgresql+asyncpg://nobody@127.0.0.1:{silent.getsockname()[1]}/pinkflow"
        process = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "app.py"), command], cwd=tmp_path, stderr=subprocess.PIPE, text=True,
            env={"PATH": "/usr/bin:/bin", "PORT": str(free_port()), "DATABASE_URL": url},
        )
        time.sleep(3)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert stderr.strip() == "stopped before the App was up", stderr


def samples_or_zero(text: str, name: str, **labels: str) -> float:
    try:
        return sample(text, name, **labels)
    except AssertionError:
        return 0.0


async def scrape(http: aiohttp.ClientSession, app: AppProcess) -> str:
    async with http.get(f"{app.url}/metrics") as response:
        assert response.status == 200
        return await response.text()


async def refuses_connections(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as http, http.get(url):
            return False
    except aiohttp.ClientConnectionError:
        return True


async def test_a_worker_on_its_own_serves_its_health_and_metrics_on_metrics_port(
    tmp_path, github_world, app_private_key, database_url
):
    env = app_env(database_url, github_world, app_private_key)
    web_app = AppProcess(env=env, log_path=tmp_path / "web.log", command=("web",))
    worker = AppProcess(env=env, log_path=tmp_path / "worker.log", command=("worker",), port_setting="METRICS_PORT")
    await web_app.start()
    # Starting waits for the worker's /api/health on METRICS_PORT to answer 200.
    await worker.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{worker.url}/api/health") as response:
                assert response.status == 200
                health = await response.json()
            assert (health["status"], health["database"], health["worker"]) == ("ok", "ok", "running")
            assert health["backlog"]["pending_deliveries"] == 0
            assert WEBHOOK_SECRET not in str(health) and "PRIVATE KEY" not in str(health)
            # Only what operators probe and scrape: no intake, pages or API on this port.
            for path in ("/", "/api/proposals", "/setup"):
                async with http.get(f"{worker.url}{path}") as response:
                    assert response.status == 404, path
            async with http.post(f"{worker.url}/api/github/webhooks", data=b"{}") as response:
                assert response.status in (404, 405)

            handled = {"event": "deployment_status", "outcome": "handled"}
            handled_before = samples_or_zero(await scrape(http, worker), "pinkflow_deliveries_total", **handled)
            delivery = payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=PREVIEW_ID, url=PREVIEW_URL)
            assert await web_app.send(http, delivery, secret=WEBHOOK_SECRET) == 202

            async def worker_counted() -> bool:
                text = await scrape(http, worker)
                return samples_or_zero(text, "pinkflow_deliveries_total", **handled) == handled_before + 1

            await eventually(worker_counted, message="the worker's /metrics counts the delivery it handled")

            async def worker_ran_its_effects() -> bool:
                text = await scrape(http, worker)
                return samples_or_zero(text, "pinkflow_effects_total", kind="sync_check_run", outcome="done") >= 1

            await eventually(worker_ran_its_effects, message="the worker's /metrics counts its effects")
            worker_text = await scrape(http, worker)
            assert sample(worker_text, "pinkflow_delivery_processing_seconds_count", event="deployment_status") >= 1
            assert sample(worker_text, "pinkflow_github_requests_total", method="POST", route="/repos/{owner}/{repo}/check-runs", status="201") >= 1
            assert sample(worker_text, "pinkflow_proposals", state="voting") == 1
            assert governance_runs(github_world)

            # The web process counts what it did (intake) and none of the worker's work.
            web_text = await scrape(http, web_app)
            assert sample(web_text, "pinkflow_deliveries_total", event="deployment_status", outcome="accepted") == 1
            for worker_only in ("pinkflow_delivery_processing_seconds_count", "pinkflow_effects_total"):
                assert not any(line.startswith(worker_only) for line in web_text.splitlines()), worker_only
            assert 'outcome="handled"' not in web_text

        # SIGTERM stops the worker and its server with it.
        assert await worker.stop(signal.SIGTERM) == 0
        assert await refuses_connections(f"{worker.url}/api/health")
    finally:
        await worker.stop()
        await web_app.stop()
    assert "serving health and metrics" in worker.log_text()


async def test_the_default_process_serves_health_and_metrics_on_its_one_port(tmp_path, github_world, app_private_key):
    env = app_env(f"sqlite+aiosqlite:///{tmp_path / 'pinkflow.db'}", github_world, app_private_key)
    metrics_port = free_port()
    app = AppProcess(env={**env, "METRICS_PORT": str(metrics_port)}, log_path=tmp_path / "app.log")
    await app.start()
    try:
        async with aiohttp.ClientSession() as http:
            delivery = payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=PREVIEW_ID, url=PREVIEW_URL)
            assert await app.send(http, delivery, secret=WEBHOOK_SECRET) == 202

            async def handled() -> bool:
                text = await scrape(http, app)
                return samples_or_zero(text, "pinkflow_deliveries_total", event="deployment_status", outcome="handled") == 1

            await eventually(handled, message="the delivery handled")
            text = await scrape(http, app)
            assert sample(text, "pinkflow_deliveries_total", event="deployment_status", outcome="accepted") == 1
        assert await refuses_connections(f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        assert await app.stop() == 0


def test_a_taken_metrics_port_stops_the_worker_with_one_line(tmp_path):
    import socket
    import subprocess
    import sys

    from tests.paths import REPO_ROOT

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, str(REPO_ROOT / "app.py"), "worker"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
            # Warnings only: the migration's info lines aside, stderr is what an operator is told.
            env={"PATH": "/usr/bin:/bin", "HOST": "127.0.0.1", "METRICS_PORT": str(port), "LOG_LEVEL": "warning"},
        )
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("cannot start: ") and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


async def test_a_worker_started_before_registration_takes_up_the_credentials_setup_writes(tmp_path, fake_github, app_private_key):
    import asyncio
    import sys

    from tests.paths import REPO_ROOT
    from tests.process import free_port

    log_path = tmp_path / "worker.log"
    env = {"PATH": "/usr/bin:/bin", "PORT": str(free_port()), "LOG_FORMAT": "text", "GITHUB_API_URL": fake_github.url}
    with log_path.open("ab") as log_file:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, str(REPO_ROOT / "app.py"), "worker", cwd=tmp_path, env=env, stdout=log_file, stderr=log_file
        )
    try:
        await asyncio.sleep(1.5)
        assert "waiting for the setup page to write them" in log_path.read_text()
        from pinkflow_bot.web.setup import write_env_file

        # What the setup page of a web process writes.
        write_env_file(tmp_path / ".env", {"APP_ID": "1", "PRIVATE_KEY": app_private_key, "WEBHOOK_SECRET": "s3cret"})
        for _ in range(100):
            if "credentials found: worker started" in log_path.read_text():
                break
            await asyncio.sleep(0.1)
        assert "credentials found: worker started" in log_path.read_text(), log_path.read_text()[-2000:]
    finally:
        worker.terminate()
        assert await asyncio.wait_for(worker.wait(), timeout=30) == 0


def test_asked_twice_to_stop_the_app_stops_at_once(monkeypatch):
    import asyncio

    import app as app_module

    exits: list[int] = []
    monkeypatch.setattr(app_module.os, "_exit", exits.append)
    stop = asyncio.Event()
    app_module._on_signal(stop)
    assert stop.is_set() and exits == []  # the first asks for a graceful stop
    app_module._on_signal(stop)
    assert exits == [130]
