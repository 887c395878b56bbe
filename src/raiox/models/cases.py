"""Cases (one per Jotform submission), their images, the fixtures found and the ranked results."""

import enum
import uuid
from datetime import datetime

from pgvector.sqlalchemy import Vector
from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from raiox.models.base import EMBEDDING_DIM, Base, created_at, updated_at, uuid_pk


class CaseStatus(enum.StrEnum):
    received = "received"
    processing = "processing"
    awaiting_review = "awaiting_review"
    approved = "approved"
    rejected = "rejected"
    delivered = "delivered"
    delivery_failed = "delivery_failed"
    failed = "failed"


class ImageStatus(enum.StrEnum):
    pending = "pending"
    stored = "stored"
    processed = "processed"
    invalid = "invalid"  # not an image / undecodable: reason in `error`
    failed = "failed"  # could not be downloaded after retries
    skipped = "skipped"  # stored after its case was decided: kept (viewable), never analysed; reason in `error`


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[uuid.UUID] = uuid_pk()
    jotform_submission_id: Mapped[str] = mapped_column(String(40), unique=True)
    form_id: Mapped[str | None] = mapped_column(String(40), index=True)
    source: Mapped[str] = mapped_column(String(20), default="webhook")  # webhook | reconcile | api
    client_name: Mapped[str | None] = mapped_column(String(300))
    client_email: Mapped[str | None] = mapped_column(String(320))
    client_phone: Mapped[str | None] = mapped_column(String(80))
    notes: Mapped[str | None] = mapped_column(Text)
    # the tooth or region the dentist names ("36", "região de 46"; RAIOX_JOTFORM_FIELD_MAP "tooth", migration 0019)
    tooth: Mapped[str | None] = mapped_column(String(60))
    answers: Mapped[dict] = mapped_column(JSONB, default=dict)  # rawRequest (or API answers), parsed
    payload: Mapped[dict] = mapped_column(JSONB, default=dict)  # other top-level webhook fields
    status: Mapped[str] = mapped_column(String(30), default=CaseStatus.received, index=True)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    approved_system_id: Mapped[str | None] = mapped_column(ForeignKey("implant_systems.id"))
    # other systems the approval names (implants of several systems on the films), in the reviewer's order
    other_system_ids: Mapped[list[str]] = mapped_column(ARRAY(String(120)), default=list, server_default=text("'{}'"))
    # which approved system each implant is (fixture id -> system id), when the reviewer says it (migration 0011)
    implant_systems: Mapped[dict] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
    # the key the case's report links carry (None: links without one, as before 0014); a new key revokes old links
    report_key: Mapped[str | None] = mapped_column(String(32))
    reviewed_by: Mapped[str | None] = mapped_column(String(320))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    review_message: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # films and personal data removed (data retention: raiox.cases.retention, migration 0015)
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()

    images: Mapped[list["CaseImage"]] = relationship(back_populates="case", lazy="raise", order_by="CaseImage.position")
    events: Mapped[list["CaseEvent"]] = relationship(lazy="raise", order_by="CaseEvent.id")
    ranking: Mapped[list["CaseRanking"]] = relationship(lazy="raise", order_by="CaseRanking.rank")


class CaseEvent(Base):
    """Every status transition (and other case actions), with time and actor."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(30))
    to_status: Mapped[str | None] = mapped_column(String(30))
    actor: Mapped[str] = mapped_column(String(320))  # "system:worker", "user:ana@x", "token:name"
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at()


class CaseImage(Base):
    __tablename__ = "case_images"
    # unique per case on the URL's digest (migration 0009): a btree entry cannot hold a URL over ~2.7 kB
    __table_args__ = (Index("uq_case_images_case_id_url_md5", "case_id", func.md5(text("source_url")), unique=True),)

    id: Mapped[uuid.UUID] = uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    question: Mapped[str | None] = mapped_column(String(200))
    source_url: Mapped[str] = mapped_column(Text)
    filename: Mapped[str | None] = mapped_column(Text)
    storage_key: Mapped[str | None] = mapped_column(String(300))
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int | None] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(String(100))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default=ImageStatus.pending)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()

    case: Mapped[Case] = relationship(back_populates="images", lazy="raise")
    fixtures: Mapped[list["Fixture"]] = relationship(lazy="raise", order_by="Fixture.index")


class Fixture(Base):
    """One implant found in a case image (or drawn by the operator: manual = True)."""

    __tablename__ = "fixtures"
    __table_args__ = (UniqueConstraint("case_image_id", "index"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    case_image_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("case_images.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    box: Mapped[list] = mapped_column(JSONB)  # [[x, y] * 4], platform edge first
    confidence: Mapped[float] = mapped_column(Float)
    manual: Mapped[bool] = mapped_column(default=False)
    model_id: Mapped[str] = mapped_column(String(120))
    embedding = mapped_column(Vector(EMBEDDING_DIM), nullable=False)
    # the connection reader's probabilities, raiox.vision.connection.CLASSES order (None: no reader)
    connection: Mapped[list | None] = mapped_column(JSONB)
    # the design-feature reader's probabilities: {feature: [p per value, raiox.vision.attributes.HEADS order]}
    # (None: no reader, or it does not read this embedder's vectors)
    features: Mapped[dict | None] = mapped_column(JSONB)
    # length over thread pitch counted on the film (raiox.vision.threads; None: box too short, or before migration 0007)
    thread_turns: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = created_at()

    results: Mapped[list["FixtureResult"]] = relationship(lazy="raise", order_by="FixtureResult.rank")


class FixtureResult(Base):
    __tablename__ = "fixture_results"

    fixture_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("fixtures.id", ondelete="CASCADE"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    system_id: Mapped[str] = mapped_column(ForeignKey("implant_systems.id", ondelete="CASCADE"))
    score: Mapped[float] = mapped_column(Float)
    reference_image_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("reference_images.id", ondelete="SET NULL"))


class CaseRanking(Base):
    """The per-case ranking, fusing the evidence of every fixture of every image."""

    __tablename__ = "case_rankings"

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    system_id: Mapped[str] = mapped_column(ForeignKey("implant_systems.id", ondelete="CASCADE"))
    score: Mapped[float] = mapped_column(Float)
    evidence: Mapped[dict] = mapped_column(JSONB, default=dict)  # fixtures supporting it, per-image scores
