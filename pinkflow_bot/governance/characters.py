"""Text from outside the App (comments, GitHub's and providers' answers, payloads, files)
as a database can store it and people can read it."""

from __future__ import annotations

import re
from typing import Any

# NUL: PostgreSQL's text cannot hold it. A lone surrogate (JSON's "\ud800"): it has no
# UTF-8, so neither database takes it, nor a page that shows it.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"  # as GitHub shows a NUL in a comment (CommonMark's rule)


def storable(text: str) -> str:
    """`text` with NUL and lone surrogates replaced by U+FFFD."""
    return _UNSTORABLE.sub(REPLACEMENT, text)


def storable_json(value: Any) -> Any:
    """A JSON value with every string in it (keys too) made `storable`."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {storable_json(key): storable_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable_json(item) for item in value]
    return value
