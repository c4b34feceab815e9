"""Settings: read once, from the environment and `.env`, with clear errors."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pinkflow_bot.settings import Settings, SettingsError, parse_duration


def test_defaults_run_on_sqlite_and_port_3000():
    settings = Settings.load({}, env_file=None)
    assert settings.database_url == "sqlite+aiosqlite:///pinkflow.db"
    assert (settings.host, settings.port, settings.public_url) == ("0.0.0.0", 3000, "http://localhost:3000")
    assert settings.github_api_url == "https://api.github.com"
    assert (settings.approval_threshold, settings.min_votes, settings.voting_period) == (75, 3, timedelta(hours=24))
    assert settings.auto_deployment is False
    assert settings.configured is False


def test_the_environment_wins_over_the_env_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("APP_ID=1\nWEBHOOK_SECRET=from-file\nPORT=4000\n")
    settings = Settings.load({"PORT": "5000"}, env_file=env_file)
    assert (settings.app_id, settings.webhook_secret, settings.port) == ("1", "from-file", 5000)
    assert settings.public_url == "http://localhost:5000"


def test_a_worker_serves_metrics_only_on_a_port_it_is_given():
    assert Settings.load({}, env_file=None).metrics_port is None
    assert Settings.load({"METRICS_PORT": "9100", "PORT": "5000"}, env_file=None).metrics_port == 9100


def test_a_private_key_inline_with_escaped_newlines_or_from_a_file(tmp_path, app_private_key):
    pem = app_private_key.strip()
    inline = Settings.load({"PRIVATE_KEY": pem.replace("\n", "\\n")}, env_file=None)
    assert inline.private_key == pem + "\n"
    key_file = tmp_path / "app.pem"
    key_file.write_text(pem + "\n")
    from_file = Settings.load({"PRIVATE_KEY_PATH": str(key_file)}, env_file=None)
    assert from_file.private_key == pem + "\n"


def test_a_missing_key_file_is_a_clear_error(tmp_path):
    with pytest.raises(SettingsError, match="PRIVATE_KEY_PATH"):
        Settings.load({"PRIVATE_KEY_PATH": str(tmp_path / "missing.pem")}, env_file=None)


def test_secrets_are_kept_out_of_the_repr(app_private_key):
    settings = Settings.load({"PRIVATE_KEY": app_private_key, "WEBHOOK_SECRET": "hook-secret-value"}, env_file=None)
    assert "secret-value" not in repr(settings) and app_private_key.splitlines()[1] not in repr(settings)
    assert set(settings.secrets()) == {app_private_key.strip() + "\n", "hook-secret-value"}


@pytest.mark.parametrize(
    "values, message",
    [
        ({"PRIVATE_KEY": "not a key"}, "PRIVATE_KEY is not a PEM private key"),
        ({"PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----\\nMIIB\\n-----END RSA PRIVATE KEY-----"}, "not a PEM private key"),
        ({"WORKER_CONCURRENCY": "0"}, "WORKER_CONCURRENCY must be at least 1"),
        ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL must be one of"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be one of"),
    ],
)
def test_settings_that_cannot_work_are_refused_at_start_saying_which(values, message):
    with pytest.raises(SettingsError, match=message):
        Settings.load(values, env_file=None)


@pytest.mark.parametrize("dsn", ["k3ysecret@o1.ingest.sentry.io/7", "https://k3ysecret@o1.ingest.sentry.io/", "https://o1.ingest.sentry.io/7"])
def test_a_sentry_dsn_that_is_not_one_is_refused_without_repeating_its_key(dsn):
    with pytest.raises(SettingsError, match="^SENTRY_DSN is not a Sentry DSN") as refused:
        Settings.load({"SENTRY_DSN": dsn}, env_file=None)
    assert "k3ysecret" not in str(refused.value)


def test_a_key_file_that_holds_no_private_key_names_the_file_not_private_key(tmp_path, app_public_key):
    public = tmp_path / "app.pub.pem"
    public.write_bytes(app_public_key)
    with pytest.raises(SettingsError, match=f"^PRIVATE_KEY_PATH: {public} is not a PEM private key"):
        Settings.load({"PRIVATE_KEY_PATH": str(public)}, env_file=None)


def test_a_key_file_that_is_not_text_is_a_clear_error(tmp_path):
    der = tmp_path / "app.der"
    der.write_bytes(b"\x30\x82\x04\xa4\xff\xfe")
    with pytest.raises(SettingsError, match="not a PEM file"):
        Settings.load({"PRIVATE_KEY_PATH": str(der)}, env_file=None)


@pytest.mark.parametrize(
    "value, expected",
    [("86400000", timedelta(hours=24)), ("3600000", timedelta(hours=1)), ("24h", timedelta(hours=24)),
     ("90m", timedelta(minutes=90)), ("2d", timedelta(days=2)), ("45s", timedelta(seconds=45))],
)
def test_the_voting_period_in_milliseconds_or_as_a_duration(value, expected):
    assert Settings.load({"DAO_VOTING_PERIOD": value}, env_file=None).voting_period == expected


@pytest.mark.parametrize(
    "name, value",
    [
        ("PORT", "http"),
        ("METRICS_PORT", "http"),
        ("DAO_MIN_VOTES", "three"),
        ("DAO_VOTING_PERIOD", "soon"),
        ("ENABLE_AUTO_DEPLOYMENT", "maybe"),
        ("TRUSTED_PROXY_HOPS", "one"),
        ("RATE_LIMIT_WINDOW", "soon"),
        ("SHUTDOWN_GRACE", "-1"),
        ("APP_ID", "pinkflow-bot"),
        ("PUBLIC_URL", "pinkflow.example.com"),
        ("GITHUB_API_URL", "ghe.example.com/api/v3"),
        ("DATABASE_URL", "sqlite+aiosqllite:///pinkflow.db"),
    ],
)
def test_bad_values_name_the_setting(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.load({name: value}, env_file=None)


@pytest.mark.parametrize(
    "given, used",
    [
        ("postgres://u:p%40ss@db.example.com:5432/app", "postgresql+asyncpg://u:p%40ss@db.example.com:5432/app"),
        ("postgresql://u@db.example.com/app", "postgresql+asyncpg://u@db.example.com/app"),
        ("postgresql://u@db.example.com/app?sslmode=require", "postgresql+asyncpg://u@db.example.com/app?ssl=require"),
        ("sqlite:///pinkflow.db", "sqlite+aiosqlite:///pinkflow.db"),
        ("sqlite+aiosqlite:///pinkflow.db", "sqlite+aiosqlite:///pinkflow.db"),
        ("postgresql+asyncpg://u:p@db/app", "postgresql+asyncpg://u:p@db/app"),
    ],
    ids=["heroku", "libpq", "libpq-sslmode", "sqlite", "as-documented-sqlite", "as-documented-postgresql"],
)
def test_database_urls_as_platforms_give_them_are_taken(given, used):
    assert Settings.load({"DATABASE_URL": given}, env_file=None).database_url == used


@pytest.mark.parametrize("value", ["mysql://u:p@db/app", "not a url"])
def test_a_database_url_the_app_cannot_run_on_says_what_to_write(value):
    with pytest.raises(SettingsError, match="DATABASE_URL.*sqlite\\+aiosqlite:///pinkflow.db or postgresql\\+asyncpg://"):
        Settings.load({"DATABASE_URL": value}, env_file=None)


@pytest.mark.parametrize(
    "query, named",
    [("sslmode=require&channel_binding=require", "channel_binding"), ("connect_timeout=10", "connect_timeout"),
     ("sslrootcert=ca.pem&application_name=pinkflow", "application_name, sslrootcert")],
)
def test_libpq_options_asyncpg_does_not_take_are_named_at_start(query, named):
    with pytest.raises(SettingsError, match=f"^DATABASE_URL: PostgreSQL's driver \\(asyncpg\\) does not take {named}; remove"):
        Settings.load({"DATABASE_URL": f"postgresql://u:p@db.example.com/app?{query}"}, env_file=None)


@pytest.mark.parametrize("value, used", [("4242", "4242"), (" 4242\n", "4242"), ("Iv23liAbCdEf012345", "Iv23liAbCdEf012345")])
def test_app_id_is_the_apps_number_or_its_client_id(value, used):
    assert Settings.load({"APP_ID": value}, env_file=None).app_id == used


@pytest.mark.parametrize(
    "name, value",
    [("DAO_VOTING_PERIOD", "86400"), ("DAO_VOTING_PERIOD", "604800"), ("RATE_LIMIT_WINDOW", "900")],
)
def test_seconds_written_where_milliseconds_are_counted_are_refused(name, value):
    with pytest.raises(SettingsError, match=f"{name}={value} would be .* seconds .* write {value}s"):
        Settings.load({name: value}, env_file=None)


@pytest.mark.parametrize(
    "name, value",
    [
        ("DAO_APPROVAL_THRESHOLD", "101"),
        ("DAO_MIN_VOTES", "0"),
        ("DAO_VOTING_PERIOD", "0"),
        ("PORT", "70000"),
        ("METRICS_PORT", "0"),
        ("METRICS_PORT", "70000"),
        ("TRUSTED_PROXY_HOPS", "-1"),
        ("RATE_LIMIT_MAX_REQUESTS", "0"),
        ("WORKER_LEASE", "0"),
        ("GITHUB_TIMEOUT", "0"),
    ],
)
def test_out_of_range_governance_defaults_are_refused_at_start(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.load({name: value}, env_file=None)


def test_enterprise_urls_lose_their_trailing_slash():
    settings = Settings.load({"GITHUB_API_URL": "https://ghe.example.com/api/v3/"}, env_file=None)
    assert settings.github_api_url == "https://ghe.example.com/api/v3"


def test_parse_duration_rejects_garbage():
    with pytest.raises(SettingsError):
        parse_duration("1 fortnight")
