"""Structured logs that carry the delivery's context and never carry a secret."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator

# Context of the delivery being handled; every log line of that delivery carries it.
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("pinkflow_log_context")

# Credentials GitHub and others hand out, recognised by their shape.
_SECRET_PATTERNS = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL),
    re.compile(r"\b(gh[psoru]_[A-Za-z0-9_]{16,}|github_pat_[A-Za-z0-9_]{20,}|v1\.[0-9a-f]{40})\b"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"),
    re.compile(r"(?i)\b(authorization|bearer|token)([\"']?\s*[:=]?\s*[\"']?\s*)(bearer\s+|token\s+)?[A-Za-z0-9_.\-]{20,}"),
)
REDACTED = "[redacted]"
_known_secrets: set[str] = set()

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def register_secrets(*values: str | None) -> None:
    """Configured secrets are masked wherever they appear, whatever their shape."""
    for value in values:
        if value and len(value) >= 6:
            _known_secrets.add(value)
            _known_secrets.add(value.strip())


def redact(text: str) -> str:
    for secret in sorted(_known_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(_mask, text)
    return text


def _mask(match: re.Match[str]) -> str:
    if match.re is _SECRET_PATTERNS[3]:
        return f"{match.group(1)}{match.group(2)}{match.group(3) or ''}{REDACTED}"
    return REDACTED


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Adds fields (delivery_id, installation_id, repository, pull_request) to every line inside."""
    merged = {**_context.get({}), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def bind_log_context(**fields: Any) -> None:
    """Adds fields to the current context, for what is learnt halfway through a delivery."""
    _context.set({**_context.get({}), **{k: v for k, v in fields.items() if v is not None}})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_context.get({}))
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            # A line that names its error in one line keeps it; the traceback goes beside it.
            entry["traceback" if isinstance(entry.get("error"), str) else "error"] = self.formatException(record.exc_info)
        # Each value is masked before it is encoded: a secret at the start of one of its lines
        # is found as in the text format, and a mask never eats the quotes that end the line.
        # The encoded line is masked again for what only shows there (a "token" key's value).
        return redact(json.dumps(_masked(entry), ensure_ascii=False))


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(key)): _masked(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_masked(item) for item in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return redact(str(value))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # The same fields as JSON gives: the context, then the line's own `extra=`.
        fields = {**_context.get({}), **{
            key: value for key, value in vars(record).items() if key not in _STANDARD_ATTRS and not key.startswith("_")
        }}
        context = " ".join(f"{k}={v}" for k, v in fields.items())
        # The fields on the line of the message, before a traceback's lines, not after its last.
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = f"{self.formatMessage(record)} {context}".rstrip()
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return redact(line)


def formatter(fmt: str) -> logging.Formatter:
    """The formatter of `LOG_FORMAT`: json, or text."""
    return JsonFormatter() if fmt == "json" else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def configure_logging(*, level: str = "info", fmt: str = "json", secrets: tuple[str, ...] = ()) -> None:
    register_secrets(*secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # aiohttp's access log would repeat every intake request; keep it at warning.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
