"""`sha256=<hex>` body signatures: GitHub's on each delivery it sends the App, and the
App's own on each promotion webhook it sends (the same scheme, so receivers reuse code)."""

from __future__ import annotations

import hashlib
import hmac


def body_signature(body: bytes, *, secret: str) -> str:
    """`sha256=` and the HMAC-SHA256 of `body` under `secret`, in hex."""
    return "sha256=" + hmac.digest(secret.encode(), body, hashlib.sha256).hex()


def signature_matches(body: bytes, signature: str, *, secret: str) -> bool:
    """Whether `signature` is the body's, compared in constant time. Only SHA-256 is
    accepted (GitHub's older SHA-1 header is not). Compared as bytes: a header may carry
    any character, and compare_digest refuses text that is not ASCII."""
    given = signature.encode("utf-8", "surrogateescape")
    return hmac.compare_digest(body_signature(body, secret=secret).encode(), given)
