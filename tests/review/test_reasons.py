"""Reasons recorded in English (case history, failure reasons, image errors) read in pt-BR in the panel."""

import json

import pytest

from raiox.review import i18n
from raiox.review.reasons import PATTERNS, reason_text

RECORDED = {  # what the intake, processing and delivery code records -> what the operator reads
    "3 file(s) submitted": "3 arquivo(s) enviado(s)",
    "processing started": "processamento iniciado",
    "processing attempt 2": "tentativa de processamento nº 2",
    "retry requested": "nova tentativa solicitada",
    "2 image(s) analysed, 3 implant(s) found": "2 imagem(ns) analisada(s), 3 implante(s) encontrado(s)",
    "no file submitted": "nenhum arquivo enviado no formulário",
    "no image could be downloaded (a.png: upload host answered HTTP 404 for a.png)":
        "nenhuma imagem pôde ser baixada (detalhe técnico: a.png: upload host answered HTTP 404 for a.png)",
    "not an image: unrecognised file format":
        "o arquivo não é uma imagem utilizável (detalhe técnico: unrecognised file format)",
    "processing failed after 6 attempts: storage down":
        "o processamento falhou após 6 tentativas (detalhe técnico: storage down)",
    # the catalog upload's report
    "duplicate of upload/a.png": "a mesma imagem que upload/a.png, ignorada",
    "same image already in system neo-cm": "a mesma imagem já é referência do sistema neo-cm",
    "unreadable: disk full": "não foi possível ler o arquivo (detalhe técnico: disk full)",
}


@pytest.mark.parametrize("recorded", sorted(RECORDED))
def test_known_reasons_read_in_pt_br_with_their_detail(recorded):
    assert reason_text(recorded, "pt_BR") == RECORDED[recorded]


def test_every_pattern_has_its_pt_br_message_with_the_pattern_fields():
    catalog = json.loads((i18n.FOLDER / "pt_BR.json").read_text(encoding="utf-8"))
    for pattern, message_id in PATTERNS:
        assert message_id in catalog, message_id
        fields = set(pattern.groupindex)
        catalog[message_id].format(**{name: "x" for name in fields})  # every placeholder is a named group


def test_unknown_text_and_operator_messages_stay_as_recorded():
    assert reason_text("Radiografia ilegível, envie outra.", "pt_BR") == "Radiografia ilegível, envie outra."
    assert reason_text(None) == "" and reason_text("") == ""
    assert reason_text("a {detail} with braces", "pt_BR") == "a {detail} with braces"


async def test_the_case_page_and_queue_show_recorded_reasons_in_pt_br(committed):
    """A failed case's reason, its history and its image errors, as the operator reads them in the panel."""
    import httpx
    from review_helpers import add_case, add_user
    from test_panel import PASSWORD, login

    from raiox.app import create_app
    from raiox.cases.service import transition
    from raiox.kit.db import session_scope
    from raiox.models import CaseStatus

    async with session_scope() as session:
        case = await add_case(session, status=CaseStatus.processing)
        await transition(session, case, CaseStatus.failed, actor="system:worker",
                         reason="no usable image (a.png: not an image: unrecognised file format)")
        await add_user(session, "rev@example.com", PASSWORD, "reviewer")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://testserver") as http:
        await login(http, "rev@example.com")
        page, queue = (await http.get(f"/admin/cases/{case.id}")).text, (await http.get("/admin/?status=failed")).text
    readable = "nenhuma imagem utilizável: os arquivos foram baixados"
    assert readable in page and readable in queue
    assert "a.png: not an image: unrecognised file format" in page  # the technical detail stays
    assert "no usable image (" not in page and "no usable image (" not in queue


def test_who_did_it_reads_as_a_role_a_person_or_a_token():
    from raiox.review.reasons import actor_text

    assert actor_text("system:worker", "pt_BR") == "processamento automático"
    assert actor_text("jotform:webhook", "pt_BR") == "formulário (Jotform)"
    assert actor_text("system:review", "pt_BR") == "sistema, após a decisão"  # scheduled the delivery
    assert actor_text("user:ana@example.com", "pt_BR") == "ana@example.com"
    assert actor_text("token:integracao", "pt_BR") == "API (integracao)"
    assert actor_text(None) == ""


def test_a_delivery_failure_reads_in_pt_br():
    recorded = "jotform: Jotform API 503: Service is unavailable; email: SMTP refused"
    assert reason_text(recorded, "pt_BR") == f"a entrega do resultado falhou (detalhe técnico: {recorded})"
    # a submission deleted in Jotform
    deleted = "jotform: Jotform API 401: You're not authorized to use (/submission-id)"
    shown = reason_text(deleted, "pt_BR")
    assert "pode ter sido apagada no Jotform" in shown and "Marcar como entregue" in shown and deleted in shown


@pytest.mark.parametrize(("score", "shown"), [(0.874, "87%"), (-0.31, "0%"), (-0.004, "0%"), (1.0, "100%")])
def test_similarity_is_shown_between_0_and_100_percent(score, shown):
    from raiox.review.panel import percent

    assert percent(score) == shown
