"""The App's credentials: its JWT and the installation tokens it is exchanged for.

GitHub accepts an App JWT for at most ten minutes and an installation token for an
hour. Both are cached and replaced about a minute before they run out, so a request
never leaves with a credential that expires on the way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

import jwt
from cachetools import TLRUCache
from gidgethub.abc import GitHubAPI

logger = logging.getLogger(__name__)

# GitHub refuses App JWTs that live longer than ten minutes.
JWT_LIFETIME = 600
# Backdate `iat`: GitHub refuses a JWT issued "in the future" by its own clock.
CLOCK_SKEW = 60
# Replace a credential this long before it expires.
REFRESH_MARGIN = 60
MAX_CACHED_INSTALLATIONS = 10_000


@dataclass(frozen=True)
class _Credential:
    value: str = field(repr=False)
    expires_at: float


class AppAuth:
    def __init__(self, *, app_id: str, private_key: str, clock: Callable[[], float] = time.time) -> None:
        self.app_id = str(app_id)
        self._private_key = private_key
        self.clock = clock
        self._jwt: _Credential | None = None
        self._tokens: TLRUCache[int, _Credential] = TLRUCache(
            maxsize=MAX_CACHED_INSTALLATIONS,
            ttu=lambda _installation, token, _now: token.expires_at - REFRESH_MARGIN,
            timer=clock,
        )
        self._token_locks: dict[int, asyncio.Lock] = {}

    def __repr__(self) -> str:
        return f"AppAuth(app_id={self.app_id!r})"

    def app_jwt(self) -> str:
        """A JWT that authenticates as the App, valid for at least another minute."""
        now = self.clock()
        if self._jwt is None or now >= self._jwt.expires_at - REFRESH_MARGIN:
            issued_at = int(now) - CLOCK_SKEW
            expires_at = issued_at + JWT_LIFETIME
            claims = {"iat": issued_at, "exp": expires_at, "iss": self.app_id}
            self._jwt = _Credential(jwt.encode(claims, self._private_key, algorithm="RS256"), expires_at)
        return self._jwt.value

    async def installation_token(self, gh: GitHubAPI, *, installation_id: int) -> str:
        """A token acting as the installation, valid for at least another minute.

        Concurrent callers for one installation share a single token request.
        """
        cached = self._tokens.get(installation_id)
        if cached is not None:
            return cached.value
        lock = self._token_locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(installation_id)  # fetched while this caller waited
            if cached is not None:
                return cached.value
            answer = await gh.post(
                "/app/installations/{installation_id}/access_tokens",
                url_vars={"installation_id": installation_id},
                data=b"",
                jwt=self.app_jwt(),
            )
            token = _Credential(answer["token"], _timestamp(answer["expires_at"]))
            self._tokens[installation_id] = token
            logger.info(
                "installation token issued",
                extra={"installation_id": installation_id, "expires_at": answer["expires_at"]},
            )
            return token.value

    def invalidate(self, installation_id: int) -> None:
        """Forget the installation's token, e.g. after GitHub answered 401 to it."""
        self._tokens.pop(installation_id, None)


def _timestamp(iso8601: str) -> float:
    return datetime.fromisoformat(iso8601.replace("Z", "+00:00")).timestamp()
