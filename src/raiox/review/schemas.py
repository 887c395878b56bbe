"""Request and response bodies of the review API."""

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints

from raiox.cases.schemas import RankingOut, case_status

MESSAGE_MAX = 5000  # characters of a message to the dentist or an internal note (API and panel alike)
# characters of the approval's message to the dentist, which the one-page A4 report prints: with four films, nine
# systems and their references a message this long still leaves the page room (tests/review/test_browser.py)
REPORT_MESSAGE_MAX = 1500
OTHER_SYSTEMS_MAX = 8  # other systems one approval can name besides the main one
IMPLANTS_MAX = 60  # implants one approval can map to systems
SystemId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]


class Strict(BaseModel):
    """A decision's body: an unknown (e.g. misspelt) field is refused, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class ImplantSystem(Strict):
    fixture_id: uuid.UUID = Field(description="An implant of the case (its `id` in the case detail)")
    system_id: SystemId = Field(description="The approved system (the main one or one of `other_system_ids`) it is")


class ApproveRequest(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"system_id": "neodent-grand-morse", "message": "Conexão cone morse; confira o torque indicado."},
        {"system_id": "neodent-grand-morse", "other_system_ids": ["straumann-bone-level"], "implants": [
            {"fixture_id": "0b7e4c1a-5d2f-4e8a-9c3b-6f1d2a7e8b90", "system_id": "neodent-grand-morse"},
            {"fixture_id": "5a9d3e2b-1c4f-4b7a-8e6d-2f0c9b1a3d47", "system_id": "straumann-bone-level"}]},
    ]})

    system_id: SystemId = Field(validation_alias=AliasChoices("system_id", "system"),
                                description="Catalog implant system id (stable slug)")
    message: str | None = Field(default=None, max_length=REPORT_MESSAGE_MAX,
                                description="Optional message to the dentist, printed on the one-page report "
                                            f"(at most {REPORT_MESSAGE_MAX} characters)")
    add_to_catalog: bool = Field(default=False, description="Add the case images as references of the system")
    other_system_ids: list[SystemId] = Field(
        default_factory=list, max_length=4 * OTHER_SYSTEMS_MAX,  # the service counts them once repeats are dropped
        description="Other implant systems seen on the films (a patient with implants of several systems), in order;"
                    " delivered to the dentist after the main one. The main system, if repeated, is ignored")
    implants: list[ImplantSystem] = Field(
        default_factory=list, max_length=IMPLANTS_MAX,
        description="Which approved system each implant on the films is (optional; implants left out are not stated)."
                    " The dentist's report draws these implants, numbered, on the films and names their systems")


class MarkRequest(Strict):
    box: list = Field(description="The implant's box in the film's pixels: [x0, y0, x1, y1] (its long axis and "
                                  "platform end are read from the film) or four [x, y] corners, platform edge first",
                      examples=[[300, 90, 340, 300]])


class ContactRequest(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "dra.ana@clinica.com.br"}]})

    email: str = Field(min_length=3, max_length=320, description="The dentist's e-mail the result goes to (a typo in "
                                                                  "the form corrected); `redeliver` then uses it")


class RejectRequest(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"message": "A radiografia está cortada no ápice: envie uma periapical inteira e nítida do implante."}]})

    message: str = Field(min_length=1, max_length=MESSAGE_MAX, description="Message to the dentist (why, what to send)")


class MarkDeliveredRequest(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"message": "Resultado enviado por WhatsApp em 03/12."}]})

    message: str = Field(min_length=1, max_length=MESSAGE_MAX,
                         description="How the result reached the dentist (e.g. sent by phone on 03/12)")


class ImplantSystemOut(BaseModel):
    fixture_id: str
    system_id: str


class DecisionResponse(BaseModel):
    case_id: str
    status: str = case_status()
    decision: str = Field(json_schema_extra={"enum": ["approved", "rejected"]})
    system_id: str | None
    other_system_ids: list[str] = []
    implants: list[ImplantSystemOut] = []
    message: str | None
    reviewed_by: str | None
    reviewed_at: datetime | None = Field(description="When it was decided (as `GET /cases/{id}` gives it)")


class RereadResponse(BaseModel):
    """A case's implants read again (`POST /cases/{id}/reread`). The case detail (`GET /cases/{id}`, scope `cases`)
    has each implant's new candidates; this response carries no personal data."""

    case_id: uuid.UUID
    model_id: str  # the embedder every implant of the case was read with
    implants: int  # implants read again
    ranking: list[RankingOut]  # the case's fused candidates, computed again
