"""How failed deliveries and effects are logged while the same error repeats.

Each failure keeps its own line (the delivery's or effect's id, its attempt, the error in
one line), so every delivery's fate can be read. The traceback of an error is logged the
first time it comes within a window: while GitHub is unreachable or answers 502, a busy
repository's failures read as one traceback a minute, not one per delivery and attempt;
an error that differs (another class, message or place it was raised at) gets its own at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from .github.errors import GitHubRateLimited

# An error's traceback is logged again after this long, should it still be coming.
TRACEBACK_EVERY_SECONDS = 60.0
# Errors remembered at most; those whose window has passed are forgotten first.
MAX_REMEMBERED = 1000


def one_line(text: str) -> str:
    """An error's words on one line, as a log line shows them."""
    return " ".join(text.split())


def same_error(error: BaseException) -> str:
    """What two failures share when they are the same error: the class, the message's first
    line (a rate limit by its kind, not by the seconds left) and where it was raised."""
    if isinstance(error, GitHubRateLimited):
        words = f"{error.status} rate limited ({error.reason})"
    else:
        words = next(iter(str(error).splitlines()), "")
    innermost = error.__traceback__
    while innermost is not None and innermost.tb_next is not None:
        innermost = innermost.tb_next
    where = f"{innermost.tb_frame.f_code.co_filename}:{innermost.tb_lineno}" if innermost is not None else ""
    return f"{type(error).__module__}.{type(error).__qualname__}: {words[:300]} at {where}"


class FailureLog:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic, every: float = TRACEBACK_EVERY_SECONDS) -> None:
        self._clock = clock
        self._every = every
        # error -> (when its traceback was logged, how often it came since)
        self._shown: dict[str, tuple[float, int]] = {}

    def repeats(self, error: BaseException) -> int:
        """How often the error came since its traceback was logged, this time included;
        0 when its traceback is to be logged now (a new error, or its window has passed)."""
        key = same_error(error)
        now = self._clock()
        shown = self._shown.get(key)
        if shown is None or now - shown[0] >= self._every:
            if len(self._shown) >= MAX_REMEMBERED:
                self._forget(now)
            self._shown[key] = (now, 0)
            return 0
        self._shown[key] = (shown[0], shown[1] + 1)
        return shown[1] + 1

    def log(self, logger: logging.Logger, level: int, message: str, error: BaseException, /, **fields: Any) -> None:
        """One line for the failure; with the error's traceback only when `repeats` says so,
        else with how often it came since its traceback was logged."""
        repeats = self.repeats(error)
        if repeats:
            fields["same_error_since_traceback"] = repeats
        logger.log(level, message, exc_info=None if repeats else error, extra=fields, stacklevel=2)

    def _forget(self, now: float) -> None:
        for key in [key for key, (at, _) in self._shown.items() if now - at >= self._every]:
            del self._shown[key]
        if len(self._shown) >= MAX_REMEMBERED:
            # All still within their window: the oldest goes (its error, if it comes, is logged in full).
            del self._shown[min(self._shown, key=lambda key: self._shown[key][0])]
