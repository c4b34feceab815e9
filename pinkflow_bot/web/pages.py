"""Server-rendered HTML: one Jinja2 environment with autoescaping, and the headers every page gets."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
import markupsafe
from aiohttp import web

from ..governance.durations import format_duration

TEMPLATES = Path(__file__).with_name("templates")


def utc(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def iso(moment: datetime | None) -> str:
    """A time as RFC 3339 in UTC with `Z`, as GitHub writes times; every JSON answer and page uses it."""
    return "" if moment is None else moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def web_url(url: str | None) -> str | None:
    """`url` if it is an http(s) address, else None: URLs from deliveries must never become `javascript:` links."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.netloc else None


_CODE_SPAN = re.compile(r"`([^`\n]+)`")


def code_spans(text: str | None) -> markupsafe.Markup:
    """`text` escaped, its `backticked` parts (a setting's name, a command, as the status
    comment writes them in markdown) shown as code rather than with their backticks."""
    escaped = str(markupsafe.escape(text or ""))
    return markupsafe.Markup(_CODE_SPAN.sub(r"<code>\1</code>", escaped))


_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters.update(utc=utc, iso=iso, duration=format_duration, web_url=web_url, code_spans=code_spans)


def render(
    template: str,
    *,
    status: int = 200,
    form_targets: tuple[str, ...] = (),
    private: bool = False,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> web.Response:
    """A page from `templates/`. `form_targets` are the origins besides our own that its forms may post to."""
    text = _environment.get_template(template).render(**context)
    # No scripts at all; styles are inline in the page.
    policy = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; "
        f"frame-ancestors 'none'; form-action 'self' {' '.join(form_targets)}".strip()
    )
    page_headers = {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        # A signed link must not travel to preview sites in a Referer header.
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store" if private else "no-cache",
    }
    page_headers.update(headers or {})
    return web.Response(text=text, status=status, content_type="text/html", headers=page_headers)


def error_page(status: int, title: str, message: str, *, back_href: str = "/", back_label: str = "Back to the start page") -> web.Response:
    return render(
        "error.html", status=status, title=title, message=message, back_href=back_href, back_label=back_label, private=True
    )
