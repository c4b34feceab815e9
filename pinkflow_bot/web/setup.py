"""Registration through GitHub's App manifest flow (DESIGN section 7).

`/setup` posts `app-manifest.yml` to GitHub's "create an App from a manifest" page.
GitHub sends the person back to `/setup/callback` with a one-time code, which we
exchange for the App's credentials, write to `.env` and take up at once.

The `state` parameter ties the callback to the page that started it: it is random,
remembered here for a while and in a cookie, and good for one callback only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import time
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import gidgethub
import gidgethub.aiohttp
import yaml
from aiohttp import web
from dotenv import dotenv_values

from ..logs import register_secrets
from ..settings import Settings
from .keys import RUNTIME
from .pages import error_page, render

log = logging.getLogger(__name__)

MANIFEST_PATH = Path(__file__).resolve().parents[2] / "app-manifest.yml"
STATE_COOKIE = "pinkflow_setup_state"
# GitHub's code lives an hour; a registration that takes longer starts again.
STATE_LIFETIME_SECONDS = 3600
MAX_PENDING_STATES = 4096
_ORGANIZATION = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
_CODE = re.compile(r"[A-Za-z0-9_-]{1,200}")
API_VERSION = "2022-11-28"


class PendingStates:
    """States handed out by the setup page: signed with a key of this process and carrying
    their expiry, so that nothing is kept per page view (reloading the page many times
    pushes nobody else's registration out), and good for one callback only."""

    def __init__(
        self, *, lifetime: float = STATE_LIFETIME_SECONDS, capacity: int = MAX_PENDING_STATES, clock=time.time
    ) -> None:
        self._lifetime = lifetime
        self._clock = clock
        self._key = secrets.token_bytes(32)
        # Redeemed states, until they would have expired anyway; the oldest go first when full.
        self._redeemed: OrderedDict[str, float] = OrderedDict()
        self._capacity = capacity

    def issue(self) -> str:
        expires = int(self._clock() + self._lifetime)
        body = f"{secrets.token_urlsafe(18)}.{expires}"
        return f"{body}.{self._sign(body)}"

    def redeem(self, state: str) -> bool:
        """True once for a state issued here that has not expired."""
        body, _, signature = state.rpartition(".")
        _, _, expires = body.rpartition(".")
        if not body or not expires.isdigit() or not hmac.compare_digest(self._sign(body).encode(), signature.encode()):
            return False
        now = self._clock()
        if now >= int(expires) or state in self._redeemed:
            return False
        for old in [s for s, until in self._redeemed.items() if until <= now]:
            del self._redeemed[old]
        while len(self._redeemed) >= self._capacity:
            self._redeemed.popitem(last=False)
        self._redeemed[state] = int(expires)
        return True

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:32]


PENDING_STATES = web.AppKey("setup_pending_states", PendingStates)
REGISTRATION_LOCK = web.AppKey("setup_registration_lock", asyncio.Lock)


# --- The manifest -------------------------------------------------------------------


def _fill_in(value: Any, public_url: str) -> Any:
    if isinstance(value, str):
        return value.replace("${PUBLIC_URL}", public_url)
    if isinstance(value, list):
        return [_fill_in(item, public_url) for item in value]
    if isinstance(value, dict):
        return {key: _fill_in(item, public_url) for key, item in value.items()}
    return value


def app_manifest(settings: Settings, *, path: Path = MANIFEST_PATH) -> dict[str, Any]:
    """`app-manifest.yml` with this server's public address filled in."""
    return _fill_in(yaml.safe_load(path.read_text()), settings.public_url)


def _address_kind(host: str | None) -> str | None:
    """"loopback" for this machine's own names and addresses, "private" for a private
    network's addresses, None for any other host."""
    host = (host or "").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return "loopback"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.is_loopback or address.is_unspecified:
        return "loopback"
    return "private" if address.is_private or address.is_link_local else None


def unreachable_public_url(settings: Settings) -> str | None:
    """Why GitHub could not send webhooks to `PUBLIC_URL` (GitHub refuses such a webhook
    URL when the App is registered), or None when it may."""
    here = _address_kind(urlsplit(settings.public_url).hostname)
    github = _address_kind(urlsplit(settings.github_url).hostname)
    if here == "loopback" and github != "loopback":
        return "that is this machine's own address"
    # A GitHub Enterprise Server may well be on the same private network; github.com is not.
    if here == "private" and urlsplit(settings.github_url).hostname == "github.com":
        return "that is an address on a private network"
    return None


def registration_url(settings: Settings, *, organization: str | None, state: str) -> str:
    if organization:
        return f"{settings.github_url}/organizations/{quote(organization)}/settings/apps/new?state={quote(state)}"
    return f"{settings.github_url}/settings/apps/new?state={quote(state)}"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def env_file_path(settings: Settings) -> Path:
    return settings.env_file if settings.env_file is not None else Path(".env")


def registered(settings: Settings) -> bool:
    """Whether this process, or another one sharing its `.env` file, has App credentials:
    after one registration the setup flow is closed to everyone, whichever process serves it."""
    if settings.configured:
        return True
    path = env_file_path(settings)
    try:
        stored = dotenv_values(path) if path.exists() else {}
    except (OSError, UnicodeDecodeError):
        return False
    has = lambda *names: any((stored.get(name) or "").strip() for name in names)  # noqa: E731
    return has("APP_ID") and has("WEBHOOK_SECRET") and has("PRIVATE_KEY", "PRIVATE_KEY_PATH")


@contextlib.asynccontextmanager
async def _registration_lock(path: Path, *, wait_seconds: float = 60.0) -> AsyncIterator[str | None]:
    """One registration at a time for every process writing this `.env` file. Yields None
    when it holds the lock, else why not."""
    folder = path.parent.resolve()
    try:
        # The folder holding the file is what is locked: no lock file is left beside `.env`.
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError as error:
        log.error("could not lock %s for the registration: %s", folder, error.strerror)
        yield f"The folder of {path.name} could not be opened; check its permissions."
        return
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    yield "Another registration is under way; try the link again in a minute."
                    return
                await asyncio.sleep(0.1)  # never blocking the event loop while another process registers
        yield None
    finally:
        os.close(descriptor)  # closing releases the lock


# --- The .env file ------------------------------------------------------------------


def _env_quote(value: str) -> str:
    """A double-quoted `.env` value on one line; python-dotenv reads the escapes back."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "\\n")
    return f'"{escaped}"'


def _line_key(line: str) -> str | None:
    stripped = line.strip()
    if not stripped or stripped.startswith("#") or "=" not in stripped:
        return None
    key = stripped.split("=", 1)[0].strip()
    return key.removeprefix("export ").strip()


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """Sets `values` in the `.env` file at `path`, keeping every other line.

    The new content is written to a private temporary file and moved into place, so
    the file is never seen half-written and never readable by others, even briefly.
    """
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [line for line in lines if _line_key(line) not in values]
    kept += [f"{key}={_env_quote(value)}" for key, value in values.items()]
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write("\n".join(kept) + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)  # whatever the umask did
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# --- GitHub -------------------------------------------------------------------------


class RegistrationRefused(Exception):
    """GitHub did not hand out credentials for the code."""


async def exchange_code(settings: Settings, *, code: str) -> dict[str, Any]:
    """`POST /app-manifests/{code}/conversions`: the new App's id, key and secrets. Needs no credentials."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        github = gidgethub.aiohttp.GitHubAPI(http, "pinkflow-bot", base_url=settings.github_api_url)
        try:
            answer = await github.post(
                "/app-manifests/{code}/conversions",
                {"code": code},
                data=b"",
                extra_headers={"X-GitHub-Api-Version": API_VERSION},
            )
        except gidgethub.BadRequest as error:
            raise RegistrationRefused(f"GitHub answered {error.status_code.value}") from None
    if not isinstance(answer, dict) or not answer.get("id") or not answer.get("pem"):
        raise RegistrationRefused("GitHub's answer has no App id or key")
    if not answer.get("webhook_secret"):
        raise RegistrationRefused("GitHub's answer has no webhook secret")
    return answer


# --- Routes -------------------------------------------------------------------------


async def setup_page(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    settings = runtime.settings
    if registered(settings):
        # Without credentials here (another process registered the App), GitHub cannot be asked.
        app_page = await runtime.github.app_page() if runtime.github is not None else None
        return render(
            "setup.html",
            title="pinkflow-bot is set up",
            configured=True,
            app_id=settings.app_id,
            install_url=f"{app_page}/installations/new" if app_page else None,
            apps_settings_url=f"{settings.github_url}/settings/apps",
        )

    organization = request.query.get("organization", "").strip()
    error = None
    status = 200
    if organization and not _ORGANIZATION.fullmatch(organization):
        error = "That is not a GitHub organisation name: use letters, digits and hyphens, up to 39 characters."
        organization, status = "", 400
    state = request.app[PENDING_STATES].issue()
    manifest = app_manifest(settings)
    action_url = registration_url(settings, organization=organization or None, state=state)
    response = render(
        "setup.html",
        status=status,
        title="Set up pinkflow-bot",
        configured=False,
        error=error,
        organization=organization,
        manifest=manifest,
        manifest_json=json.dumps(manifest),
        action_url=action_url,
        # Only the name: the page is public until the App is registered.
        env_file=env_file_path(settings).name,
        public_url=settings.public_url,
        unreachable=unreachable_public_url(settings),
        form_targets=(_origin(settings.github_url),),
        private=True,
    )
    response.set_cookie(
        STATE_COOKIE,
        state,
        max_age=STATE_LIFETIME_SECONDS,
        path="/setup",
        httponly=True,
        samesite="Lax",
        secure=settings.public_url.startswith("https://"),
    )
    return response


def _refused(title: str, message: str) -> web.Response:
    response = error_page(400, title, message, back_href="/setup", back_label="Start the registration again")
    response.del_cookie(STATE_COOKIE, path="/setup")
    return response


async def setup_callback(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    state = request.query.get("state", "")
    code = request.query.get("code", "")
    cookie = request.cookies.get(STATE_COOKIE, "")
    # Checked first and used up whatever happens next: a state works for one callback only.
    state_known = bool(state) and request.app[PENDING_STATES].redeem(state)
    if not state_known or not secrets.compare_digest(state.encode(), cookie.encode()):
        return _refused(
            "This registration link is not valid",
            "The link GitHub sent you back with does not belong to a registration started from this browser, "
            "has expired, or was already used. Nothing was changed.",
        )
    if not _CODE.fullmatch(code):
        return _refused("GitHub sent no registration code", "The link has no code to finish the registration with.")
    path = env_file_path(runtime.settings)
    # Held from the check to the write, in this process and across the processes sharing
    # the file: a second callback finds the first one's credentials and stops.
    async with request.app[REGISTRATION_LOCK], _registration_lock(path) as problem:
        if problem is not None:
            return error_page(503, "The registration could not start", problem)
        return await _register(runtime, code=code, path=path)


async def _register(runtime, *, code: str, path: Path) -> web.Response:
    if registered(runtime.settings):
        return _refused("pinkflow-bot is already set up", "This server already has GitHub App credentials.")
    try:
        credentials = await exchange_code(runtime.settings, code=code)
    except RegistrationRefused as refusal:
        log.warning("GitHub refused the registration code: %s", refusal)
        return _refused(
            "GitHub did not accept the registration",
            "GitHub refused the code it sent back; codes are good for one hour and one use. Start again.",
        )
    except (aiohttp.ClientError, gidgethub.GitHubBroken, TimeoutError):
        log.warning("could not reach GitHub to finish the registration", exc_info=True)
        return error_page(502, "GitHub could not be reached", "Try the link again in a moment.")

    app_id = str(credentials["id"])
    pem = credentials["pem"].strip() + "\n"
    values = {
        "APP_ID": app_id,
        "PRIVATE_KEY": pem,
        "WEBHOOK_SECRET": credentials["webhook_secret"],
        "GITHUB_CLIENT_ID": str(credentials.get("client_id") or ""),
        "GITHUB_CLIENT_SECRET": str(credentials.get("client_secret") or ""),
    }
    register_secrets(pem, values["WEBHOOK_SECRET"], values["GITHUB_CLIENT_SECRET"])
    try:
        write_env_file(path, values)
    except OSError as error:
        log.error("could not write the credentials to %s: %s", path, error.strerror)
        return error_page(
            500,
            "The credentials could not be saved",
            f"GitHub registered the App (id {app_id}), but {path} could not be written. "
            "Fix the folder's permissions, then delete the App on GitHub and register again.",
        )
    settings = dataclasses.replace(
        runtime.settings, app_id=app_id, private_key=pem, webhook_secret=values["WEBHOOK_SECRET"]
    )
    await runtime.apply_credentials(settings)
    log.info("GitHub App registered", extra={"app_id": app_id, "app_slug": credentials.get("slug"), "env_file": str(path)})

    install_url = f"{str(credentials.get('html_url') or '').rstrip('/')}/installations/new"
    response = web.HTTPFound(install_url if install_url.startswith(("https://", "http://")) else "/setup")
    response.del_cookie(STATE_COOKIE, path="/setup")
    raise response
