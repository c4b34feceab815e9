"""Error reports to Sentry, only when `SENTRY_DSN` is set, with secrets masked as in the logs."""

from __future__ import annotations

import json
import logging
from typing import Any

from .logs import redact
from .settings import Settings

log = logging.getLogger(__name__)


def _masked(event: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any]:
    # Round-trip through the same redaction as the logs: tokens, keys and secrets never leave.
    return json.loads(redact(json.dumps(event, default=str)))


def init_error_reports(settings: Settings) -> bool:
    if not settings.sentry_dsn:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        before_send=_masked,
        send_default_pii=False,
        # Errors only: the App's own metrics cover performance.
        traces_sample_rate=0.0,
    )
    log.info("error reports go to Sentry")
    return True
