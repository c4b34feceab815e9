"""Registration through GitHub's manifest flow, against the fake GitHub, in process."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from dotenv import dotenv_values
from sqlalchemy import select

from pinkflow_bot.runtime import Runtime
from pinkflow_bot.settings import Settings
from pinkflow_bot.storage.models import Delivery
from pinkflow_bot.web.app import create_app
from tests import payloads

PUBLIC_URL = "http://pinkflow.test"
MANIFEST_FILE = Path(__file__).resolve().parents[1] / "app-manifest.yml"


class Forms(HTMLParser):
    """The forms of a page: action, method and named inputs."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attributes.get("action"), "method": attributes.get("method"), "inputs": {}})
        elif tag == "input" and self.forms and attributes.get("name"):
            self.forms[-1]["inputs"][attributes["name"]] = attributes.get("value")

    def posting(self) -> dict:
        [form] = [f for f in self.forms if f["method"] == "post"]
        return form


@pytest.fixture
def env_file(tmp_path) -> Path:
    return tmp_path / "app" / ".env"


@pytest.fixture
async def unregistered(tmp_path, fake_github, env_file):
    """The App as `python app.py` starts it with no credentials."""
    env_file.parent.mkdir()
    settings = Settings.from_mapping(
        {
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'pinkflow.db'}",
            "GITHUB_API_URL": fake_github.url,
            "GITHUB_URL": fake_github.web_url,
            "PUBLIC_URL": PUBLIC_URL,
            "LOG_FORMAT": "text",
        },
        env_file=env_file,
    )
    runtime = await Runtime.create(settings)
    client = TestClient(TestServer(create_app(runtime)))
    await client.start_server()
    try:
        yield client, runtime
    finally:
        await client.close()
        await runtime.close()


async def start_registration(client, **query) -> tuple[dict, str]:
    """Opens the setup page; its posting form and the state cookie it set."""
    response = await client.get("/setup", params=query)
    assert response.status == 200, await response.text()
    form = Forms(await response.text()).posting()
    return form, response.cookies["pinkflow_setup_state"].value


def state_of(form: dict) -> str:
    [state] = parse_qs(urlsplit(form["action"]).query)["state"]
    return state


async def test_the_setup_page_explains_the_app_and_posts_its_manifest_to_github(unregistered, fake_github):
    client, _ = unregistered
    response = await client.get("/")
    page = await response.text()
    assert response.status == 200
    assert "<h1>Set up pinkflow-bot</h1>" in page
    assert "weighted vote" in page and "APP_ID" in page

    response = await client.get("/setup")
    form = Forms(await response.text()).posting()
    state = state_of(form)
    assert form["action"] == f"{fake_github.web_url}/settings/apps/new?state={state}"
    assert len(state) >= 32
    cookie = response.cookies["pinkflow_setup_state"]
    assert cookie.value == state
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/setup"

    manifest = json.loads(form["inputs"]["manifest"])
    declared = yaml.safe_load(MANIFEST_FILE.read_text())
    assert manifest["hook_attributes"] == {"url": f"{PUBLIC_URL}/api/github/webhooks", "active": True}
    assert manifest["redirect_url"] == f"{PUBLIC_URL}/setup/callback"
    assert manifest["default_events"] == declared["default_events"]
    assert manifest["default_permissions"] == declared["default_permissions"]
    assert "${PUBLIC_URL}" not in form["inputs"]["manifest"]
    # Every page load starts its own registration.
    again, _ = await start_registration(client)
    assert state_of(again) != state


async def test_an_organisation_registers_the_app_on_its_own_settings_page(unregistered, fake_github):
    client, _ = unregistered
    form, _ = await start_registration(client, organization="octo-org")
    assert form["action"].startswith(f"{fake_github.web_url}/organizations/octo-org/settings/apps/new?state=")

    response = await client.get("/setup", params={"organization": "../../evil"})
    assert response.status == 400
    page = await response.text()
    assert "not a GitHub organisation name" in page
    assert Forms(page).posting()["action"].startswith(f"{fake_github.web_url}/settings/apps/new?state=")


async def test_the_callback_stores_the_credentials_and_the_app_starts_working(
    unregistered, fake_github, env_file, app_private_key, caplog
):
    client, runtime = unregistered
    caplog.set_level(logging.DEBUG)
    env_file.write_text('DATABASE_URL=sqlite+aiosqlite:///elsewhere.db\n# kept as it is\nAPP_ID=stale\nLOG_LEVEL=debug\n')
    env_file.chmod(0o644)
    form, _ = await start_registration(client)
    credentials = fake_github.add_manifest_code("a1b2c3", pem=app_private_key)

    response = await client.get(
        "/setup/callback", params={"code": "a1b2c3", "state": state_of(form)}, allow_redirects=False
    )
    assert response.status == 302, await response.text()
    assert response.headers["Location"] == f"{credentials['html_url']}/installations/new"

    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    text = env_file.read_text()
    assert "DATABASE_URL=sqlite+aiosqlite:///elsewhere.db\n# kept as it is\n" in text
    assert "LOG_LEVEL=debug" in text and "stale" not in text
    assert "\\n" in text.split("PRIVATE_KEY=", 1)[1].splitlines()[0]  # the key stays on one line
    stored = dotenv_values(env_file)
    assert stored["APP_ID"] == str(credentials["id"])
    assert stored["WEBHOOK_SECRET"] == credentials["webhook_secret"]
    assert stored["GITHUB_CLIENT_ID"] == credentials["client_id"]
    assert stored["GITHUB_CLIENT_SECRET"] == credentials["client_secret"]
    reloaded = Settings.load({}, env_file=env_file)
    assert reloaded.configured and reloaded.private_key == app_private_key.strip() + "\n"
    assert list(env_file.parent.iterdir()) == [env_file]  # no temporary file left behind

    # Taken up at once: the worker runs and signed deliveries are accepted and handled.
    health = await (await client.get("/api/health")).json()
    assert health["worker"] == "running"
    fake_github.add_installation(1, "octo-org")
    fake_github.add_repo("octo-org/shop", installation_id=1)
    fake_github.add_pull("octo-org/shop", 3, head_sha="a" * 40, author="alice")
    delivery = payloads.pull_request("opened", repo="octo-org/shop", number=3, head_sha="a" * 40, author="alice")
    body = delivery.body()
    refused = await client.post(
        "/api/github/webhooks", data=body, headers=delivery.headers("not-the-secret", body)
    )
    assert refused.status == 401
    accepted = await client.post(
        "/api/github/webhooks", data=body, headers=delivery.headers(credentials["webhook_secret"], body)
    )
    assert accepted.status == 202
    await eventually_handled(runtime, delivery.delivery_id)

    page = await (await client.get("/setup")).text()
    assert "pinkflow-bot is set up" in page and 'href="/"' in page and "<form" not in page
    dashboard = await client.get("/")
    assert "<h1>Recent proposals</h1>" in await dashboard.text()

    # The same link again is refused: a registration code and its state are good once.
    replay = await client.get("/setup/callback", params={"code": "a1b2c3", "state": state_of(form)})
    assert replay.status == 400
    assert "not valid" in await replay.text()

    for secret in (credentials["webhook_secret"], credentials["client_secret"], app_private_key.splitlines()[1]):
        assert secret not in caplog.text
        assert secret not in page


async def test_a_web_process_set_up_while_running_accepts_deliveries_and_leaves_them_to_the_workers(
    tmp_path, fake_github, env_file, app_private_key
):
    """`app.py web` takes the credentials up at once, but handling is the `worker` processes' job."""
    env_file.parent.mkdir()
    settings = Settings.from_mapping(
        {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'pinkflow.db'}", "GITHUB_API_URL": fake_github.url,
         "GITHUB_URL": fake_github.web_url, "PUBLIC_URL": PUBLIC_URL, "LOG_FORMAT": "text"},
        env_file=env_file,
    )
    runtime = await Runtime.create(settings, with_worker=False)
    client = TestClient(TestServer(create_app(runtime)))
    await client.start_server()
    try:
        form, _ = await start_registration(client)
        credentials = fake_github.add_manifest_code("w1", pem=app_private_key)
        response = await client.get("/setup/callback", params={"code": "w1", "state": state_of(form)}, allow_redirects=False)
        assert response.status == 302, await response.text()

        health = await client.get("/api/health")
        assert (await health.json())["worker"] == "not in this process"
        delivery = payloads.pull_request("opened", repo="octo-org/shop", number=3, head_sha="a" * 40, author="alice")
        body = delivery.body()
        accepted = await client.post(
            "/api/github/webhooks", data=body, headers=delivery.headers(credentials["webhook_secret"], body)
        )
        assert accepted.status == 202
        await asyncio.sleep(0.3)
        async with runtime.sessions() as session:
            status = await session.scalar(select(Delivery.status).where(Delivery.delivery_id == delivery.delivery_id))
        assert status == "pending"  # waiting for a worker process, not handled here
    finally:
        await client.close()
        await runtime.close()


async def eventually_handled(runtime: Runtime, delivery_id: str, *, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.05)):
        async with runtime.sessions() as session:
            status = await session.scalar(select(Delivery.status).where(Delivery.delivery_id == delivery_id))
        if status == "done":
            return
        await asyncio.sleep(0.05)
    async with runtime.sessions() as session:
        error = await session.scalar(select(Delivery.error).where(Delivery.delivery_id == delivery_id))
    raise AssertionError(f"delivery {delivery_id} not handled by the worker (status {status}: {error})")


@pytest.mark.parametrize(
    "case",
    ["unknown state", "state of another browser", "no cookie", "no code", "code GitHub refuses"],
)
async def test_a_callback_that_cannot_be_trusted_or_finished_answers_400_and_changes_nothing(
    unregistered, fake_github, env_file, case
):
    client, runtime = unregistered
    form, _ = await start_registration(client)
    state = state_of(form)
    fake_github.add_manifest_code("good-code")
    params = {"code": "good-code", "state": state}
    if case == "unknown state":
        params["state"] = "made-up-state"
    elif case == "state of another browser":
        other, _ = await start_registration(client)  # the cookie now holds the other state
    elif case == "no cookie":
        client.session.cookie_jar.clear()
    elif case == "no code":
        del params["code"]
    elif case == "code GitHub refuses":
        params["code"] = "expired-code"

    response = await client.get("/setup/callback", params=params, allow_redirects=False)
    page = await response.text()
    assert response.status == 400, page
    assert response.content_type == "text/html"
    assert "<h1>" in page and "Traceback" not in page
    assert 'href="/setup"' in page
    assert not env_file.exists()
    assert not runtime.settings.configured
    if case == "code GitHub refuses":
        assert "GitHub did not accept" in page
        assert [c.status for c in fake_github.calls_for("apps/create-from-manifest")] == [404]
    else:
        assert fake_github.calls_for("apps/create-from-manifest") == []


async def test_an_existing_env_file_gets_mode_0600_even_when_it_was_readable(unregistered, fake_github, env_file):
    client, _ = unregistered
    env_file.write_text("PORT=3000\n")
    env_file.chmod(0o666)
    form, _ = await start_registration(client)
    fake_github.add_manifest_code("c0de")
    response = await client.get("/setup/callback", params={"code": "c0de", "state": state_of(form)}, allow_redirects=False)
    assert response.status == 302
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert env_file.read_text().startswith("PORT=3000\n")


async def test_once_another_process_registered_the_setup_flow_is_closed_here_too(unregistered, fake_github, env_file):
    """Two web processes share one .env: a registration finished through the other one
    closes this one's setup page and callback, so nobody can overwrite the credentials."""
    client, runtime = unregistered
    form, _ = await start_registration(client)  # started here before the other process finished
    written = {"APP_ID": "777", "PRIVATE_KEY": "kept", "WEBHOOK_SECRET": "kept"}
    env_file.write_text("".join(f'{key}="{value}"\n' for key, value in written.items()))  # by the other process
    page = await client.get("/setup")
    text = await page.text()
    assert "Set up pinkflow-bot" not in text
    # This process has no credentials to ask GitHub with: it says where to install the App from.
    assert "App None" not in text and "Install App" in text and f"{fake_github.web_url}/settings/apps" in text
    fake_github.add_manifest_code("stranger-code")
    response = await client.get("/setup/callback", params={"code": "stranger-code", "state": state_of(form)}, allow_redirects=False)
    assert response.status == 400
    assert "already set up" in await response.text()
    assert dotenv_values(env_file) == written
    assert fake_github.calls_for("apps/create-from-manifest") == []
    assert not runtime.settings.configured


class Links(HTMLParser):
    """The links of a page: (href, text)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._href, self._text = dict(attrs).get("href"), []

    def handle_data(self, data):
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "a" and self._href is not None:
            self.links.append((self._href, " ".join("".join(self._text).split())))
            self._href = None


async def register(client, fake_github, app_private_key) -> None:
    form, _ = await start_registration(client)
    fake_github.add_manifest_code("c0de", pem=app_private_key)
    response = await client.get("/setup/callback", params={"code": "c0de", "state": state_of(form)}, allow_redirects=False)
    assert response.status == 302, await response.text()


@pytest.mark.parametrize(
    "app_page",
    [
        pytest.param(None, id="github.com"),
        pytest.param("https://ghe.example.com/github-apps/pinkflow-bot", id="enterprise-server"),
    ],
)
async def test_once_registered_the_setup_page_links_to_installing_the_app(
    unregistered, fake_github, app_private_key, app_page
):
    client, _ = unregistered
    if app_page is not None:
        fake_github.app["html_url"] = app_page  # as GitHub Enterprise Server answers GET /app
    await register(client, fake_github, app_private_key)
    expected = f"{app_page or 'https://github.com/apps/pinkflow-bot'}/installations/new"
    for _ in range(2):
        response = await client.get("/setup")
        assert response.status == 200
        assert (expected, "Install pinkflow-bot on repositories") in Links(await response.text()).links
    # GitHub is asked once where the App's page is; the answer is kept.
    assert len(fake_github.calls_for("apps/get-authenticated")) == 1


async def test_when_github_does_not_say_where_the_app_is_the_setup_page_says_where_to_find_it(
    unregistered, fake_github, app_private_key
):
    client, _ = unregistered
    await register(client, fake_github, app_private_key)
    fake_github.fail("apps/get-authenticated", status=503, times=100)
    response = await client.get("/setup")
    page = await response.text()
    assert response.status == 200, page
    assert "pinkflow-bot is set up" in page
    assert "could not be asked for this App's page" in page and "Install App" in page
    assert (f"{fake_github.web_url}/settings/apps", "your GitHub Apps settings") in Links(page).links
    assert not any(href.endswith("/installations/new") for href, _ in Links(page).links)


class Browser:
    """Another browser on the same server: its own cookies."""

    def __init__(self, client: TestClient) -> None:
        self._client = client
        self.session = aiohttp.ClientSession()

    async def get(self, path: str, **kwargs):
        return await self.session.get(self._client.make_url(path), **kwargs)


async def test_two_callbacks_at_once_register_one_app(unregistered, fake_github, env_file):
    client, runtime = unregistered
    first, _ = await start_registration(client)
    other = Browser(client)
    try:
        page = await other.get("/setup")
        second = Forms(await page.text()).posting()
        fake_github.add_manifest_code("code-one")
        fake_github.add_manifest_code("code-two")
        answers = await asyncio.gather(
            client.get("/setup/callback", params={"code": "code-one", "state": state_of(first)}, allow_redirects=False),
            other.get("/setup/callback", params={"code": "code-two", "state": state_of(second)}, allow_redirects=False),
        )
        assert sorted(answer.status for answer in answers) == [302, 400]
        assert len(fake_github.calls_for("apps/create-from-manifest")) == 1
        assert dotenv_values(env_file)["APP_ID"] == runtime.settings.app_id
    finally:
        await other.session.close()


async def test_reloading_the_setup_page_many_times_does_not_cancel_someone_elses_registration(unregistered, fake_github):
    client, _ = unregistered
    form, _ = await start_registration(client)
    stranger = Browser(client)
    try:
        for _ in range(300):
            assert (await stranger.get("/setup")).status == 200
    finally:
        await stranger.session.close()
    fake_github.add_manifest_code("c0de")
    response = await client.get("/setup/callback", params={"code": "c0de", "state": state_of(form)}, allow_redirects=False)
    assert response.status == 302


async def test_a_state_works_once_and_not_after_it_expires():
    from pinkflow_bot.web.setup import PendingStates

    now = [1_000_000.0]
    states = PendingStates(lifetime=60, clock=lambda: now[0])
    state = states.issue()
    assert states.redeem(state) and not states.redeem(state)
    later = states.issue()
    now[0] += 61
    assert not states.redeem(later)
    forged = later.rsplit(".", 2)[0] + f".{int(now[0]) + 600}." + later.rsplit(".", 1)[1]
    assert not states.redeem(forged)  # a later expiry written in does not match the signature
    assert not PendingStates().redeem(states.issue())  # another process's key
