"""Implant systems, their reference images and the embeddings of those images (one row per model)."""

import re
import unicodedata
import uuid
from datetime import datetime

from pgvector.sqlalchemy import Vector
from sqlalchemy import BigInteger, Boolean, ForeignKey, Identity, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from raiox.models.base import EMBEDDING_DIM, Base, created_at, updated_at, uuid_pk


# whitespace a name may hold: what Python's \s matches (Unicode's spaces: no-break, thin...), and the zero-width space
# and byte-order mark it does not
_SPACES = re.compile("[\\s\u200b\ufeff]+")
_ACCENTS = re.compile("[\u0300-\u036f]")  # combining diacritical marks (what NFD splits off an accented letter)


def name_key(text: str) -> str:
    """The key under which two manufacturers (or system names) are the same: letter case, accents and spaces aside
    ("Cone  morse " is "Cone Morse", "Conexão" "conexao", "ØSTER" "øster"): Unicode case folding, accents dropped,
    whitespace collapsed and trimmed. Computed here, not by the database (PostgreSQL's lower() of a non-ASCII letter
    follows the database's LC_CTYPE: under "C" it leaves "Ø" as it is), and stored beside the names
    (`manufacturer_key`, `name_key`), on which the catalog's unique index `uq_implant_systems_name_key` is built
    (migration 0023), so the database refuses a look-alike too."""
    folded = unicodedata.normalize("NFD", unicodedata.normalize("NFD", text).casefold())
    return _SPACES.sub(" ", _ACCENTS.sub("", folded)).strip()


NAME_KEY_INDEX = "uq_implant_systems_name_key"


class ImplantSystem(Base):
    __tablename__ = "implant_systems"
    # manufacturer + name: unique as typed, and (the index) letter case, accents and spaces aside
    __table_args__ = (UniqueConstraint("manufacturer", "name"),)

    id: Mapped[str] = mapped_column(String(120), primary_key=True)  # stable slug; demo: spec id
    manufacturer: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    # `name_key` of each, set whenever the name is (`_keyed`; `catalog.repository.upsert_system` for its insert): a
    # writer in SQL gives them too
    manufacturer_key: Mapped[str] = mapped_column(Text)
    name_key: Mapped[str] = mapped_column(Text)
    connection: Mapped[str | None] = mapped_column(String(80))
    body_shape: Mapped[str | None] = mapped_column(String(80))
    attributes: Mapped[dict] = mapped_column(JSONB, default=dict)  # diameters, lengths, platform...
    spec: Mapped[dict | None] = mapped_column(JSONB)  # raiox.synth geometry spec, when known
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()

    images: Mapped[list["ReferenceImage"]] = relationship(back_populates="system", lazy="raise")

    @validates("manufacturer", "name")
    def _keyed(self, field: str, value: str | None) -> str | None:
        setattr(self, f"{field}_key", None if value is None else name_key(value))
        return value


Index(NAME_KEY_INDEX, ImplantSystem.manufacturer_key, ImplantSystem.name_key, unique=True)


class ReferenceImage(Base):
    __tablename__ = "reference_images"
    __table_args__ = (UniqueConstraint("system_id", "sha256"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    system_id: Mapped[str] = mapped_column(ForeignKey("implant_systems.id", ondelete="CASCADE"), index=True)
    # the stored picture, content-addressed: a copy without the file's metadata (`raiox.vision.metadata_free`; older
    # references may hold the file itself: `metadata_free` false)
    storage_key: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64), index=True)  # of the file as given: what a re-import recognises
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(40), default="import")  # import | demo | case | upload
    origin: Mapped[str | None] = mapped_column(Text)  # file path, URL or case image id it came from
    box: Mapped[list | None] = mapped_column(JSONB)  # fixture box used for the embedding
    # localiser that placed or last confirmed `box` (`vision.detect.localiser_id`); None: unknown or no box
    located_by: Mapped[str | None] = mapped_column(String(40))
    # the stored object is a metadata-free copy (every store since migration 0018 says so); false: it may be the file
    # itself, with its metadata, until `raiox catalog scrub-references` replaces it (raiox.catalog.scrub)
    metadata_free: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # the object a scrub replaced, deleted after the change is committed (NULL once deleted or kept for another user)
    replaced_key: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = created_at()

    system: Mapped[ImplantSystem] = relationship(back_populates="images", lazy="raise")


class ReferenceEmbedding(Base):
    """One vector per (reference image, model): searches filter on model_id, never mixing models."""

    __tablename__ = "reference_embeddings"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    reference_image_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("reference_images.id", ondelete="CASCADE"))
    system_id: Mapped[str] = mapped_column(ForeignKey("implant_systems.id", ondelete="CASCADE"), index=True)
    model_id: Mapped[str] = mapped_column(String(120))
    embedding = mapped_column(Vector(EMBEDDING_DIM), nullable=False)
    created_at: Mapped[datetime] = created_at()

    __table_args__ = (UniqueConstraint("reference_image_id", "model_id"),)
