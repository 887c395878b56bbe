"""SQLAlchemy models (the schema); imported here so Alembic and mappers see every table."""

from raiox.models.access import ApiToken, AuditEntry, LoginLock, LoginThrottle, User
from raiox.models.base import EMBEDDING_DIM, Base
from raiox.models.cases import Case, CaseEvent, CaseImage, CaseRanking, CaseStatus, Fixture, FixtureResult, ImageStatus
from raiox.models.catalog import ImplantSystem, ReferenceEmbedding, ReferenceImage
from raiox.models.delivery import Delivery

__all__ = [
    "EMBEDDING_DIM", "ApiToken", "AuditEntry", "Base", "Case", "CaseEvent", "CaseImage", "CaseRanking",
    "CaseStatus", "Delivery", "Fixture", "FixtureResult", "ImageStatus", "ImplantSystem", "ReferenceEmbedding",
    "LoginLock", "LoginThrottle", "ReferenceImage", "User",
]
