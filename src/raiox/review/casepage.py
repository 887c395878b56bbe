"""What the case page shows: images with their fixtures and per-image candidates, the fused ranking,
confidence labels, the audit log and the delivery state.

Confidence labels come from how far the first candidate of a ranking leads the runner-up: `alta` by
RAIOX_CONFIDENCE_MARGIN_HIGH (default 0.05), `média` by RAIOX_CONFIDENCE_MARGIN_MEDIUM (0.02), and only
when its similarity reaches RAIOX_CONFIDENCE_MEDIUM (0.70); every other candidate is `baixa`. The wrong
answers of the matcher are mostly look-alike siblings scored almost as high as the right system, so the
lead says far more than the similarity (demo-catalog evaluation: a lead of 0.05 keeps 57 % of the first
answers at 96 % precision, a similarity of 0.85 keeps 37 % at 87 %; docs/benchmarks.md, session 12). A lone
candidate is labelled by its similarity: `alta` from RAIOX_CONFIDENCE_HIGH (0.85), `média` from
RAIOX_CONFIDENCE_MEDIUM. The page warns when no candidate reaches `alta`.
"""

import re
import uuid
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from raiox.cases import repository as cases_repo
from raiox.cases import service as cases
from raiox.cases.numbering import implant_numbers
from raiox.catalog import repository as catalog_repo
from raiox.delivery import repository as delivery_repo
from raiox.kit.logging import get_logger
from raiox.kit.settings import get_settings
from raiox.models import CaseImage, CaseStatus, Fixture, ImplantSystem
from raiox.review import repository
from raiox.review.rejection import failed_case_message

log = get_logger(__name__)


def confidence(score: float, runner_up: float | None = None) -> str:
    """The label of a ranking's first candidate (``runner_up``: the second one's score, None when alone)."""
    settings = get_settings()
    if score < settings.confidence_medium:
        return "low"
    if runner_up is None:
        return "high" if score >= settings.confidence_high else "medium"
    lead = score - runner_up
    if lead >= settings.confidence_margin_high:
        return "high"
    return "medium" if lead >= settings.confidence_margin_medium else "low"


def labelled(candidates: list["Candidate"]) -> list["Candidate"]:
    """CANDIDATES with their confidence labels: the best scored one by its lead, the others `low`."""
    ordered = sorted(candidates, key=lambda c: -c.score)
    for c in candidates:
        c.confidence = "low"
    if ordered:
        ordered[0].confidence = confidence(ordered[0].score, ordered[1].score if len(ordered) > 1 else None)
    return candidates


@dataclass
class Candidate:
    rank: int
    system: ImplantSystem
    score: float
    reference_id: uuid.UUID | None
    fixture_id: uuid.UUID | None = None  # the implant in the X-ray this candidate is compared with
    confidence: str = "low"  # set for a whole ranking by `labelled`


@dataclass
class ImageView:
    image: CaseImage
    fixtures: list[tuple[Fixture, list[Candidate]]] = field(default_factory=list)
    numbers: dict[uuid.UUID, int] = field(default_factory=dict)  # fixture id -> its number (raiox.cases.numbering)

    def number(self) -> None:
        """Number the film's implants left to right and list them in that order."""
        self.numbers = implant_numbers(f for f, _c in self.fixtures)
        self.fixtures.sort(key=lambda fc: self.numbers[fc[0].id])


async def build(session: AsyncSession, case_id: uuid.UUID) -> dict:
    case = await cases.get_or_404(session, case_id)
    images = await repository.case_images(session, case.id)
    fixtures = await repository.fixtures_with_results(session, [i.id for i in images])
    ranking = await repository.ranking(session, case.id)
    ids = {r.system_id for r in ranking} | {r.system_id for _f, rs in fixtures for r in rs}
    ids |= {case.approved_system_id} if case.approved_system_id else set()
    ids |= set(case.other_system_ids or [])
    systems = await catalog_repo.systems_by_id(session, ids)
    best_ref: dict[str, tuple[float, uuid.UUID]] = {}
    best_fixture: dict[str, tuple[float, uuid.UUID]] = {}
    for fixture, results in fixtures:
        for r in results:
            if r.reference_image_id and r.score > best_ref.get(r.system_id, (-2.0, None))[0]:
                best_ref[r.system_id] = (r.score, r.reference_image_id)
            if r.score > best_fixture.get(r.system_id, (-2.0, None))[0]:
                best_fixture[r.system_id] = (r.score, fixture.id)
    fallback = await repository.first_reference(session, ids - set(best_ref))

    def ref(system_id: str) -> uuid.UUID | None:
        return best_ref[system_id][1] if system_id in best_ref else fallback.get(system_id)

    fused = labelled([Candidate(r.rank, systems[r.system_id], r.score, ref(r.system_id),
                                best_fixture.get(r.system_id, (0, None))[1])
                      for r in ranking if r.system_id in systems])
    views = [ImageView(image) for image in images]
    by_id = {v.image.id: v for v in views}
    for fixture, results in fixtures:
        by_id[fixture.case_image_id].fixtures.append((fixture, labelled([
            Candidate(r.rank, systems[r.system_id], r.score, r.reference_image_id or ref(r.system_id), fixture.id)
            for r in results if r.system_id in systems])))
    for view in views:
        view.number()
    if not fused:  # no fused ranking stored: best score per system over all fixtures
        best: dict[str, Candidate] = {}
        for view in views:
            for _fixture, candidates in view.fixtures:
                for c in candidates:
                    if c.system.id not in best or c.score > best[c.system.id].score:
                        best[c.system.id] = Candidate(0, c.system, c.score, c.reference_id, c.fixture_id)
        fused = labelled(sorted(best.values(), key=lambda c: -c.score))
        for rank, c in enumerate(fused, start=1):
            c.rank = rank
    return {
        "case": case, "images": views, "fused": fused, "mixed": mixed_systems(views),
        "confident": any(c.confidence == "high" for c in fused),
        "approved_system": systems.get(case.approved_system_id) if case.approved_system_id else None,
        "approved_ref": ref(case.approved_system_id) if case.approved_system_id else None,
        "other_systems": [(systems[i], ref(i)) for i in case.other_system_ids or [] if i in systems],
        "other_options": other_options(fused, views),
        "implant_rows": implant_rows(views),
        "implant_map": implant_map(case, views, systems),
        "stale": await stale_reading(session, case, [f for f, _r in fixtures]),
        "audit": await repository.audit_for_case(session, case.id),
        "events": await cases_repo.list_events(session, case.id),
        "delivery": await delivery_repo.get_delivery(session, case.id),
        # decided (or not reviewable): the next case waiting, one click away instead of back through the queue
        "next_case": (None if case.status == CaseStatus.awaiting_review
                      else await repository.next_to_review(session, case.id)),
        "answers": [(label, text) for label, text in flatten_answers(case.answers or {})  # the dentist card has these
                    if text.strip() not in {(v or "").strip() for v in (case.client_name, case.client_email,
                                                                        case.client_phone, case.notes,
                                                                        case.tooth)}],
        # a failed case's rejection starts from each film's problem and what to send (pt-BR: the dentist reads it)
        "reject_draft": failed_case_message(images) if case.status == CaseStatus.failed else "",
        "thresholds": (get_settings().confidence_margin_high, get_settings().confidence_margin_medium,
                       get_settings().confidence_medium),
    }


async def stale_reading(session: AsyncSession, case, fixtures: list) -> dict | None:
    """{older: models, current: model, ready: bool} when implants of a case awaiting review were read by another
    embedder than the current one (`RAIOX_EMBEDDER` switched meanwhile: the panel offers to read them again once
    the catalog has the current model's vectors, `ready`); None otherwise, and when the current embedder cannot be
    loaded (the page still shows)."""
    from raiox.catalog.repository import has_embeddings
    from raiox.review.reread import current_model

    if case.status != CaseStatus.awaiting_review or not fixtures:
        return None
    try:
        current = await current_model()
    except Exception:  # a broken model setting must not hide the case; marking would report it
        log.warning("embedder_unavailable", case_id=str(case.id), exc_info=True)
        return None
    older = sorted({f.model_id for f in fixtures} - {current})
    if not older:
        return None
    return {"older": older, "current": current, "ready": (await has_embeddings(session, current))[1]}


def _firsts(views: list[ImageView]) -> list[tuple[int, int, Candidate]]:
    """(film, implant, first candidate) of every implant with candidates, numbered as the page shows them (from 1)."""
    return [(view.image.position + 1, view.numbers[fixture.id], min(candidates, key=lambda c: c.rank)) for view in views
            for fixture, candidates in view.fixtures if candidates]


def implant_rows(views: list[ImageView]) -> list[tuple[uuid.UUID, int, int, "Candidate | None"]]:
    """(fixture id, film, implant, first candidate) of every implant, for saying which system each one is; empty
    when the case shows fewer than two (one implant is the approved system)."""
    rows = [(fixture.id, view.image.position + 1, view.numbers[fixture.id],
             min(cands, key=lambda c: c.rank) if cands else None)
            for view in views for fixture, cands in view.fixtures]
    return rows if len(rows) > 1 else []


def implant_map(case, views: list[ImageView], systems: dict) -> list[tuple[int, int, ImplantSystem]]:
    """(film, implant, system) the approval says each implant is, in the films' order."""
    mapped = case.implant_systems or {}
    return [(view.image.position + 1, view.numbers[fixture.id], systems[mapped[str(fixture.id)]]) for view in views
            for fixture, _cands in view.fixtures if mapped.get(str(fixture.id)) in systems]


def mixed_systems(views: list[ImageView]) -> list[tuple[int, int, ImplantSystem]]:
    """(film, implant, system) of each implant whose first candidate is not a `low` guess, when those point at more
    than one system: the films show implants of different systems, and an approval sends the dentist one system
    (the panel says so, so that the others reach the dentist in the message). Empty when they agree."""
    sure = [(n, k, first.system) for n, k, first in _firsts(views) if first.confidence != "low"]
    return sure if len({system.id for _n, _k, system in sure}) > 1 else []


def other_options(fused: list[Candidate], views: list[ImageView]) -> list[tuple[ImplantSystem, list[tuple[int, int]]]]:
    """What an approval can name besides the main system, when the case shows more than one implant: each
    implant's first candidate, then the fused ranking's first five; with the (film, implant) each one leads."""
    if sum(len(view.fixtures) for view in views) < 2:
        return []
    options: dict[str, tuple[ImplantSystem, list[tuple[int, int]]]] = {}
    for n, k, first in _firsts(views):
        options.setdefault(first.system.id, (first.system, []))[1].append((n, k))
    for c in fused[:5]:
        options.setdefault(c.system.id, (c.system, []))
    return list(options.values())


# Jotform's compound answers in reading order (jsonb stores object keys shortest first: "last" before "first")
PARTS = ("prefix", "first", "middle", "last", "suffix", "addr_line1", "addr_line2", "city", "state", "postal",
         "country", "area", "phone", "hourSelect", "minuteSelect", "ampm")
DATE = ("day", "month", "year")
QUESTION = re.compile(r"^q\d+_")  # rawRequest's answers; its other keys are form telemetry (path, buildDate...)


def _text(value: object) -> str:
    if isinstance(value, dict):
        present = {k: v for k, v in value.items() if v not in (None, "")}
        if set(DATE) <= present.keys():  # a date answer, as read in Brazil
            return "/".join(str(present[k]) for k in DATE)
        if set(present) == {"area", "phone"}:
            return f"({present['area']}) {present['phone']}"
        ordered = sorted(present, key=lambda k: PARTS.index(k) if k in PARTS else len(PARTS))
        return " ".join(_text(present[k]) for k in ordered)
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return "" if value is None else str(value)


def _label(name: str) -> str:
    """A rawRequest question name as a label: "nomeDentista" / "nome_dentista" -> "Nome dentista"."""
    words = re.sub(r"(?<=[a-zà-ÿ0-9])(?=[A-ZÀ-Þ])", " ", name).replace("_", " ").split()
    text = " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in words)
    return text[:1].upper() + text[1:]


def _order(key: str, value: object) -> tuple[int, str]:
    """Where an answer sits on the form: its `order` (API copies), else its question id (`q<qid>_`, form order)."""
    if isinstance(value, dict) and str(value.get("order", "")).isdigit():
        return int(value["order"]), key
    match = re.match(r"^q?(\d+)", key)
    return (int(match.group(1)) if match else 10**6), key


def flatten_answers(answers: dict) -> list[tuple[str, str]]:
    """Form answers as (label, text) rows in the form's order: API copies carry {text, answer, order}; rawRequest
    keys are `q<qid>_<name>` (no label: the name is spelt out)."""
    rows = []
    for key, value in sorted(answers.items(), key=lambda kv: _order(*kv)):
        if isinstance(value, dict) and "answer" in value:
            label, text = str(value.get("text") or value.get("name") or key), _text(value.get("answer"))
        elif QUESTION.match(key):
            label, text = _label(key.split("_", 1)[-1]), _text(value)
        else:
            continue
        if text and not text.startswith(("http://", "https://")):
            rows.append((label, text[:2000]))
    return rows
