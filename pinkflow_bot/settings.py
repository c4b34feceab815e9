"""Service configuration, read once from the environment and a `.env` file."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Mapping

from dotenv import dotenv_values

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///pinkflow.db"
DATABASE_URL_HINT = "sqlite+aiosqlite:///pinkflow.db or postgresql+asyncpg://user:password@host/db"
# Schemes platforms hand out (Heroku's `postgres://`, libpq's `postgresql://`) and the
# driver the App runs on for each.
_DATABASE_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
# What asyncpg takes from the URL's query as text; anything else (libpq's connect_timeout,
# channel_binding, sslrootcert...) would stop the App at its first connection.
_ASYNCPG_QUERY = frozenset(
    {"ssl", "target_session_attrs", "passfile", "service", "servicefile", "krbsrvname", "gsslib", "prepared_statement_cache_size"}
)
# Bare numbers of milliseconds under these are seconds written by mistake (`86400` for a
# day would be a vote of 86 seconds); shorter values are written with a unit.
_FEWEST_BARE_MILLISECONDS = {"DAO_VOTING_PERIOD": 3_600_000, "RATE_LIMIT_WINDOW": 60_000}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


class SettingsError(ValueError):
    """A setting has a value the service cannot run with."""


def parse_duration(text: str, *, bare_unit: str = "s") -> timedelta:
    """`24h`, `90m`, `30s`, `2d`; a bare number is read in `bare_unit`."""
    match = _DURATION.match(text)
    if not match:
        raise SettingsError(f"not a duration: {text!r} (use a number with s, m, h or d)")
    number, unit = match.groups()
    return timedelta(seconds=float(number) * _UNIT_SECONDS[(unit or bare_unit).lower()])


@dataclass(frozen=True)
class Settings:
    app_id: str | None = None
    private_key: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "0.0.0.0"
    port: int = 3000
    # `app.py worker` alone serves /metrics and /api/health here; None serves nothing.
    metrics_port: int | None = None
    public_url: str = "http://localhost:3000"
    github_api_url: str = "https://api.github.com"
    github_url: str = "https://github.com"
    log_level: str = "info"
    log_format: str = "json"
    rate_limit_window: timedelta = timedelta(minutes=15)
    rate_limit_max_requests: int = 100
    # Installation-wide governance defaults (the Pinkflow documents' names).
    approval_threshold: int = 75
    min_votes: int = 3
    voting_period: timedelta = timedelta(hours=24)
    auto_deployment: bool = False
    vercel_token: str | None = field(default=None, repr=False)
    vercel_team_id: str | None = None
    vercel_api_url: str = "https://api.vercel.com"
    # Signs promotion webhooks (the `webhook` provider), as WEBHOOK_SECRET signs GitHub's.
    promotion_webhook_secret: str | None = field(default=None, repr=False)
    sentry_dsn: str | None = field(default=None, repr=False)
    # Intake refuses bodies over this size; GitHub caps payloads at 25 MB.
    max_body_bytes: int = 25 * 1024 * 1024
    worker_concurrency: int = 4
    # Seconds before a call to GitHub counts as failed (and is retried).
    github_timeout: float = 30.0
    # Seconds the worker may take to finish what it holds after SIGTERM.
    shutdown_grace: float = 20.0
    # Whether preview health may GET a preview on this machine's loopback addresses.
    preview_health_allow_loopback: bool = False
    # Seconds a claimed delivery or effect stays with its worker; after a crash, another takes it then.
    worker_lease: float = 60.0
    # Reverse proxies in front of the App that each append the address they saw to
    # X-Forwarded-For; 0 believes no such header (a client can write anything in it).
    trusted_proxy_hops: int = 0
    env_file: Path | None = None

    @property
    def configured(self) -> bool:
        """True when the App can talk to GitHub; otherwise only the setup page is served."""
        return bool(self.app_id and self.private_key and self.webhook_secret)

    def secrets(self) -> tuple[str, ...]:
        """Values that must never reach a log line."""
        values = (self.private_key, self.webhook_secret, self.vercel_token, self.promotion_webhook_secret, self.sentry_dsn)
        return tuple(v for v in values if v)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, *, env_file: str | Path | None = ".env") -> "Settings":
        """The environment wins over `.env`, as with Probot and most twelve-factor tools."""
        values: dict[str, str] = {}
        path = Path(env_file) if env_file else None
        if path is not None and path.is_file():
            values.update({k: v for k, v in dotenv_values(path).items() if v is not None})
        values.update(os.environ if environ is None else environ)
        return cls.from_mapping(values, env_file=path)

    @classmethod
    def from_mapping(cls, values: Mapping[str, str], *, env_file: Path | None = None) -> "Settings":
        def get(name: str) -> str | None:
            value = values.get(name)
            return value if value not in (None, "") else None

        def duration(name: str, default: str, *, bare_unit: str = "s") -> timedelta:
            text = get(name) or default
            unit_word = "milliseconds" if bare_unit == "ms" else "seconds"
            try:
                value = parse_duration(text, bare_unit=bare_unit)
            except SettingsError:
                raise SettingsError(
                    f"{name} must be a duration such as 30s, 15m, 24h or 2d (a bare number is {unit_word}), not {text!r}"
                ) from None
            fewest = _FEWEST_BARE_MILLISECONDS.get(name, 0)
            if text.strip().isdigit() and 0 < int(text) < fewest:
                raise SettingsError(
                    f"{name}={text.strip()} would be {int(text) / 1000:g} seconds (a bare number is milliseconds): "
                    f"write {text.strip()}s for seconds, or a duration such as 15m or 24h"
                )
            return value

        port = _int(get("PORT") or "3000", "PORT")
        private_key = get("PRIVATE_KEY")
        if private_key is None and get("PRIVATE_KEY_PATH"):
            key_path = Path(get("PRIVATE_KEY_PATH"))
            try:
                private_key = key_path.read_text()
            except OSError as error:
                raise SettingsError(f"PRIVATE_KEY_PATH: cannot read {key_path}: {error.strerror}") from None
            except UnicodeDecodeError:
                raise SettingsError(f"PRIVATE_KEY_PATH: {key_path} is not a PEM file (text); GitHub's download is") from None
            if not _is_private_key(private_key):
                raise SettingsError(f"PRIVATE_KEY_PATH: {key_path} is not a PEM private key (the .pem file GitHub gave for the App)")
        if private_key is not None:
            private_key = private_key.replace("\\n", "\n").strip() + "\n"
        settings = cls(
            app_id=_app_id(get("APP_ID")),
            private_key=private_key,
            webhook_secret=get("WEBHOOK_SECRET"),
            database_url=database_url(get("DATABASE_URL") or DEFAULT_DATABASE_URL),
            host=get("HOST") or "0.0.0.0",
            port=port,
            metrics_port=_int(get("METRICS_PORT"), "METRICS_PORT") if get("METRICS_PORT") else None,
            public_url=_web_url(get("PUBLIC_URL") or f"http://localhost:{port}", "PUBLIC_URL"),
            github_api_url=_web_url(get("GITHUB_API_URL") or "https://api.github.com", "GITHUB_API_URL"),
            github_url=_web_url(get("GITHUB_URL") or "https://github.com", "GITHUB_URL"),
            log_level=(get("LOG_LEVEL") or "info").lower(),
            log_format=(get("LOG_FORMAT") or "json").lower(),
            rate_limit_window=duration("RATE_LIMIT_WINDOW", "900000", bare_unit="ms"),
            rate_limit_max_requests=_int(get("RATE_LIMIT_MAX_REQUESTS") or "100", "RATE_LIMIT_MAX_REQUESTS"),
            approval_threshold=_int(get("DAO_APPROVAL_THRESHOLD") or "75", "DAO_APPROVAL_THRESHOLD"),
            min_votes=_int(get("DAO_MIN_VOTES") or "3", "DAO_MIN_VOTES"),
            voting_period=duration("DAO_VOTING_PERIOD", "86400000", bare_unit="ms"),
            auto_deployment=_bool(get("ENABLE_AUTO_DEPLOYMENT") or "false", "ENABLE_AUTO_DEPLOYMENT"),
            vercel_token=get("VERCEL_TOKEN"),
            vercel_team_id=get("VERCEL_TEAM_ID"),
            vercel_api_url=_web_url(get("VERCEL_API_URL") or "https://api.vercel.com", "VERCEL_API_URL"),
            promotion_webhook_secret=get("PROMOTION_WEBHOOK_SECRET"),
            sentry_dsn=get("SENTRY_DSN"),
            max_body_bytes=_int(get("MAX_BODY_BYTES") or str(25 * 1024 * 1024), "MAX_BODY_BYTES"),
            worker_concurrency=_int(get("WORKER_CONCURRENCY") or "4", "WORKER_CONCURRENCY"),
            github_timeout=duration("GITHUB_TIMEOUT", "30").total_seconds(),
            shutdown_grace=duration("SHUTDOWN_GRACE", "20").total_seconds(),
            worker_lease=duration("WORKER_LEASE", "60").total_seconds(),
            preview_health_allow_loopback=_bool(
                get("PREVIEW_HEALTH_ALLOW_LOOPBACK") or "false", "PREVIEW_HEALTH_ALLOW_LOOPBACK"
            ),
            trusted_proxy_hops=_int(get("TRUSTED_PROXY_HOPS") or "0", "TRUSTED_PROXY_HOPS"),
            env_file=env_file,
        )
        settings._check_governance_defaults()
        return settings

    def _check_governance_defaults(self) -> None:
        if not 0 <= self.approval_threshold <= 100:
            raise SettingsError("DAO_APPROVAL_THRESHOLD must be a percentage from 0 to 100")
        if self.min_votes < 1:
            raise SettingsError("DAO_MIN_VOTES must be at least 1")
        if self.voting_period <= timedelta(0):
            raise SettingsError("DAO_VOTING_PERIOD must be longer than zero")
        if not 1 <= self.port <= 65535:
            raise SettingsError("PORT must be from 1 to 65535")
        if self.metrics_port is not None and not 1 <= self.metrics_port <= 65535:
            raise SettingsError("METRICS_PORT must be from 1 to 65535")
        if not 0 <= self.trusted_proxy_hops <= 10:
            raise SettingsError("TRUSTED_PROXY_HOPS must be from 0 to 10")
        if self.worker_concurrency < 1:
            raise SettingsError("WORKER_CONCURRENCY must be at least 1")
        if self.rate_limit_max_requests < 1:
            raise SettingsError("RATE_LIMIT_MAX_REQUESTS must be at least 1")
        if self.worker_lease <= 0:
            raise SettingsError("WORKER_LEASE must be longer than zero")
        if self.github_timeout <= 0:
            raise SettingsError("GITHUB_TIMEOUT must be longer than zero")
        if self.log_level not in LOG_LEVELS:
            raise SettingsError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}")
        if self.log_format not in LOG_FORMATS:
            raise SettingsError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {self.log_format!r}")
        if self.sentry_dsn is not None:
            _check_sentry_dsn(self.sentry_dsn)
        if self.private_key is not None and not _is_private_key(self.private_key):
            # Found at start, not when the first token is signed and every delivery then fails.
            raise SettingsError("PRIVATE_KEY is not a PEM private key (paste the .pem GitHub gave, with \\n for line breaks)")


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("json", "text")


def _check_sentry_dsn(dsn: str) -> None:
    """Refused at start, in one line that does not repeat the DSN (it holds a key)."""
    from sentry_sdk.utils import BadDsn, Dsn

    try:
        Dsn(dsn)
    except BadDsn as error:
        raise SettingsError(f"SENTRY_DSN is not a Sentry DSN such as https://KEY@o1.ingest.sentry.io/2 ({error})") from None


def _is_private_key(pem: str) -> bool:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        return False
    return True


def database_url(url: str) -> str:
    """The URL the App connects with: Heroku's `postgres://` and a bare `postgresql://` run
    on asyncpg, libpq's `sslmode` becomes asyncpg's `ssl`; any other scheme, or a query
    option asyncpg does not take, is refused here, saying what to write, rather than
    failing to load a driver or to connect later."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url.strip())
    except (ArgumentError, ValueError):
        raise SettingsError(f"DATABASE_URL is not a database URL; write {DATABASE_URL_HINT}") from None
    driver = _DATABASE_DRIVERS.get(parsed.drivername.lower())
    if driver is None:
        raise SettingsError(
            f"DATABASE_URL: the App does not run on {parsed.drivername!r}; write {DATABASE_URL_HINT}"
        )
    changed = parsed.set(drivername=driver)
    if driver == "postgresql+asyncpg" and parsed.query:
        query = dict(parsed.query)
        if "sslmode" in query:
            query.setdefault("ssl", query.pop("sslmode"))
        unknown = sorted(set(query) - _ASYNCPG_QUERY)
        if unknown:
            raise SettingsError(
                f"DATABASE_URL: PostgreSQL's driver (asyncpg) does not take {', '.join(unknown)}; "
                f"remove {'it' if len(unknown) == 1 else 'them'} from the URL (sslmode is read as asyncpg's ssl)"
            )
        changed = changed.set(query=query)
    if changed == parsed:
        return url.strip()
    return changed.render_as_string(hide_password=False)


def _app_id(text: str | None) -> str | None:
    """The App's id (a number) or its client ID (`Iv...`): GitHub takes either as a token's issuer."""
    if text is None:
        return None
    value = text.strip()
    if not re.fullmatch(r"\d+|Iv[0-9A-Za-z.]+", value):
        raise SettingsError(
            f"APP_ID must be the App's id, the number on its settings page on GitHub (or its client ID, Iv...), not {value!r}"
        )
    return value


def _web_url(text: str, name: str) -> str:
    url = text.strip().rstrip("/")
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in ("http", "https") or not rest or rest.startswith("/"):
        raise SettingsError(f"{name} must start with https:// (or http://) and name a host, not {text!r}")
    return url


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {text!r}") from None


def _bool(text: str, name: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, not {text!r}")
