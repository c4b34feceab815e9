"""Links to a proposal's page; a private repository's proposal is reachable only through a signed one.

The signature is an HMAC of the proposal id under a key derived from the webhook
secret, so it cannot be guessed from the id and needs no table of its own. The bot
posts the signed link only where GitHub shows it to people who can see the repository
(the check run's details link).
"""

from __future__ import annotations

import hashlib
import hmac

from .settings import Settings

# A fixed label keeps this key apart from the webhook signatures made with the same secret.
_LINK_KEY_LABEL = b"pinkflow-dashboard-link"


def _link_key(webhook_secret: str) -> bytes:
    return hmac.new(webhook_secret.encode(), _LINK_KEY_LABEL, hashlib.sha256).digest()


def proposal_signature(settings: Settings, *, proposal_id: int) -> str | None:
    """The hex signature of a proposal's link; None when the App has no webhook secret to sign with."""
    if not settings.webhook_secret:
        return None
    message = f"proposal:{proposal_id}".encode()
    return hmac.new(_link_key(settings.webhook_secret), message, hashlib.sha256).hexdigest()


def proposal_link(settings: Settings, *, proposal_id: int, private: bool) -> str:
    """The absolute address of a proposal's page: signed when its repository is private."""
    link = f"{settings.public_url}/proposals/{proposal_id}"
    signature = proposal_signature(settings, proposal_id=proposal_id) if private else None
    # Without a secret nothing can be signed: the plain link then answers 404, which is safe.
    return f"{link}?sig={signature}" if signature else link


def link_is_valid(settings: Settings, *, proposal_id: int, signature: str | None) -> bool:
    expected = proposal_signature(settings, proposal_id=proposal_id)
    if expected is None or not signature:
        return False
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode("utf-8", "replace"))
