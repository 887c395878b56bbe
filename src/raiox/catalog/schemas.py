"""API shapes of the catalog: the per-implant identification structure (shared with case images)
and the implant system listing."""

from pydantic import BaseModel, Field


class DifferenceOut(BaseModel):
    field: str = Field(description="Spec field (the geometry spec's path, e.g. connection.cone_angle_deg)")
    value: bool | int | float | str = Field(description="This candidate's value")
    first: bool | int | float | str = Field(description="The first candidate's value")


class CandidateOut(BaseModel):
    system: str = Field(description="Stable id of the implant system (demo systems: the spec id)")
    manufacturer: str
    name: str
    score: float = Field(description="Mean cosine similarity of the system's two closest reference images (-1..1), "
                         "plus the connection, feature and thread readers' re-rank bonuses (<= 0) "
                         "when they read the fixture")
    differs_from_first: list[DifferenceOut] | None = Field(
        default=None, description="For a candidate after the first that is a look-alike of it (their specs differ in "
        "at most two parts: connection, thread, apex, collar, body), the design fields they differ in (empty: the same "
        "design; sizes are not compared; raiox.catalog.lookalike). Absent for the first, for unrelated systems and "
        "where either has no spec")


class ImplantOut(BaseModel):
    box: list[list[float]] = Field(description="Four [x, y] corners; the first two on the platform edge")
    confidence: float = Field(description="Detector confidence (0..1)")
    candidates: list[CandidateOut] = Field(description="Most similar systems, best first")
    connection: dict[str, float] | None = Field(
        default=None, description="The connection reader's probability of each connection class (external_hex, "
        "internal_hex, tri_channel, conical_<angle>); candidates whose spec names a connection were re-ranked by it. "
        "Absent when the reader is switched off")
    features: dict[str, dict[str, float]] | None = Field(
        default=None, description="The design-feature reader's probability of each value of each feature it reads "
        "from the fixture's embedding (apex_shape, apex_hole, flutes, profile, leads, collar, tapered, progressive); "
        "candidates whose spec names them were re-ranked by it. Absent when the reader is off or does not read this "
        "embedding model's vectors")
    thread_turns: float | None = Field(
        default=None, description="The fixture's length over its thread pitch, counted on its silhouette "
        "(raiox.vision.threads): candidates whose spec names a pitch were re-ranked by how well one of their line's "
        "lengths fits it. Absent when the box is too short to count")


class IdentifyOut(BaseModel):
    implants: list[ImplantOut] = Field(description="One entry per implant found in the image")
    model_id: str | None = Field(default=None, description="Embedding model that produced the ranking")
    stored: dict | None = Field(default=None, description="Storage key and sha256, when ?store=true")


class SystemOut(BaseModel):
    id: str
    manufacturer: str
    name: str
    connection: str | None = None
    body_shape: str | None = None
    attributes: dict = Field(default_factory=dict)
    active: bool
    reference_images: int = Field(description="Reference images of this system")
    embedded: int = Field(description="Reference images embedded with the current model")


class SystemPage(BaseModel):
    items: list[SystemOut]
    total: int = Field(description="Systems matching the filters, all pages")
    model_id: str
    next_offset: int | None = Field(default=None, description="`offset` of the next page (GET /implants?offset=..., "
                                    "the same filters and limit); null on the last page")
