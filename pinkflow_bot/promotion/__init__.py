"""Promotion providers (DESIGN section 4): what "promote this preview to production" does.

Every provider has `async promote(request, *, attempt) -> PromotionResult` and raises
`PromotionRefused` (fix something first) or `PromotionUnavailable` (try again later).
A provider may be called again after an unknown outcome; it then finds what the
earlier attempt did instead of doing it twice.
"""

from .base import (
    PromotionError,
    PromotionProvider,
    PromotionRefused,
    PromotionRequest,
    PromotionResult,
    PromotionUnavailable,
    retry_after_seconds,
)
from .github import GitHubDeploymentProvider
from .protection_rule import review_deployment_protection_rule
from .vercel import VercelProvider
from .webhook import WebhookProvider

__all__ = [
    "GitHubDeploymentProvider",
    "PromotionError",
    "PromotionProvider",
    "PromotionRefused",
    "PromotionRequest",
    "PromotionResult",
    "PromotionUnavailable",
    "VercelProvider",
    "WebhookProvider",
    "retry_after_seconds",
    "review_deployment_protection_rule",
]
