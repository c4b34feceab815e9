"""Repository permission levels, ordered so that comparisons read naturally."""

from __future__ import annotations

import enum


class Permission(enum.IntEnum):
    """A person's level of access to a repository: `Permission.WRITE <= p` reads as "write or above"."""

    NONE = 0
    READ = 1
    TRIAGE = 2
    WRITE = 3
    MAINTAIN = 4
    ADMIN = 5

    @classmethod
    def parse(cls, text: str) -> Permission:
        """The level named by `text` ("none", "read", ... "admin"), in any case."""
        if isinstance(text, str):
            member = cls.__members__.get(text.strip().upper())
            if member is not None:
                return member
        raise ValueError(
            f"unknown permission {text!r}; expected one of "
            + ", ".join(level.label for level in cls)
        )

    @property
    def label(self) -> str:
        """The lower-case name users write in configuration and see in messages."""
        return self.name.lower()

    def __str__(self) -> str:
        return self.label


# The levels GitHub names in `role_name`; anything else there is a custom role.
_BUILT_IN_ROLES = frozenset({"admin", "maintain", "write", "triage", "read"})
# The legacy `permission` field only ever says admin, write, read or none.
_LEGACY_PERMISSIONS = frozenset({"admin", "write", "read", "none"})


def permission_from_github(*, permission: str | None, role_name: str | None) -> Permission:
    """The level from GitHub's collaborator-permission answer.

    `role_name` is exact for the five built-in roles; the legacy `permission` field
    folds maintain into write and triage into read, so it is only the fallback (for
    custom roles, whose base level it reports). Anything unknown is no access.
    """
    role = (role_name or "").strip().lower()
    if role in _BUILT_IN_ROLES:
        return Permission.parse(role)
    legacy = (permission or "").strip().lower()
    if legacy in _LEGACY_PERMISSIONS or legacy in _BUILT_IN_ROLES:
        return Permission.parse(legacy)
    return Permission.NONE


# A collaborator's `permissions` flags, highest first.
_FLAG_LEVELS = (
    ("admin", Permission.ADMIN),
    ("maintain", Permission.MAINTAIN),
    ("push", Permission.WRITE),
    ("triage", Permission.TRIAGE),
    ("pull", Permission.READ),
)


def permission_from_collaborator(collaborator: dict) -> Permission:
    """The level of one entry of GitHub's repository collaborators list.

    `role_name` is exact for the five built-in roles; a custom role's base level is the
    highest of the `permissions` flags it grants.
    """
    role = str(collaborator.get("role_name") or "").strip().lower()
    if role in _BUILT_IN_ROLES:
        return Permission.parse(role)
    flags = collaborator.get("permissions")
    if isinstance(flags, dict):
        for flag, level in _FLAG_LEVELS:
            if flags.get(flag) is True:
                return level
    return Permission.NONE
