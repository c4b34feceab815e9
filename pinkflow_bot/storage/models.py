"""Tables. The schema changes only through Alembic migrations in `migrations/`."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ..governance.characters import storable, storable_json

# Stable constraint names, so migrations can refer to them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC without a zone (SQLite has none) and always hands back aware datetimes."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class StoredString(TypeDecorator[str]):
    """A text column: what is written to it (from a payload, GitHub's or a provider's
    answer, a file) is stored with NUL and lone surrogates as U+FFFD, which every database
    takes, instead of failing the transaction that writes it."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return storable(value) if isinstance(value, str) else value


class StoredText(StoredString):
    impl = Text
    cache_ok = True


class StoredJSON(TypeDecorator[Any]):
    """A JSON column whose strings (keys too) are stored as StoredString stores text."""

    impl = JSON
    cache_ok = True
    should_evaluate_none = True  # None is stored as JSON's null, as JSON stores it

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return storable_json(value)


# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit key.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Delivery(Base):
    """A webhook delivery as received: stored and committed before GitHub is answered."""

    __tablename__ = "deliveries"

    seq: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(100), unique=True)
    event: Mapped[str] = mapped_column(String(100))
    action: Mapped[str | None] = mapped_column(String(100))
    installation_id: Mapped[int | None] = mapped_column(BigInteger)
    # Deliveries with the same key are handled one at a time, in order of arrival.
    # Intake inserts with a statement of its own (storage/inbox.py), so these columns are
    # plain: it makes serial_key storable itself, and the body is JSON text, valid UTF-8
    # with its NULs escaped. `error`, written by the worker, is a StoredText.
    serial_key: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending, processing, done, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # How many of the attempts ended waiting for GitHub's rate limit: they use up no attempt.
    rate_limit_waits: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(StoredText)

    __table_args__ = (
        Index("ix_deliveries_status_seq", "status", "seq"),
        Index("ix_deliveries_serial_key_status", "serial_key", "status"),
    )


class Installation(Base):
    __tablename__ = "installations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_login: Mapped[str] = mapped_column(StoredString(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PullRequest(Base):
    """What the App knows of a pull request from its events; the status comment lives here."""

    __tablename__ = "pull_requests"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    installation_id: Mapped[int | None] = mapped_column(BigInteger)
    repo_full_name: Mapped[str] = mapped_column(StoredString(200))
    number: Mapped[int] = mapped_column(Integer)
    head_sha: Mapped[str] = mapped_column(StoredString(64))
    author: Mapped[str] = mapped_column(StoredString(100))
    state: Mapped[str] = mapped_column(StoredString(20))
    status_comment_id: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("repo_full_name", "number"),
        Index("ix_pull_requests_repo_head", "repo_full_name", "head_sha"),
    )


class Proposal(Base):
    """A preview at one SHA, put to a vote."""

    __tablename__ = "proposals"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    installation_id: Mapped[int | None] = mapped_column(BigInteger)
    repo_full_name: Mapped[str] = mapped_column(StoredString(200))
    repo_private: Mapped[bool] = mapped_column(Boolean, default=False)
    pr_number: Mapped[int] = mapped_column(Integer)
    pr_author: Mapped[str] = mapped_column(StoredString(100))
    head_sha: Mapped[str] = mapped_column(StoredString(64))
    preview_deployment_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    preview_url: Mapped[str | None] = mapped_column(StoredText)
    environment: Mapped[str | None] = mapped_column(StoredString(255))
    # voting, passed, rejected, expired, superseded, cancelled, promoted
    state: Mapped[str] = mapped_column(StoredString(20), default="voting")
    superseded_by: Mapped[str | None] = mapped_column(StoredString(64))
    rules: Mapped[dict[str, Any]] = mapped_column(StoredJSON)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When time alone next changes what an open proposal shows or allows (its minimum voting
    # time ending, its period closing); the sweeper looks again then. None once decided.
    revisit_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    check_run_id: Mapped[int | None] = mapped_column(BigInteger)
    # GitHub does not reopen a completed check run: going back to voting needs a new one.
    check_run_completed: Mapped[bool] = mapped_column(Boolean, default=False)
    notes: Mapped[list[str]] = mapped_column(StoredJSON, default=list)
    # Problems of `.github/pinkflow.yml` (key, line, message) when the proposal opened or was
    # last refreshed: while there are any, nothing is counted or promoted.
    config_problems: Mapped[list[dict[str, Any]] | None] = mapped_column(StoredJSON)
    # The last check of the preview URL (+ `preview_health.path`).
    health_status: Mapped[int | None] = mapped_column(Integer)
    health_elapsed_ms: Mapped[int | None] = mapped_column(Integer)
    health_error: Mapped[str | None] = mapped_column(StoredText)
    health_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("repo_full_name", "pr_number", "head_sha"),
        Index("ix_proposals_state_revisit_at", "state", "revisit_at"),
    )


class Ballot(Base):
    """One vote as cast; the latest per voter counts. Rows are never changed."""

    __tablename__ = "ballots"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    voter: Mapped[str] = mapped_column(StoredString(100))
    choice: Mapped[str] = mapped_column(StoredString(20))  # approve, reject, abstain, retract
    weight: Mapped[int] = mapped_column(Integer)
    permission: Mapped[str] = mapped_column(StoredString(20))
    reason: Mapped[str] = mapped_column(StoredText, default="")
    comment_id: Mapped[int | None] = mapped_column(BigInteger)
    cast_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Promotion(Base):
    """At most one per proposal: the unique key is what stops a double promotion."""

    __tablename__ = "promotions"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), unique=True)
    provider: Mapped[str] = mapped_column(StoredString(40))
    requested_by: Mapped[str] = mapped_column(StoredString(100))
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    # pending, created, failed; then, as the production deployment reports: in_progress, success, failure
    state: Mapped[str] = mapped_column(StoredString(20), default="pending")
    # The GitHub deployment to production that is followed (created here, or by the provider's CD).
    deployment_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    # The provider's own id of what it did (a Vercel deployment, a webhook delivery).
    reference: Mapped[str | None] = mapped_column(StoredString(200))
    environment_url: Mapped[str | None] = mapped_column(StoredText)
    error: Mapped[str | None] = mapped_column(StoredText)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Effect(Base):
    """Something to do at GitHub (or a promotion target) after a commit: the outbox."""

    __tablename__ = "effects"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("proposals.id"))
    installation_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(StoredString(40))
    payload: Mapped[dict[str, Any]] = mapped_column(StoredJSON, default=dict)
    status: Mapped[str] = mapped_column(StoredString(20), default="pending")  # pending, processing, done, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # How many of the attempts ended waiting for GitHub's rate limit: they use up no attempt.
    rate_limit_waits: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(StoredText)

    __table_args__ = (
        Index("ix_effects_status_not_before", "status", "not_before"),
        Index("ix_effects_proposal_kind_status", "proposal_id", "kind", "status"),
    )


class AuditEvent(Base):
    """Append-only record of what happened to a proposal, with who and when."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    actor: Mapped[str] = mapped_column(StoredString(100))
    action: Mapped[str] = mapped_column(StoredString(40))
    detail: Mapped[str] = mapped_column(StoredText, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Hold(Base):
    """`/hold`: no promotion while any hold of the proposal is not released."""

    __tablename__ = "holds"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    login: Mapped[str] = mapped_column(StoredString(100))
    reason: Mapped[str] = mapped_column(StoredText, default="")
    held_at: Mapped[datetime] = mapped_column(UTCDateTime)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    released_by: Mapped[str | None] = mapped_column(StoredString(100))


class ProtectionRuleRequest(Base):
    """A GitHub Actions job waiting on this App's custom deployment protection rule: kept
    until the proposal for its commit is decided, then answered once."""

    __tablename__ = "protection_rule_requests"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    installation_id: Mapped[int | None] = mapped_column(BigInteger)
    repo_full_name: Mapped[str] = mapped_column(StoredString(200))
    head_sha: Mapped[str] = mapped_column(StoredString(64))
    run_id: Mapped[int] = mapped_column(BigInteger)
    environment: Mapped[str] = mapped_column(StoredString(255))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # approved or rejected, once decided; answered_at once GitHub took the answer.
    answer: Mapped[str | None] = mapped_column(StoredString(20))
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("repo_full_name", "run_id", "environment"),
        Index("ix_protection_rule_requests_repo_sha", "repo_full_name", "head_sha"),
    )


class CommandUse(Base):
    """Commands a person gave in a repository, for RATE_LIMIT_MAX_REQUESTS per RATE_LIMIT_WINDOW.
    Kept in the database so that every replica counts the same."""

    __tablename__ = "command_uses"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    repo_full_name: Mapped[str] = mapped_column(StoredString(200))
    login: Mapped[str] = mapped_column(StoredString(100))  # lower-case
    commands: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_command_uses_repo_login_at", "repo_full_name", "login", "at"),)


class InstallationRepository(Base):
    """A repository an installation was given (`installation`, `installation_repositories`)."""

    __tablename__ = "installation_repositories"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    installation_id: Mapped[int] = mapped_column(BigInteger)
    repo_full_name: Mapped[str] = mapped_column(StoredString(200))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("installation_id", "repo_full_name"),)
