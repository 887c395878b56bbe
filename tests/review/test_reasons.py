"""Reasons recorded in English (case history, failure reasons, image errors) read in pt-BR in the panel."""

import json
import re

import pytest

from raiox.review import i18n
from raiox.review.reasons import PATTERNS, reason_parts, reason_text

RECORDED = {  # what the intake, processing and delivery code records -> what the operator reads
    "3 file(s) submitted": "3 arquivos enviados",
    "1 file(s) submitted": "1 arquivo enviado",
    "processing started": "processamento iniciado",
    "processing attempt 2": "tentativa de processamento nº 2",
    "retry requested": "nova tentativa solicitada",
    "films not downloaded or not analysed requested again":
        "nova tentativa com as radiografias que falharam ou ficaram sem análise",
    "download of failed films requested":  # the wording recorded before 2026-12-05
        "nova tentativa com as radiografias que falharam ou ficaram sem análise",
    "2 image(s) analysed, 3 implant(s) found": "2 imagens analisadas, 3 implantes encontrados",
    "1 image(s) analysed, 1 implant(s) found": "1 imagem analisada, 1 implante encontrado",
    "1 image(s) analysed, 0 implant(s) found": "1 imagem analisada, 0 implantes encontrados",
    "1 film(s) downloaded again, 2 implant(s) found": "1 radiografia baixada de novo, 2 implantes encontrados",
    "1500 film(s) downloaded again, 1 implant(s) found": "1.500 radiografias baixadas de novo, 1 implante encontrado",
    "no file submitted": "nenhum arquivo enviado no formulário",
    "no image could be downloaded (a.png: upload host answered HTTP 404 for a.png)":
        "nenhuma imagem pôde ser baixada (detalhe técnico: a.png: upload host answered HTTP 404 for a.png)",
    "not an image: unrecognised file format":
        "o arquivo não é uma imagem utilizável (detalhe técnico: unrecognised file format)",
    "processing failed after 6 attempts: storage down":
        "o processamento falhou após 6 tentativas (detalhe técnico: storage down)",
    "1 film(s) downloaded again after the case was decided, 1 not analysed":
        "1 radiografia baixada de novo depois da decisão do caso, 1 não analisada (a decisão foi mantida)",
    "2 film(s) downloaded again after the case was decided, 2 not analysed":
        "2 radiografias baixadas de novo depois da decisão do caso, 2 não analisadas (a decisão foi mantida)",
    "processing failed after 1 attempts: storage down":
        "o processamento falhou após 1 tentativa (detalhe técnico: storage down)",
    "3 film(s) downloaded again and analysed, 1 duplicate(s) skipped, 4 implant(s) found":
        "3 radiografias baixadas de novo e analisadas, 1 cópia de radiografia já analisada ignorada, "
        "4 implantes encontrados",
    "1 film(s) downloaded again and analysed, 2 duplicate(s) skipped, 1 implant(s) found":
        "1 radiografia baixada de novo e analisada, 2 cópias de radiografias já analisadas ignoradas, "
        "1 implante encontrado",
    "2 film(s) downloaded again after the case was decided, 1 not analysed, 1 duplicate(s) skipped":
        "2 radiografias baixadas de novo depois da decisão do caso, 1 não analisada, 1 cópia de "
        "radiografia já analisada ignorada (a decisão foi mantida)",
    # a retry whose films could not all be downloaded again
    "1 film(s) could not be downloaded again": "1 radiografia não pôde ser baixada de novo",
    "3 film(s) could not be downloaded again": "3 radiografias não puderam ser baixadas de novo",
    "2 film(s) downloaded again, 1 implant(s) found, 1 film(s) could not be downloaded again":
        "2 radiografias baixadas de novo, 1 implante encontrado, 1 não pôde ser baixada",
    "1 film(s) downloaded again, 0 implant(s) found, 2 film(s) could not be downloaded again":
        "1 radiografia baixada de novo, 0 implantes encontrados, 2 não puderam ser baixadas",
    "0 film(s) downloaded again and analysed, 1 duplicate(s) skipped, 0 implant(s) found, "
    "1 film(s) could not be downloaded again":
        "0 radiografias baixadas de novo e analisadas, 1 cópia de radiografia já analisada ignorada, "
        "0 implantes encontrados, 1 não pôde ser baixada",
    "not analysed: the case was decided (approved) before this film was analysed":
        "o caso já tinha sido decidido antes da análise desta radiografia (a decisão foi mantida) "
        "(detalhe técnico: approved)",
    # delivery: what is known per channel (Jotform failed or refused; the e-mail may have gone, or failed)
    "jotform: Jotform API 503: Service is unavailable; email: an earlier attempt may have sent the e-mail (the server "
    "was given it, the outcome could not be recorded); check with the dentist, then resend or mark as delivered":
        "o resultado não foi gravado no Jotform (o Jotform não respondeu ou recusou a gravação); não se sabe se o "
        "e-mail ao dentista foi enviado: uma tentativa anterior o entregou ao servidor de e-mail, mas o resultado não "
        "pôde ser registrado, então ele pode ter chegado. Confirme com o dentista; o reenvio tenta o Jotform e manda o "
        "e-mail de novo (detalhe técnico: jotform: Jotform API 503: Service is unavailable; email: an earlier attempt "
        "may have sent the e-mail (the server was given it, the outcome could not be recorded); check with the "
        "dentist, then resend or mark as delivered)",
    "jotform: Jotform API 404: Submission not found; email: an earlier attempt may have sent the e-mail (x)":
        "o Jotform recusou gravar o resultado na submissão (ela pode ter sido apagada no Jotform, ou a chave da API "
        "não tem permissão de escrita); não se sabe se o e-mail ao dentista foi enviado: uma tentativa anterior o "
        "entregou ao servidor de e-mail, mas o resultado não pôde ser registrado, então ele pode ter chegado. "
        "Confirme com o dentista; se o resultado chegou a ele, use “Marcar como entregue” (detalhe técnico: jotform: "
        "Jotform API 404: Submission not found; email: an earlier attempt may have sent the e-mail (x))",
    "jotform: Jotform API 401: not authorized; email: SMTP recipient refused: 550":
        "nem o Jotform nem o e-mail ao dentista receberam o resultado (detalhe técnico: jotform: Jotform API 401: not "
        "authorized; email: SMTP recipient refused: 550)",
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


def test_a_reason_splits_into_its_pt_br_summary_and_its_technical_detail():
    from raiox.review.reasons import reason_parts

    assert reason_parts("no usable image (a.png: not an image: unrecognised file format)", "pt_BR") == (
        "nenhuma imagem utilizável: os arquivos foram baixados, mas nenhum pôde ser lido como radiografia",
        "a.png: not an image: unrecognised file format")
    assert reason_parts("image too small: 40x30 pixels", "pt_BR") == ("imagem pequena demais para análise",
                                                                       "40x30 pixels")
    assert reason_parts("retry requested", "pt_BR") == ("nova tentativa solicitada", None)  # nothing technical
    assert reason_parts("sent again to the dentist", "pt_BR") == ("enviado de novo ao dentista", None)
    assert reason_parts("timed out downloading a.png", "pt_BR") == (
        "o servidor de arquivos do Jotform não entregou o arquivo", "timed out downloading a.png")
    assert reason_parts("too many redirects from a.png", "pt_BR") == (
        "o servidor de arquivos do Jotform não entregou o arquivo", "too many redirects from a.png")
    assert reason_parts("Radiografia ilegível.", "pt_BR") == ("Radiografia ilegível.", None)  # as recorded
    assert reason_parts(None) == ("", None)


TECHNICAL = re.compile(r'>\s*([^<>]+)<details class="technical">'  # the summary, right before its folded detail
                       r"<summary>Detalhes técnicos</summary><code>([^<]*)</code></details>")


async def test_the_case_page_and_queue_show_recorded_reasons_in_pt_br(committed):
    """A failed case's reason, its history and its image errors, as the operator reads them in the panel: the pt-BR
    summary in view, the English technical detail folded under "Detalhes técnicos"."""
    import httpx
    from review_helpers import add_case, add_user
    from sqlalchemy import update
    from test_panel import PASSWORD, login

    from raiox.app import create_app
    from raiox.cases.service import transition
    from raiox.kit.db import session_scope
    from raiox.models import CaseImage, CaseStatus

    recorded = "no usable image (a.png: not an image: unrecognised file format)"
    async with session_scope() as session:
        case = await add_case(session, status=CaseStatus.processing)
        await transition(session, case, CaseStatus.failed, actor="system:worker", reason=recorded)
        await session.execute(update(CaseImage).where(CaseImage.case_id == case.id)
                              .values(status="failed", error="not an image: unrecognised file format"))
        undelivered = await add_case(session, status=CaseStatus.delivery_failed, name="Dr. Caio Prado")
        undelivered.failure_reason = "jotform: Jotform API 503: Service is unavailable"
        await add_user(session, "rev@example.com", PASSWORD, "reviewer")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://testserver") as http:
        await login(http, "rev@example.com")
        page, queue = (await http.get(f"/admin/cases/{case.id}")).text, (await http.get("/admin/?status=failed")).text
        delivery = (await http.get(f"/admin/cases/{undelivered.id}")).text
    readable = "nenhuma imagem utilizável: os arquivos foram baixados, mas nenhum pôde ser lido como radiografia"
    detail = "a.png: not an image: unrecognised file format"
    alert = re.search(r'<div class="alert alert-error" role="alert">(.*?)</div>', page, re.S).group(1)
    assert TECHNICAL.search(alert).groups() == (readable, detail)
    history = re.search(r'<ol class="audit">(.*?)</ol>', page, re.S).group(1)
    assert TECHNICAL.search(history).groups() == (readable, detail)
    assert f'<div class="note">{readable}<details class="technical">' in history
    assert ('<span class="muted">— o arquivo não é uma imagem utilizável</span><details class="technical">'
            "<summary>Detalhes técnicos</summary><code>unrecognised file format</code></details>") in page
    assert ("<small>Motivo: " + readable + "</small><details class=\"technical\"><summary>Detalhes técnicos</summary>"
            f"<code>{detail}</code></details>") in queue
    for html in (page, queue):  # the detail never inside the Portuguese sentence
        assert "detalhe técnico:" not in html and "no usable image (" not in html
    assert TECHNICAL.search(delivery).groups() == (
        "o resultado não foi gravado no Jotform (o Jotform não respondeu ou recusou a gravação); o e-mail ao dentista, "
        "se configurado, foi enviado. O reenvio tenta só o Jotform", "jotform: Jotform API 503: Service is unavailable")


def test_who_did_it_reads_as_a_role_a_person_or_a_token():
    from raiox.review.reasons import actor_text

    assert actor_text("system:worker", "pt_BR") == "processamento automático"
    assert actor_text("jotform:webhook", "pt_BR") == "formulário (Jotform)"
    assert actor_text("system:review", "pt_BR") == "sistema, após a decisão"  # scheduled the delivery
    assert actor_text("user:ana@example.com", "pt_BR") == "ana@example.com"
    assert actor_text("token:integracao", "pt_BR") == "API (integracao)"
    assert actor_text("cli:raiox cases purge", "pt_BR") == "linha de comando (raiox cases purge)"
    assert actor_text("system:retention", "pt_BR") == "remoção automática (retenção de dados)"
    assert actor_text(None) == ""


def test_a_delivery_failure_reads_in_pt_br():
    recorded = "jotform: Jotform API 503: Service is unavailable; email: SMTP refused"
    assert reason_text(recorded, "pt_BR") == ("nem o Jotform nem o e-mail ao dentista receberam o resultado "
                                              f"(detalhe técnico: {recorded})")
    # one channel failed: the operator reads which, and that a resend tries only that one
    smtp = 'email: SMTP message refused: 550 b"mailbox unavailable"'
    assert reason_parts(smtp, "pt_BR") == ("o e-mail ao dentista não foi enviado (o servidor de e-mail falhou ou "
                                           "recusou a mensagem); o Jotform, se configurado, recebeu o resultado. O "
                                           "reenvio tenta só o e-mail", smtp)
    jotform = "jotform: Jotform API 503: Service is unavailable"
    summary, detail = reason_parts(jotform, "pt_BR")
    assert summary.startswith("o resultado não foi gravado no Jotform") and "tenta só o Jotform" in summary
    assert detail == jotform
    uncertain = "jotform: Jotform API 503: x; email: an earlier attempt may have sent the e-mail (...); check"
    summary = reason_parts(uncertain, "pt_BR")[0]  # each channel as known: Jotform failed, the e-mail may have gone
    assert summary.startswith("o resultado não foi gravado no Jotform") and "não se sabe se o e-mail" in summary
    assert "entrega do resultado falhou" not in summary
    # a submission deleted in Jotform
    deleted = "jotform: Jotform API 401: You're not authorized to use (/submission-id)"
    shown = reason_text(deleted, "pt_BR")
    assert "pode ter sido apagada no Jotform" in shown and "Marcar como entregue" in shown and deleted in shown


@pytest.mark.parametrize(("score", "shown"), [(0.874, "87%"), (-0.31, "0%"), (-0.004, "0%"), (1.0, "100%")])
def test_similarity_is_shown_between_0_and_100_percent(score, shown):
    from raiox.review.panel import percent

    assert percent(score) == shown


@pytest.mark.parametrize(("counts", "recorded"), [
    ((2, 0, 3, 0), "2 film(s) downloaded again, 3 implant(s) found"),
    ((0, 0, 0, 2), "2 film(s) could not be downloaded again"),
    ((1, 0, 0, 1), "1 film(s) downloaded again, 0 implant(s) found, 1 film(s) could not be downloaded again"),
    ((0, 1, 0, 1), "0 film(s) downloaded again and analysed, 1 duplicate(s) skipped, 0 implant(s) found, "
                   "1 film(s) could not be downloaded again"),
])
def test_a_retry_s_history_entry_says_the_films_not_downloaded_again(counts, recorded):
    """What `intake.refetch` records for (films analysed, copies skipped, implants found, films refused again) is a
    reason the panel knows (never "0 film(s) downloaded again" for a retry whose films all failed)."""
    from raiox.intake.refetch import history_reason
    from raiox.review.reasons import reason_match

    assert history_reason(*counts) == recorded
    assert reason_match(recorded) is not None and "film(s)" not in reason_text(recorded, "pt_BR")
