"""Log lines carry the delivery's context and never a secret."""

from __future__ import annotations

import io
import json
import logging

import jwt
import pytest

from pinkflow_bot.logs import JsonFormatter, log_context, redact, register_secrets


@pytest.fixture
def captured():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("pinkflow_bot.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_line_of_a_delivery_carries_its_context(captured):
    logger, stream = captured
    with log_context(delivery_id="d-1", installation_id=7, repository="octo/shop", pull_request=3):
        logger.info("vote counted", extra={"voter": "ann"})
    logger.info("outside")
    inside, outside = lines(stream)
    assert inside["delivery_id"] == "d-1" and inside["repository"] == "octo/shop" and inside["pull_request"] == 3
    assert inside["voter"] == "ann"
    assert "delivery_id" not in outside


@pytest.mark.parametrize(
    "secret",
    [
        "ghs_16C7e42F292c6912E7710c838347Ae178B4a",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        jwt.encode({"iss": "1"}, "k" * 32, algorithm="HS256"),
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    ],
    ids=["installation token", "personal token", "jwt", "pem"],
)
def test_credentials_are_masked_whatever_the_message(captured, secret):
    logger, stream = captured
    logger.info("calling GitHub with %s", secret, extra={"header": f"Authorization: token {secret}"})
    text = stream.getvalue()
    assert secret not in text
    assert "[redacted]" in text


def test_configured_secrets_are_masked_even_when_they_look_ordinary(captured):
    logger, stream = captured
    register_secrets("plain-looking-webhook-secret")
    logger.warning("secret was plain-looking-webhook-secret")
    assert "plain-looking-webhook-secret" not in stream.getvalue()


def test_tracebacks_are_masked_too(captured):
    logger, stream = captured
    try:
        raise RuntimeError("token ghs_16C7e42F292c6912E7710c838347Ae178B4a refused")
    except RuntimeError:
        logger.exception("failed")
    assert "ghs_16C7" not in stream.getvalue()


def test_ordinary_text_is_left_alone():
    text = "vote by ann: approve (weight 3) on octo/shop#3 at 9fceb02"
    assert redact(text) == text


def test_text_lines_carry_the_same_fields_as_json():
    from pinkflow_bot.logs import TextFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("pinkflow_bot.test_logs_text")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with log_context(delivery_id="d-9"):
            logger.info("effect will be retried", extra={"retry_in_s": 60.0, "error": "GitHub answered 502"})
    finally:
        logger.removeHandler(handler)
    line = stream.getvalue()
    assert "delivery_id=d-9" in line and "retry_in_s=60.0" in line and "error=GitHub answered 502" in line


def failing(message: str) -> BaseException:
    try:
        raise ConnectionRefusedError(message)
    except ConnectionRefusedError as error:
        return error


def test_a_text_line_with_a_traceback_has_its_fields_on_the_line_of_its_message():
    from pinkflow_bot.logs import formatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("text"))
    logger = logging.getLogger("pinkflow_bot.test_logs_text_traceback")
    logger.addHandler(handler)
    try:
        with log_context(delivery_id="d-7"):
            logger.warning("delivery failed", exc_info=failing("refused"), extra={"attempt": 2, "error": "refused"})
    finally:
        logger.removeHandler(handler)
    first, *traceback = stream.getvalue().splitlines()
    assert first.endswith("delivery failed delivery_id=d-7 attempt=2 error=refused")
    assert traceback[0] == "Traceback (most recent call last):" and traceback[-1] == "ConnectionRefusedError: refused"


def test_a_json_line_with_a_traceback_keeps_its_error_in_one_line(captured):
    logger, stream = captured
    logger.warning("delivery failed", exc_info=failing("refused"), extra={"attempt": 1, "error": "ClientConnectorError: refused"})
    logger.error("request failed", exc_info=failing("refused"))
    [failed, request] = lines(stream)
    assert failed["error"] == "ClientConnectorError: refused"
    assert failed["traceback"].startswith("Traceback (most recent call last):")
    # A line without an error of its own has the traceback as its error, as before.
    assert request["error"].startswith("Traceback (most recent call last):") and "traceback" not in request


@pytest.mark.parametrize(
    "error, secret",
    [
        ("Bad credentials:\nghs_16C7e42F292c6912E7710c838347Ae178B4a", "ghs_16C7e42F292c6912E7710c838347Ae178B4a"),
        ("refused:\n" + jwt.encode({"iss": "1"}, "k" * 32, algorithm="HS256"), jwt.encode({"iss": "1"}, "k" * 32, algorithm="HS256")),
        ("key -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7bq9", "MIIEpAIBAAKCAQEA7bq9"),
    ],
    ids=["token starting a line", "jwt starting a line", "key cut short"],
)
def test_json_lines_stay_well_formed_and_masked_whatever_the_error_holds(captured, error, secret):
    logger, stream = captured
    logger.warning("delivery failed", extra={"error": error})
    [line] = lines(stream)  # one JSON object: a mask never eats the end of the line
    assert secret not in stream.getvalue()
    assert "[redacted]" in line["error"] and line["message"] == "delivery failed"
