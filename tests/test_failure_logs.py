"""What an operator reads while GitHub cannot be reached or fails: a line per failed delivery
and effect, one traceback for the same error, and a line when calls to GitHub work again."""

from __future__ import annotations

import io
import json
import logging
import re
from dataclasses import dataclass

from http import HTTPStatus

import pytest
from gidgethub import GitHubBroken

from pinkflow_bot.effects import EffectRunner
from pinkflow_bot.failure_logs import TRACEBACK_EVERY_SECONDS, FailureLog
from pinkflow_bot.github.errors import GitHubRateLimited
from pinkflow_bot.logs import formatter
from pinkflow_bot.services import GovernanceService
from pinkflow_bot.settings import Settings
from pinkflow_bot.storage import outbox
from pinkflow_bot.storage.database import create_engine, migrate, session_factory
from tests import payloads
from tests.harness import Clock, app_under_test

REPO = "octo-org/shop"
PULLS = {21: "1e5c4b7f0f7a3b0d1c2e3f405162738495a6b7c8", 22: "2f6d5c8e1a8b4c1e2d3f40516273849506b7c8d9",
         23: "3a7e6d9f2b9c5d2f3e4a51627384950617c8d9e0", 24: "4b8f7e0a3c0d6e3a4f5b62738495061728d9e0f1"}
ATTEMPTS = 3
# A line of the text format: "2026-11-02 09:00:00,000 WARNING pinkflow_bot.worker: delivery failed ..."
TEXT_ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \S+: ")


@dataclass
class Entry:
    message: str
    fields: dict  # JSON: every field; text: those written as name=value without spaces, and the error
    traceback: str | None
    lines: int


def entries_of(text: str, log_format: str) -> list[Entry]:
    entries: list[Entry] = []
    if log_format == "json":
        for line in text.splitlines():
            entry = json.loads(line)  # every line is one well-formed JSON object
            traceback = entry.get("traceback")
            if traceback is None and "Traceback (most recent call last)" in str(entry.get("error")):
                traceback = entry["error"]
            entries.append(Entry(entry["message"], entry, traceback, 1))
        return entries
    chunks: list[list[str]] = []
    for line in text.splitlines():
        if TEXT_ENTRY.match(line) or not chunks:
            chunks.append([line])
        else:
            chunks[-1].append(line)
    for first, *rest in chunks:
        said = TEXT_ENTRY.sub("", first)
        message = re.split(r" \w+=", said, maxsplit=1)[0]
        fields = dict(re.findall(r" (\w+)=(\S+)", said))
        error = re.search(r" error=(.*?)(?: same_error_since_traceback=\d+)?$", said)
        if error:
            fields["error"] = error.group(1)
        entries.append(Entry(message, fields, "\n".join(rest) or None, 1 + len(rest)))
    return entries


@pytest.fixture
def world(fake_github):
    fake_github.add_installation(1, "octo-org")
    fake_github.add_repo(REPO, installation_id=1)
    fake_github.add_user("alice")
    fake_github.set_permission(REPO, "alice", "write")
    for number, sha in PULLS.items():
        fake_github.add_pull(REPO, number, head_sha=sha, author="alice")
    return fake_github


class Outage:
    """GitHub away in one of the ways it goes away, and back."""

    def __init__(self, how: str, world) -> None:
        self.how, self.world = how, world

    @property
    def settings(self) -> dict[str, str]:
        return {"GITHUB_TIMEOUT": "0.2"} if self.how == "timeout" else {}

    async def begin(self) -> None:
        if self.how == "connection refused":
            await self.world.stop_answering()
        elif self.how == "502":
            self.world.fail(status=502, times=100_000)
        else:
            self.world.latency = 1.0

    async def end(self) -> None:
        if self.how == "connection refused":
            await self.world.answer_again()
        elif self.how == "502":
            self.world.stop_failing()
        else:
            self.world.latency = 0.0

    @property
    def cause(self) -> str:
        """What the error of each failed attempt says."""
        return {"connection refused": "Cannot connect to host", "502": "GitHubBroken: Bad Gateway"}.get(
            self.how, "TimeoutError"
        )


@pytest.fixture
def captured_log():
    """The App's log as an operator reads it, in the format `LOG_FORMAT` names."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    def use(log_format: str) -> io.StringIO:
        handler.setFormatter(formatter(log_format))
        return stream

    yield use
    root.removeHandler(handler)
    root.setLevel(previous_level)


def one_line_each(failed: list[Entry], *, name: str, attempts: int) -> None:
    """Every attempt of each one failed is a line of its own, with its id and attempt."""
    assert all(name in entry.fields and "attempt" in entry.fields for entry in failed), [e.fields for e in failed]
    ids = {entry.fields[name] for entry in failed}
    assert len(ids) == len(PULLS)
    assert sorted((entry.fields[name], int(entry.fields["attempt"])) for entry in failed) == sorted(
        (one, attempt) for one in ids for attempt in range(1, attempts + 1)
    )


@pytest.mark.parametrize(
    "how, log_format",
    [("connection refused", "json"), ("502", "json"), ("timeout", "json"), ("connection refused", "text")],
)
async def test_while_github_is_away_each_failure_is_one_line_and_its_traceback_is_logged_once(
    tmp_path, world, app_private_key, captured_log, how, log_format
):
    """Four pull requests' previews arrive while GitHub cannot be reached: each attempt of
    each delivery is one line with its id, attempt and error, and the error's traceback is
    logged once, not per delivery and attempt. When GitHub answers again that is said once,
    and the deliveries are handled. Effects failing in a second outage read the same way."""
    outage = Outage(how, world)
    stream = captured_log(log_format)
    clock = Clock()
    async with app_under_test(
        tmp_path, github_url=world.url, private_key=app_private_key, clock=clock, **outage.settings
    ) as app:
        await outage.begin()
        for number, sha in PULLS.items():
            await app.send(payloads.preview_ready(repo=REPO, sha=sha, deployment_id=900 + number))
        for _ in range(ATTEMPTS):
            await app.drain()
            clock.advance(minutes=10)
        during = entries_of(stream.getvalue(), log_format)
        await outage.end()
        await app.drain()
        after = entries_of(stream.getvalue(), log_format)[len(during):]

        # Again, while only effects call GitHub: /status reads the pull request again.
        await outage.begin()
        for number in PULLS:
            await app.send(payloads.posted_comment(world, "/status", repo=REPO, number=number, author="alice"))
        for _ in range(2):
            await app.drain()
            clock.advance(minutes=10)
        await outage.end()
        await app.drain()
        effects = entries_of(stream.getvalue(), log_format)[len(during) + len(after):]

    failed = [entry for entry in during if entry.message == "delivery failed"]
    one_line_each(failed, name="delivery_id", attempts=ATTEMPTS)
    with_traceback = [entry for entry in during if entry.traceback]
    traceback_lines = sum(entry.traceback.count("\n") + 1 for entry in with_traceback)
    assert len(with_traceback) == 1, f"{len(with_traceback)} tracebacks ({traceback_lines} lines) for {len(failed)} failures"
    assert with_traceback[0] is failed[0]
    assert all(outage.cause in entry.fields["error"] and "\n" not in entry.fields["error"] for entry in failed)
    assert all(int(entry.fields["same_error_since_traceback"]) >= 1 for entry in failed[1:])

    [again] = [entry for entry in after if entry.message == "calls to GitHub work again"]
    assert int(again.fields["failed_calls"]) >= len(failed)
    handled = [entry for entry in after if entry.message == "delivery handled"]
    assert sorted(int(entry.fields["attempt"]) for entry in handled) == [ATTEMPTS + 1] * len(PULLS)
    assert not [entry for entry in after if entry.traceback]
    for sha in PULLS.values():
        assert world.check_runs_for(REPO, sha, name="Pinkflow governance")

    retried = [entry for entry in effects if entry.message == "effect will be retried"]
    one_line_each(retried, name="effect_id", attempts=2)
    assert all(outage.cause in entry.fields["error"] for entry in retried)
    assert not [entry for entry in effects if entry.traceback]
    assert [entry.message for entry in effects].count("calls to GitHub work again") == 1
    done = [entry for entry in effects if entry.message == "effect done"]
    assert sorted(entry.fields["effect_id"] for entry in done) == sorted({entry.fields["effect_id"] for entry in retried})


def raised(error: Exception) -> Exception:
    try:
        raise error
    except Exception as caught:
        return caught


def raised_elsewhere(error: Exception) -> Exception:
    try:
        raise error
    except Exception as caught:
        return caught


def test_a_new_error_gets_its_traceback_at_once_and_a_repeated_one_once_a_window(caplog):
    now = [0.0]
    failures = FailureLog(clock=lambda: now[0])
    log = logging.getLogger("pinkflow_bot.test_failure_logs")
    caplog.set_level(logging.INFO, logger=log.name)

    def fail(error: Exception) -> logging.LogRecord:
        failures.log(log, logging.WARNING, "delivery failed", error, attempt=1, error=str(error))
        return caplog.records[-1]

    assert fail(raised(GitHubBroken(HTTPStatus.BAD_GATEWAY))).exc_info
    repeated = fail(raised(GitHubBroken(HTTPStatus.BAD_GATEWAY)))
    assert not repeated.exc_info and repeated.same_error_since_traceback == 1
    # Another status, another class, another message, the same raised elsewhere: each its own.
    assert fail(raised(GitHubBroken(HTTPStatus.SERVICE_UNAVAILABLE))).exc_info
    assert fail(raised(KeyError("sha"))).exc_info
    assert fail(raised(KeyError("head"))).exc_info
    assert fail(raised_elsewhere(KeyError("sha"))).exc_info
    # A rate limit counts down on every try; it is the same error.
    assert fail(raised(GitHubRateLimited(status=403, retry_after=120, reason="primary rate limit"))).exc_info
    assert not fail(raised(GitHubRateLimited(status=403, retry_after=119, reason="primary rate limit"))).exc_info
    now[0] += TRACEBACK_EVERY_SECONDS - 1
    assert not fail(raised(GitHubBroken(HTTPStatus.BAD_GATEWAY))).exc_info
    now[0] += 1
    assert fail(raised(GitHubBroken(HTTPStatus.BAD_GATEWAY))).exc_info


async def test_an_effect_error_that_repeats_has_its_traceback_once_and_each_effect_its_line(tmp_path, caplog):
    """A bug every effect of a kind meets (here: reactions stored without their repository)
    is one traceback, and a line per effect and attempt; a different one gets its own."""
    caplog.set_level(logging.INFO, logger="pinkflow_bot.effects")
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'pinkflow.db'}")
    await migrate(engine)
    sessions = session_factory(engine)
    clock = Clock()
    service = GovernanceService(sessions=sessions, settings=Settings.load({}, env_file=None), clock=clock)
    runner = EffectRunner(sessions=sessions, github=None, service=service, clock=clock)
    try:
        async with sessions() as session, session.begin():
            for _ in PULLS:
                await outbox.enqueue_effect(session, kind="react", now=clock(), payload={"comment_id": 1, "content": "+1"})
            await outbox.enqueue_effect(session, kind="post_comment", now=clock(), payload={"repo": "octo-org", "number": 1})
        for _ in range(2):
            await runner.run_due(coalesce=False)
            clock.advance(minutes=10)
    finally:
        await engine.dispose()
    raised_lines = [r for r in caplog.records if r.getMessage() == "effect raised"]
    assert [r.exc_info[0] for r in raised_lines] == [KeyError, ValueError]
    retried = [r for r in caplog.records if r.getMessage() == "effect will be retried"]
    assert len(retried) == (len(PULLS) + 1) * 2 and not any(r.exc_info for r in retried)
    assert sorted(r.attempt for r in retried) == [1] * (len(PULLS) + 1) + [2] * (len(PULLS) + 1)
    assert [r.error for r in retried].count("KeyError: 'repo'") == len(PULLS) * 2
    assert sum(1 for r in retried if getattr(r, "same_error_since_traceback", 0)) == len(retried) - 2
