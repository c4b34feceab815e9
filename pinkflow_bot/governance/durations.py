"""Short human durations for messages: "23h 59m", "5m 30s", "3d"."""

from __future__ import annotations

from datetime import timedelta

_MINUTE = 60
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR


def format_duration(duration: timedelta) -> str:
    """The two largest non-zero units, rounded down: 23h 59m, 1h, 5m 30s, 45s, 0s.

    Days are used from 48 hours on, so a configured `24h` still reads as "24h".
    Negative durations read as "0s"; callers say "closed" themselves.
    """
    seconds = max(0, int(duration.total_seconds()))
    if seconds >= 2 * _DAY:
        units = [("d", _DAY), ("h", _HOUR), ("m", _MINUTE), ("s", 1)]
    else:
        units = [("h", _HOUR), ("m", _MINUTE), ("s", 1)]
    parts: list[tuple[int, str]] = []
    rest = seconds
    for suffix, size in units:
        parts.append((rest // size, suffix))
        rest %= size
    # Start at the first non-zero unit and show it with the one after it.
    for index, (amount, _) in enumerate(parts):
        if amount:
            shown = parts[index : index + 2]
            return " ".join(f"{amount}{suffix}" for amount, suffix in shown if amount)
    return "0s"
