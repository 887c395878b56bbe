"""Result deliveries (outbox): one row per approved case; each channel marks itself done once."""

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from raiox.models.base import Base, created_at, updated_at, uuid_pk


class Delivery(Base):
    __tablename__ = "deliveries"

    id: Mapped[uuid.UUID] = uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    jotform_done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    email_message_id: Mapped[str | None] = mapped_column(String(300))  # fixed before sending: idempotency
    # handed to the SMTP server (before the send; cleared when the server refused it): with no `email_sent_at`, the
    # server may have accepted it before its recording failed, and no retry sends it again (migration 0017)
    email_attempted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    email_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()
