"""API tokens, panel users, the audit log."""

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Identity, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from raiox.models.base import Base, created_at, uuid_pk


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(120))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of a 256-bit random token
    prefix: Mapped[str] = mapped_column(String(16))  # first characters, to recognise it in lists
    created_at: Mapped[datetime] = created_at()
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # what it may do (raiox.kit.tokens.SCOPES; "all": everything, the default and every token made before 0013)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(20)), default=lambda: ["all"])


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = uuid_pk()
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)  # argon2id
    role: Mapped[str] = mapped_column(String(20))  # reviewer | admin
    active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # carried in the panel's session cookie; logout bumps it, so every cookie issued before stops working
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = created_at()


class LoginLock(Base):
    """Failed panel logins per account AND source address: a source that fails RAIOX_ADMIN_MAX_FAILED_LOGINS times
    is locked out of that account (the account itself locks only after RAIOX_ADMIN_MAX_FAILED_LOGINS_ACCOUNT
    failures from every source), so nobody can lock an operator out of the panel by failing logins in their name."""

    __tablename__ = "login_locks"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    source: Mapped[str] = mapped_column(String(64), primary_key=True)  # the client address
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # the account signed in from this source then (its lock does not apply here for 30 days)
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginThrottle(Base):
    """Failed panel logins per source address, whatever the account (unknown ones included), in the current window:
    an address that fails `views_auth.IP_MAX_FAILURES` times within `IP_WINDOW_S` is refused every login until
    `locked_until`. In the database, so that every panel process counts the same failures."""

    __tablename__ = "login_throttle"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)  # `auth.login_source`: an IPv6 client's /64
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """Every write, by whom: shown on the case page and kept for accountability."""

    __tablename__ = "audit_log"
    # the panel's Auditoria page and `raiox audit list`: newest first, by day, by what was acted on (0020)
    __table_args__ = (Index("ix_audit_log_created_at", "created_at"), Index("ix_audit_log_target", "target"))

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(80))
    case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    target: Mapped[str | None] = mapped_column(String(300))
    details: Mapped[dict] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = created_at()
