"""Delivery against the Jotform stand-in and a local SMTP server (aiosmtpd): each result once."""

import json
import re
from urllib.parse import parse_qsl

import pytest
from fakes.jotform import FORM_ID
from review_helpers import add_case, add_system, settle_jobs
from sqlalchemy import select

from raiox.delivery.service import deliver
from raiox.kit.tokens import create_token
from raiox.kit.db import session_scope
from raiox.models import Case, CaseStatus, Delivery
from raiox.review import service as review


async def _approved_case(system: str = "str-bl", message: str | None = "Conexão confirmada.",
                         email="dentista@example.com", tooth: str | None = None):
    async with session_scope() as session:
        await add_system(session, "neo-cm", "Neodent", "Grand Morse", seed=1)
        await add_system(session, "str-bl", "Straumann", "Bone Level", seed=2)
        case = await add_case(session, submission_id="5812345678901234567", email=email, tooth=tooth,
                              candidates=[("neo-cm", 0.91), ("str-bl", 0.74)])
        await review.approve(session, case.id, system, actor="user:rev@example.com", message=message)
    return case.id


def _smtp(smtp_server) -> dict[str, str]:
    """Settings sending the e-mail to the SMTP stand-in."""
    return {"RAIOX_SMTP_HOST": "127.0.0.1", "RAIOX_SMTP_PORT": str(smtp_server.port), "RAIOX_SMTP_STARTTLS": "false",
            "RAIOX_SMTP_FROM": "Raiox AI <resultado@raiox.example.com>"}


async def _two_systems_case():
    """A case of two films whose implants rank Grand Morse, then Bone Level; and its implants' ids, film by film."""
    from raiox.models import CaseImage, Fixture

    async with session_scope() as session:
        await add_system(session, "neo-cm", "Neodent", "Grand Morse", seed=1)
        await add_system(session, "str-bl", "Straumann", "Bone Level", seed=2)
        case = await add_case(session, submission_id="5812345678901234567", images=2,
                              candidates=[("neo-cm", 0.91), ("str-bl", 0.74)])
        fixtures = (await session.execute(select(Fixture.id).join(CaseImage).where(CaseImage.case_id == case.id)
                                          .order_by(CaseImage.position))).scalars().all()
    return case, [str(f) for f in fixtures]


async def _state(case_id):
    async with session_scope() as session:
        case = await session.get(Case, case_id)
        delivery = (await session.execute(select(Delivery).where(Delivery.case_id == case_id))).scalar_one()
        return case, delivery


async def test_edit_request_has_the_documented_form(committed, delivery_env, jotform):
    case_id = await _approved_case()
    assert await deliver(case_id) == CaseStatus.delivered
    assert len(jotform.requests) == 1
    request = jotform.requests[0]
    assert (request.method, request.path, request.query) == ("POST", "/submission/5812345678901234567", {})
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert headers["apikey"] == "test-jotform-key"  # the key never travels in the URL
    form = dict(parse_qsl(request.body.decode()))
    assert set(form) == {"submission[21]", "submission[22]", "submission[23]", "submission[24]"}
    assert form["submission[21]"] == "Bone Level" and form["submission[22]"] == "Straumann"
    assert form["submission[23]"] == "Conexão confirmada."
    assert form["submission[24]"].startswith("https://raiox.example.com/reports/")
    case, delivery = await _state(case_id)
    assert case.status == CaseStatus.delivered and delivery.status == "delivered"
    assert delivery.jotform_done_at is not None


async def test_429_then_success(committed, delivery_env, jotform):
    case_id = await _approved_case()
    jotform.fail("/submission/", 429, times=1)
    jotform.fail("/submission/", 503, times=1)
    assert await deliver(case_id) == CaseStatus.delivered
    assert len(jotform.requests) == 3
    assert jotform.submissions["5812345678901234567"]["answers"]["21"]["answer"] == "Bone Level"


async def test_permanent_error_fails_with_reason_then_resend(committed, delivery_env, jotform, client):
    case_id = await _approved_case()
    jotform.api_key = "another-key"  # 401: not retried
    assert await deliver(case_id) == CaseStatus.delivery_failed
    case, delivery = await _state(case_id)
    assert len(jotform.requests) == 1
    assert "401" in case.failure_reason and delivery.status == "failed" and delivery.jotform_done_at is None
    jotform.api_key = "test-jotform-key"
    async with session_scope() as session:
        await review.resend(session, case_id, actor="user:admin@example.com")
    assert await deliver(case_id) == CaseStatus.delivered


async def test_retries_exhausted_marks_delivery_failed(committed, delivery_env, jotform):
    delivery_env(RAIOX_DELIVERY_RETRIES="3")
    case_id = await _approved_case()
    jotform.fail("/submission/", 500, times=3)
    assert await deliver(case_id) == CaseStatus.delivery_failed
    assert len(jotform.requests) == 3
    case, _ = await _state(case_id)
    assert "Jotform API 500" in case.failure_reason


async def test_timeout_after_edit_applied_is_not_duplicated(committed, delivery_env, jotform, smtp_server):
    delivery_env(**_smtp(smtp_server), RAIOX_JOTFORM_TIMEOUT_S="0.5")
    case_id = await _approved_case()
    jotform.delay_after_edit("5812345678901234567", 1.5)  # applied; the answer comes after the 0.5 s timeout
    status = await deliver(case_id)
    assert status == CaseStatus.delivered
    edits = jotform.edits["5812345678901234567"]
    assert len(edits) >= 2 and all(e == edits[0] for e in edits)  # retried: the same edit, nothing else
    assert jotform.submissions["5812345678901234567"]["answers"]["21"]["answer"] == "Bone Level"
    assert len(smtp_server.messages) == 1
    assert await deliver(case_id) == "skipped"  # a second run of the job changes nothing
    assert len(jotform.edits["5812345678901234567"]) == len(edits) and len(smtp_server.messages) == 1


async def test_email_received_exactly_once_in_pt_br(committed, delivery_env, jotform, smtp_server):
    delivery_env(**_smtp(smtp_server))
    case_id = await _approved_case()
    jotform.fail("/submission/", 500, times=5)  # Jotform down: e-mail goes, Jotform fails
    assert await deliver(case_id) == CaseStatus.delivery_failed
    async with session_scope() as session:
        await review.resend(session, case_id, actor="user:admin@example.com")
    assert await deliver(case_id) == CaseStatus.delivered  # resend: only Jotform is redone
    assert len(smtp_server.messages) == 1
    rcpt, message = smtp_server.messages[0]
    assert rcpt == ["dentista@example.com"]
    _, delivery = await _state(case_id)
    assert message["Message-ID"] == delivery.email_message_id
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "Sistema de implante identificado: Bone Level" in text and "Straumann" in text
    assert "https://raiox.example.com/reports/" in text


async def test_the_dentists_reply_goes_to_the_reply_to_address_when_one_is_set(
        committed, delivery_env, jotform, smtp_server):
    """The e-mail asks the dentist to reply; a no-reply sender (RAIOX_SMTP_FROM) must not swallow that reply."""
    delivery_env(**_smtp(smtp_server))
    case_id = await _approved_case()
    assert await deliver(case_id) == CaseStatus.delivered
    delivery_env(**_smtp(smtp_server), RAIOX_SMTP_REPLY_TO="Equipe Raiox AI <atendimento@raiox.example.com>")
    async with session_scope() as session:
        await settle_jobs(session)
        await review.redeliver(session, case_id, actor="user:rev@example.com")
    assert await deliver(case_id) == CaseStatus.delivered
    (_, plain), (_, answered) = smtp_server.messages
    assert plain["Reply-To"] is None  # not set: replies go to the sender, as before
    assert answered["Reply-To"].addresses[0].addr_spec == "atendimento@raiox.example.com"
    assert "responda a este e-mail" in answered.get_body(preferencelist=("plain",)).get_content()


async def test_lost_smtp_reply_does_not_send_twice(committed, delivery_env, jotform, smtp_server):
    delivery_env(RAIOX_SMTP_HOST="127.0.0.1", RAIOX_SMTP_PORT=str(smtp_server.port), RAIOX_SMTP_STARTTLS="false",
                 RAIOX_SMTP_FROM="resultado@raiox.example.com", RAIOX_SMTP_TIMEOUT_S="0.5")
    smtp_server.delay_after_accept = 1.5  # message accepted, "250" arrives after the client gave up
    case_id = await _approved_case()
    assert await deliver(case_id) == CaseStatus.delivered
    assert len(smtp_server.messages) == 1


async def test_a_temporary_refusal_of_the_message_is_retried(committed, delivery_env, jotform, smtp_server):
    """451 after DATA means "not accepted, try later": retried (it cannot arrive twice), then delivered."""
    delivery_env(RAIOX_SMTP_HOST="127.0.0.1", RAIOX_SMTP_PORT=str(smtp_server.port), RAIOX_SMTP_STARTTLS="false",
                 RAIOX_SMTP_FROM="resultado@raiox.example.com")
    smtp_server.data_replies = ["451 4.3.0 try again later"]
    case_id = await _approved_case()
    assert await deliver(case_id) == CaseStatus.delivered
    assert len(smtp_server.messages) == 1 and not smtp_server.data_replies


async def test_an_e_mail_whose_sending_could_not_be_recorded_is_not_sent_again_until_the_operator_says(
        committed, delivery_env, jotform, smtp_server, monkeypatch):
    """The server accepted the e-mail, then recording that failed (a database blip): the job's retry must not e-mail
    the dentist a second time; the case waits for the operator (pt-BR reason), whose resend sends it."""
    import psycopg

    from raiox.delivery import service
    from raiox.review.reasons import reason_text

    delivery_env(**_smtp(smtp_server))
    case_id = await _approved_case()
    real_mark = service._mark

    async def blip(case, **values):
        if "email_sent_at" in values:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return await real_mark(case, **values)

    monkeypatch.setattr(service, "_mark", blip)
    with pytest.raises(psycopg.OperationalError):
        await deliver(case_id)
    monkeypatch.setattr(service, "_mark", real_mark)
    assert await deliver(case_id) == CaseStatus.delivery_failed  # the job's retry
    assert len(smtp_server.messages) == 1
    async with session_scope() as session:
        case = await session.get(Case, case_id)
        assert case.failure_reason == service.UNCERTAIN
        assert reason_text(case.failure_reason, "pt_BR").startswith("não se sabe se o e-mail chegou ao dentista")
        await review.resend(session, case_id, actor="user:rev@example.com")
        await settle_jobs(session)
    assert await deliver(case_id) == CaseStatus.delivered
    assert len(smtp_server.messages) == 2


async def test_jotform_failing_while_the_e_mail_may_have_gone_says_so_per_channel_in_the_panel(
        committed, delivery_env, jotform, smtp_server, monkeypatch):
    """Jotform down on both attempts, and the e-mail handed to the server by the first one without its sending being
    recorded: the panel does not say "a entrega do resultado falhou" but what is known of each channel (Jotform did
    not get the result; the e-mail may have reached the dentist), and the delivery line says the e-mail is not
    confirmed (never "e-mail ✓")."""
    import re

    import httpx
    import psycopg
    from review_helpers import add_user
    from test_panel import PASSWORD, login

    from raiox.app import create_app
    from raiox.delivery import service

    delivery_env(**_smtp(smtp_server), RAIOX_DELIVERY_RETRIES="1")
    case_id = await _approved_case()
    jotform.fail("/submission/", 503, times=10)
    real_mark = service._mark

    async def blip(case, **values):
        if "email_sent_at" in values:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return await real_mark(case, **values)

    monkeypatch.setattr(service, "_mark", blip)
    with pytest.raises(psycopg.OperationalError):
        await deliver(case_id)
    monkeypatch.setattr(service, "_mark", real_mark)
    assert await deliver(case_id) == CaseStatus.delivery_failed  # the job's retry: Jotform still down
    case, delivery = await _state(case_id)
    assert case.failure_reason.startswith("jotform: Jotform API 503") and service.UNCERTAIN in case.failure_reason
    assert delivery.email_sent_at is None and delivery.email_attempted_at is not None
    async with session_scope() as session:
        await add_user(session, "rev@example.com", PASSWORD, "reviewer")
    panel = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()),
                              base_url="https://raiox.example.com")  # RAIOX_PUBLIC_URL: the panel's own origin
    async with panel as http:
        assert (await login(http, "rev@example.com")).status_code == 303
        page = (await http.get(f"/admin/cases/{case_id}")).text
    alert = re.search(r'<div class="alert alert-error" role="alert">(.*?)</div>', page, re.S).group(1)
    assert "a entrega do resultado falhou" not in page
    assert "o resultado não foi gravado no Jotform" in alert
    assert "não se sabe se o e-mail ao dentista foi enviado" in alert and "pode ter chegado" in alert
    state = re.search(r'<p class="muted" id="delivery-state">(.*?)</p>', page, re.S).group(1)
    assert "e-mail: envio não confirmado" in state and "✓" not in state


async def test_an_e_mail_the_server_refused_is_sent_by_a_later_attempt(committed, delivery_env, jotform, smtp_server):
    """A refusal means nothing went out: the next attempt (a resend) sends it, with no doubt left behind."""
    delivery_env(**_smtp(smtp_server), RAIOX_DELIVERY_RETRIES="1")
    smtp_server.data_replies = ["554 5.7.1 rejected for policy reasons"]
    case_id = await _approved_case()
    assert await deliver(case_id) == CaseStatus.delivery_failed and not smtp_server.messages
    async with session_scope() as session:
        record = (await session.execute(select(Delivery).where(Delivery.case_id == case_id))).scalar_one()
        assert record.email_attempted_at is None and "554" in record.last_error  # refused: no doubt recorded
        await review.resend(session, case_id, actor="user:rev@example.com")
        await settle_jobs(session)
    assert await deliver(case_id) == CaseStatus.delivered and len(smtp_server.messages) == 1


async def test_an_address_the_mail_format_cannot_carry_fails_at_once_and_names_never_inject(
        committed, delivery_env, jotform, smtp_server):
    """A non-ASCII local part cannot be sent (no SMTPUTF8): delivery_failed with the reason at once, Jotform still
    written; a name holding a line break cannot add a header."""
    delivery_env(RAIOX_SMTP_HOST="127.0.0.1", RAIOX_SMTP_PORT=str(smtp_server.port), RAIOX_SMTP_STARTTLS="false",
                 RAIOX_SMTP_FROM="resultado@raiox.example.com")
    case_id = await _approved_case(email="joão@exemplo.com.br")
    assert await deliver(case_id) == CaseStatus.delivery_failed
    case, delivery = await _state(case_id)
    assert "cannot address the e-mail" in case.failure_reason and delivery.jotform_done_at is not None
    assert smtp_server.messages == []
    async with session_scope() as session:
        injected = await add_case(session, submission_id="777", name="Ana\r\nBcc: evil@example.com",
                                  candidates=[("str-bl", 0.8)])
        await review.approve(session, injected.id, "str-bl", actor="user:rev@example.com")
    assert await deliver(injected.id) == CaseStatus.delivered
    rcpt, message = smtp_server.messages[0]
    assert rcpt == ["dentista@example.com"] and message["Bcc"] is None and "Ana Bcc" in message["To"]
    for n, name in enumerate(("Zé <evil@attacker.com>", "Zé, Maria", 'Dra. "Ana" <b>Souza</b>')):
        jotform.add_submission(FORM_ID, submission_id=f"78{n}")
        async with session_scope() as session:  # a name is a name: never another address, in any reader
            odd = await add_case(session, submission_id=f"78{n}", name=name, candidates=[("str-bl", 0.8)])
            await review.approve(session, odd.id, "str-bl", actor="user:rev@example.com")
        assert await deliver(odd.id) == CaseStatus.delivered
        rcpt, message = smtp_server.messages[-1]
        to = message["To"]
        assert rcpt == ["dentista@example.com"] and [a.addr_spec for a in to.addresses] == ["dentista@example.com"]
        assert to.addresses[0].display_name == name


async def test_rejection_is_delivered_with_the_message(committed, delivery_env, jotform):
    async with session_scope() as session:
        case = await add_case(session, submission_id="777")
        await review.reject(session, case.id, "Envie uma radiografia periapical mais nítida.", actor="user:r@x")
    assert await deliver(case.id) == CaseStatus.delivered
    form = jotform.edits["777"][0]
    assert form["submission[23]"] == "Envie uma radiografia periapical mais nítida."
    assert form["submission[21]"] == "" and form["submission[24]"] == ""


@pytest.mark.parametrize("configured", [False])
async def test_no_channel_is_a_clear_failure(committed, delivery_env, configured):
    delivery_env(RAIOX_JOTFORM_RESULT_FIELDS="{}")
    case_id = await _approved_case(email=None)
    assert await deliver(case_id) == CaseStatus.delivery_failed
    case, _ = await _state(case_id)
    assert "no delivery channel" in case.failure_reason


async def test_approve_api_then_worker_delivers(committed, delivery_env, jotform, run_worker):
    import httpx

    from raiox.app import create_app
    from raiox.kit.tokens import create_token

    async with session_scope() as session:
        await add_system(session, "str-bl", "Straumann", "Bone Level", seed=2)
        case = await add_case(session, submission_id="5812345678901234567", candidates=[("str-bl", 0.9)])
        token = await create_token(session, "ops")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://raiox") as http:
        for _ in range(2):  # a double click: one approval, one delivery job
            response = await http.post(f"/cases/{case.id}/approve", json={"system_id": "str-bl"},
                                       headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200
    await run_worker()
    case_row, delivery = await _state(case.id)
    assert case_row.status == CaseStatus.delivered and delivery.attempts == 1
    assert len(jotform.edits["5812345678901234567"]) == 1


async def test_standalone_admin_app(committed):
    import httpx

    from raiox.review.panel import create_admin_app

    app = create_admin_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin") as http:
        assert (await http.get("/healthz")).status_code == 200
        login = await http.get("/admin/login")
        assert login.status_code == 200 and "Entrar" in login.text
        assert (await http.post("/webhooks/jotform")).status_code == 404  # no webhook on the panel host
        assert (await http.get("/admin/static/htmx.min.js")).status_code == 200
        async with session_scope() as session:  # a value the database refuses: a typed 422 here too, not a 500
            case = await add_case(session, candidates=[])
            auth = {"Authorization": f"Bearer {await create_token(session, 'admin-host')}"}
        refused = await http.post(f"/cases/{case.id}/reject", json={"message": "a\u0000b"}, headers=auth)
        assert refused.status_code == 422 and refused.json()["error"] == "unprocessable"


async def test_every_approved_system_reaches_the_dentist(committed, delivery_env, jotform, smtp_server):
    """Implants of two systems: the e-mail lists both in order; Jotform's `systems` field carries both."""
    fields = {"system": "21", "manufacturer": "22", "message": "23", "report": "24", "systems": "25"}
    delivery_env(**_smtp(smtp_server), RAIOX_JOTFORM_RESULT_FIELDS=json.dumps(fields))
    case, _fixtures = await _two_systems_case()
    async with session_scope() as session:
        await review.approve(session, case.id, "str-bl", actor="user:rev@example.com", other_system_ids=["neo-cm"])
    assert await deliver(case.id) == CaseStatus.delivered
    form = dict(parse_qsl(jotform.requests[0].body.decode()))
    assert form["submission[21]"] == "Bone Level" and form["submission[22]"] == "Straumann"
    assert form["submission[25]"] == "Bone Level (Straumann); Grand Morse (Neodent)"
    _rcpt, message = smtp_server.messages[0]
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "implantes de 2 sistemas" in text
    assert text.index("1. Bone Level (fabricante: Straumann)") < text.index("2. Grand Morse (fabricante: Neodent)")
    html = message.get_body(preferencelist=("html",)).get_content()
    assert html.index("<strong>Bone Level</strong>") < html.index("<strong>Grand Morse</strong>")


async def test_a_delivery_attempt_finishing_after_the_reviewer_marked_the_case_delivered_leaves_it(
        committed, delivery_env, jotform):
    from raiox.delivery.service import _finish

    case_id = await _approved_case()
    jotform.fail("/submission/", 401, times=5)
    assert await deliver(case_id) == CaseStatus.delivery_failed
    async with session_scope() as session:
        await review.mark_delivered(session, case_id, "Enviado por telefone.", actor="user:rev@example.com")
    assert await _finish(case_id, ["jotform: 401"]) == CaseStatus.delivered  # a late attempt does not undo it
    assert await deliver(case_id) == "skipped"
    case, delivery = await _state(case_id)
    assert case.status == CaseStatus.delivered and delivery.status == "manual"


async def test_which_system_each_implant_is_reaches_the_dentist(committed, delivery_env, jotform, smtp_server):
    """The reviewer said which system each numbered implant is: the e-mail lists them by film and number, and
    Jotform's `implants` field carries the same."""
    fields = {"system": "21", "systems": "25", "implants": "26"}
    delivery_env(**_smtp(smtp_server), RAIOX_JOTFORM_RESULT_FIELDS=json.dumps(fields))
    case, fixtures = await _two_systems_case()
    async with session_scope() as session:
        await review.approve(session, case.id, "str-bl", actor="user:rev@example.com", other_system_ids=["neo-cm"],
                             implants={fixtures[1]: "neo-cm", fixtures[0]: "str-bl"})
    assert await deliver(case.id) == CaseStatus.delivered
    form = dict(parse_qsl(jotform.requests[0].body.decode()))
    assert form["submission[26]"] == ("Radiografia 1, implante 1: Bone Level (Straumann); "
                                      "Radiografia 2, implante 1: Grand Morse (Neodent)")
    _rcpt, message = smtp_server.messages[0]
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert text.index("- Radiografia 1, implante 1: Bone Level (Straumann)") < text.index(
        "- Radiografia 2, implante 1: Grand Morse (Neodent)")
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "Radiografia 2, implante 1: <strong>Grand Morse</strong>" in html


async def test_the_submission_gets_the_decision_aid_sentence_and_the_tooth(
        committed, delivery_env, jotform, smtp_server):
    """`disclaimer` carries the e-mail's decision-aid sentence (the same text, one source) with an approved result,
    nothing with a rejection; `tooth` the tooth / region the dentist named. The meanings mapped before keep their
    values, a multi-implant case's `systems` and `implants` included."""
    from raiox.delivery.templates import DISCLAIMER

    fields = {"system": "21", "manufacturer": "22", "message": "23", "report": "24", "status": "27", "systems": "25",
              "implants": "26", "disclaimer": "28", "tooth": "29"}
    delivery_env(**_smtp(smtp_server), RAIOX_JOTFORM_RESULT_FIELDS=json.dumps(fields))
    case, fixtures = await _two_systems_case()
    async with session_scope() as session:
        (await session.get(Case, case.id)).tooth = "região de 36 e 46"
        await review.approve(session, case.id, "str-bl", actor="user:rev@example.com", other_system_ids=["neo-cm"],
                             implants={fixtures[0]: "str-bl", fixtures[1]: "neo-cm"}, message="Conexão confirmada.")
    assert await deliver(case.id) == CaseStatus.delivered
    answers = {qid: answer["answer"] for qid, answer in jotform.submissions[case.jotform_submission_id]["answers"]
               .items() if qid in fields.values()}
    assert answers.pop("24").startswith("https://raiox.example.com/reports/")
    assert answers == {"21": "Bone Level", "22": "Straumann", "23": "Conexão confirmada.", "27": "Aprovado",
                       "25": "Bone Level (Straumann); Grand Morse (Neodent)",
                       "26": "Radiografia 1, implante 1: Bone Level (Straumann); "
                             "Radiografia 2, implante 1: Grand Morse (Neodent)",
                       "28": DISCLAIMER, "29": "região de 36 e 46"}
    text, html = _parts(smtp_server.messages[0][1])
    assert DISCLAIMER.startswith("Este resultado é um apoio à decisão clínica")
    assert DISCLAIMER in text and DISCLAIMER in html  # the e-mail's very sentence

    jotform.add_submission(FORM_ID, submission_id="780")
    async with session_scope() as session:
        rejected = await add_case(session, submission_id="780")
        await review.reject(session, rejected.id, "Radiografia cortada.", actor="user:r@x")
    assert await deliver(rejected.id) == CaseStatus.delivered
    form = jotform.edits["780"][-1]
    assert (form["submission[27]"], form["submission[28]"], form["submission[29]"]) == ("Rejeitado", "", "")
    assert form["submission[23]"] == "Radiografia cortada."


async def test_without_a_mapping_the_implants_field_and_lines_stay_empty(committed, delivery_env, jotform, smtp_server):
    fields = {"system": "21", "implants": "26"}
    delivery_env(**_smtp(smtp_server), RAIOX_JOTFORM_RESULT_FIELDS=json.dumps(fields))
    async with session_scope() as session:
        await add_system(session, "neo-cm", "Neodent", "Grand Morse", seed=1)
        case = await add_case(session, submission_id="5812345678901234567", candidates=[("neo-cm", 0.91)])
        await review.approve(session, case.id, "neo-cm", actor="user:rev@example.com")
    assert await deliver(case.id) == CaseStatus.delivered
    form = dict(parse_qsl(jotform.requests[0].body.decode(), keep_blank_values=True))
    assert form["submission[21]"] == "Grand Morse" and form["submission[26]"] == ""
    text = smtp_server.messages[0][1].get_body(preferencelist=("plain",)).get_content()
    assert "Implantes numerados" not in text


async def test_a_delivered_result_is_sent_again_with_a_new_link_and_the_old_one_stops(
        committed, delivery_env, jotform, smtp_server):
    """The dentist lost the e-mail (or the link expired): "Enviar de novo" edits the submission again and sends a
    new e-mail, with a new report link; the old link then shows the dentist that it was deactivated."""
    import httpx

    from raiox.app import create_app
    from raiox.kit.errors import Conflict, TooManyRequests
    from raiox.models import AuditEntry

    delivery_env(**_smtp(smtp_server))
    case_id = await _approved_case()
    assert await deliver(case_id) == CaseStatus.delivered
    async with session_scope() as session:
        await settle_jobs(session)
        await review.set_client_email(session, case_id, " certo@example.com ", actor="user:rev@example.com")
        await review.redeliver(session, case_id, actor="user:rev@example.com")
    async with session_scope() as session:
        with pytest.raises(Conflict, match="only a delivered result"):  # already on its way again
            await review.redeliver(session, case_id, actor="user:rev@example.com")
    case, delivery = await _state(case_id)
    assert case.status == CaseStatus.approved and delivery.status == "pending" and delivery.email_sent_at is None
    assert await deliver(case_id) == CaseStatus.delivered
    async with session_scope() as session:
        await settle_jobs(session)
        with pytest.raises(TooManyRequests, match="min ago"):  # the dentist is not to be flooded
            await review.redeliver(session, case_id, actor="user:rev@example.com")
    links = [dict(parse_qsl(r.body.decode()))["submission[24]"] for r in jotform.requests]
    assert len(links) == 2 and links[0] != links[1]
    mails = [m.get_body(preferencelist=("plain",)).get_content() for _rcpt, m in smtp_server.messages]
    assert len(mails) == 2 and links[0] in mails[0] and links[1] in mails[1]
    assert "novo envio" not in mails[0] and "os links enviados antes não funcionam mais" in mails[1]
    assert [rcpt for rcpt, _m in smtp_server.messages] == [["dentista@example.com"], ["certo@example.com"]]
    assert smtp_server.messages[0][1]["Message-ID"] != smtp_server.messages[1][1]["Message-ID"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://t") as http:
        old = await http.get(links[0].replace("https://raiox.example.com", ""))
        new = await http.get(links[1].replace("https://raiox.example.com", ""))
    assert old.status_code == 410 and "<h1>Este link de relatório foi desativado</h1>" in old.text
    assert "5812345678901234567" not in old.text  # no protocol on a revoked link (likely in wrong hands)
    assert new.status_code == 200 and "Bone Level" in new.text
    async with session_scope() as session:
        actions = (await session.execute(select(AuditEntry.action).where(AuditEntry.case_id == case_id)
                                         .order_by(AuditEntry.id))).scalars().all()
    assert actions.count("delivery.redeliver") == 1


async def test_the_e_mail_says_what_orders_parts_how_long_the_link_lasts_and_keeps_the_reviewers_lines(
        committed, delivery_env, jotform, smtp_server):
    """The dentist orders parts from the e-mail: connection, platform and the line's diameters in pt-BR decimals, in
    both parts alike; the last day the link works all day (DD/MM/AAAA, São Paulo); the reviewer's line breaks kept and
    his markup shown as typed, never run."""
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from raiox.models import ImplantSystem

    delivery_env(**_smtp(smtp_server))
    case_id = await _approved_case(message="Conexão <b>confirmada</b> & ok\nPeça o pilar <script>x</script>.")
    async with session_scope() as session:
        system = await session.get(ImplantSystem, "str-bl")
        system.attributes = {"platform_mm": 4.1, "diameters": [3.3, 4.1, 4.8]}
    sent = datetime.now(UTC)
    assert await deliver(case_id) == CaseStatus.delivered
    _rcpt, message = smtp_server.messages[0]
    text = message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    html = message.get_body(preferencelist=("html",)).get_content().replace("\r\n", "\n")
    details = "conexão Cone Morse · plataforma 4,1 mm · diâmetros disponíveis 3,3 / 4,1 / 4,8 mm"
    assert f"Características: {details}" in text and f"<td>Características</td><td>{details}</td>" in html.replace(
        '<td style="padding: 4px 12px 4px 0; color: #52606d">', "<td>")
    # the link dies 90 days after it was signed, at the time of day it was sent: the day before is its last full day
    last_days = {(when + timedelta(days=89)).astimezone(ZoneInfo("America/Sao_Paulo")).strftime("%d/%m/%Y")
                 for when in (sent - timedelta(seconds=5), datetime.now(UTC))}
    for part in (text, html):
        assert any(f"(link válido até {day}, inclusive)" in part for day in last_days)
        assert "Em caso de dúvida, responda a este e-mail informando o protocolo." in part
    assert "Conexão <b>confirmada</b> & ok\nPeça o pilar <script>x</script>." in text
    assert ("Conexão &lt;b&gt;confirmada&lt;/b&gt; &amp; ok<br>\nPeça o pilar &lt;script&gt;x&lt;/script&gt;."
            in html)


async def test_a_rejection_e_mail_says_so_in_its_subject_and_gives_the_next_step(
        committed, delivery_env, jotform, smtp_server):
    delivery_env(**_smtp(smtp_server))
    async with session_scope() as session:
        case = await add_case(session, submission_id="777")
        await review.reject(session, case.id, "Radiografia cortada no ápice.\nEnvie uma periapical <inteira>.",
                            actor="user:r@x")
    assert await deliver(case.id) == CaseStatus.delivered
    _rcpt, message = smtp_server.messages[0]
    assert message["Subject"] == "Raiox AI: não foi possível identificar o implante (protocolo 777)"
    text = message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    html = message.get_body(preferencelist=("html",)).get_content().replace("\r\n", "\n")
    for part in (text, html):
        assert "Para uma nova análise, preencha o formulário outra vez e anexe novas radiografias." in part
        assert "Mensagem do revisor:" in part and "link válido" not in part
    assert "Radiografia cortada no ápice.<br>\nEnvie uma periapical &lt;inteira&gt;." in html


def _parts(message) -> tuple[str, str]:
    return tuple(message.get_body(preferencelist=(kind,)).get_content().replace("\r\n", "\n")
                 for kind in ("plain", "html"))


async def test_the_e_mail_names_the_tooth_the_dentist_gave(committed, delivery_env, jotform, smtp_server):
    delivery_env(**_smtp(smtp_server))
    case_id = await _approved_case(tooth="36 <e 37>")
    assert await deliver(case_id) == CaseStatus.delivered
    text, html = _parts(smtp_server.messages[0][1])
    assert "(protocolo 5812345678901234567).\nDente / região informado: 36 <e 37>\n\nSistema de implante" in text
    assert "<p>Dente / região informado: <strong>36 &lt;e 37&gt;</strong></p>" in html
    for sid in ("778", "779"):
        jotform.add_submission(FORM_ID, submission_id=sid)
    async with session_scope() as session:
        rejected = await add_case(session, submission_id="778", tooth="região de 46")
        unnamed = await add_case(session, submission_id="779")
        await review.reject(session, rejected.id, "Radiografia cortada.", actor="user:r@x")
        await review.reject(session, unnamed.id, "Radiografia cortada.", actor="user:r@x")
    assert await deliver(rejected.id) == await deliver(unnamed.id) == CaseStatus.delivered
    for message, said in zip(smtp_server.messages[1:], ("região de 46", None), strict=True):
        text, html = _parts(message[1])
        if said:
            assert f"Dente / região informado: {said}" in text and f"<strong>{said}</strong>" in html
        else:
            assert "Dente / região" not in text and "Dente / região" not in html


async def test_the_e_mail_greets_a_dentist_is_dated_and_says_it_is_a_decision_aid(
        committed, delivery_env, jotform, smtp_server):
    """"Prezado(a) Dr(a). <name>," (a title the dentist typed kept, never doubled), a Date header (RFC 5322: a relay
    need not add one, and spam filters score its absence), and the approval's disclaimer in both parts."""
    from datetime import datetime
    from email.utils import parsedate_to_datetime

    delivery_env(**_smtp(smtp_server))
    case_id = await _approved_case()  # add_case's dentist: "Dra. Ana Souza"
    for n, name in enumerate(("Carlos Lima", "dr. Zé", "", "Drummond Alves")):
        jotform.add_submission(FORM_ID, submission_id=f"79{n}")
        async with session_scope() as session:
            named = await add_case(session, submission_id=f"79{n}", name=name, candidates=[("str-bl", 0.8)])
            await review.reject(session, named.id, "Radiografia cortada.", actor="user:r@x")
        assert await deliver(named.id) == CaseStatus.delivered
    before = datetime.now().astimezone()
    assert await deliver(case_id) == CaseStatus.delivered
    greetings = ["Prezado(a) Dr(a). Carlos Lima,", "Prezado dr. Zé,", "Prezado(a) doutor(a),",
                 "Prezado(a) Dr(a). Drummond Alves,", "Prezada Dra. Ana Souza,"]
    disclaimer = "Este resultado é um apoio à decisão clínica"
    for (_rcpt, message), greeting in zip(smtp_server.messages, greetings, strict=True):
        text, html = _parts(message)
        assert text.startswith(greeting + "\n") and f"<p>{greeting}</p>" in html
        assert "Olá" not in text + html
        sent = parsedate_to_datetime(message["Date"])
        assert sent.tzinfo is not None and abs((sent - before).total_seconds()) < 120
        approved = greeting.startswith("Prezada Dra.")
        assert (disclaimer in text) == (disclaimer in html) == approved  # a rejection gives no result to weigh


async def test_a_failed_case_rejected_through_the_api_reaches_its_dentist(
        committed, delivery_env, jotform, smtp_server):
    """No film could be read: the operator's rejection (the API's, like the panel's) is the one way the dentist learns
    it; it goes through Jotform and e-mail like any rejection. A case in another state is still a 409."""
    import httpx

    from raiox.app import create_app

    delivery_env(**_smtp(smtp_server))
    async with session_scope() as session:
        case = await add_case(session, submission_id="777", status=CaseStatus.failed, images=0)
        case.failure_reason = "no usable image (foto.heic: not an image: HEIC photo)"
        busy = await add_case(session, submission_id="778", status=CaseStatus.processing)
        token = await create_token(session, "ops")
    message = "Não conseguimos abrir o arquivo enviado (HEIC). Envie a radiografia em JPEG ou PNG."
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://raiox") as http:
        for _ in range(2):  # repeated: the same decision, once
            response = await http.post(f"/cases/{case.id}/reject", json={"message": message}, headers=auth)
            assert response.status_code == 200, response.text
            assert response.json()["status"] == CaseStatus.rejected and response.json()["message"] == message
        refused = await http.post(f"/cases/{busy.id}/reject", json={"message": message}, headers=auth)
        assert refused.status_code == 409 and "processing" in refused.json()["detail"]
        assert (await http.post(f"/cases/{case.id}/retry", headers=auth)).status_code == 409
    assert await deliver(case.id) == CaseStatus.delivered
    assert jotform.edits["777"][0]["submission[23]"] == message
    (_rcpt, sent), = smtp_server.messages
    text, html = _parts(sent)
    assert sent["Subject"] == "Raiox AI: não foi possível identificar o implante (protocolo 777)"
    assert message in text and message in html and "anexe novas radiografias" in text


async def test_the_e_mail_says_it_is_automatic_so_out_of_office_replies_do_not_answer_it(
        committed, delivery_env, jotform, smtp_server):
    """RFC 3834's Auto-Submitted (and Exchange's X-Auto-Response-Suppress): a dentist's vacation responder does not
    answer the result, and no responder loops with ours; the dentist's own reply still goes to Reply-To."""
    delivery_env(**_smtp(smtp_server))
    case_id = await _approved_case()
    assert await deliver(case_id) == CaseStatus.delivered
    (_rcpt, message), = smtp_server.messages
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "OOF, AutoReply"


async def test_the_html_e_mail_has_a_head_with_its_charset_and_a_title_naming_the_protocol(
        committed, delivery_env, jotform, smtp_server):
    delivery_env(**_smtp(smtp_server))
    case_id = await _approved_case()
    async with session_scope() as session:
        rejected = await add_case(session, submission_id="777")
        await review.reject(session, rejected.id, "Radiografia cortada.", actor="user:r@x")
    jotform.add_submission(FORM_ID, submission_id="777")
    assert await deliver(case_id) == await deliver(rejected.id) == CaseStatus.delivered
    titles = []
    for _rcpt, message in smtp_server.messages:
        _text, html = _parts(message)
        head = re.search(r"<html[^>]*>\s*<head>(.*?)</head>\s*<body", html, re.S)
        assert head is not None, html[:200]
        assert '<meta charset="utf-8">' in head.group(1) and 'name="viewport"' in head.group(1)
        titles.append(re.search(r"<title>(.*?)</title>", head.group(1), re.S).group(1))
    assert titles == ["Raiox AI: resultado da sua radiografia (protocolo 5812345678901234567)",
                      "Raiox AI: não foi possível identificar o implante (protocolo 777)"]


def test_the_dentist_reads_the_links_last_full_day_in_the_dentists_time_zone_not_the_operators(configure):
    """A link signed at 14:30 dies at 14:30 on its last date: the e-mail names the day before (it works all that
    day), in RAIOX_CLIENT_TIMEZONE (São Paulo by default), whatever RAIOX_ADMIN_TIMEZONE the operator chose."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from raiox.delivery.service import Result
    from raiox.delivery.templates import render

    configure(ADMIN_TIMEZONE="Asia/Tokyo")  # the operator's panel, 12 h ahead of São Paulo
    sao_paulo = ZoneInfo("America/Sao_Paulo")

    def said(expires: datetime) -> set[str]:
        result = Result(approved=True, system="Bone Level", manufacturer="Straumann", message="", submission_id="1",
                        report_url="https://raiox.example.com/reports/x", client_name="Ana", link_expires=expires)
        parts = (render("email.txt", result=result), render("email.html", result=result))
        return {re.search(r"link válido até ([0-9/]+), inclusive", part).group(1) for part in parts}

    assert said(datetime(2026, 5, 12, 14, 30, tzinfo=sao_paulo)) == {"11/05/2026"}
    assert said(datetime(2026, 5, 12, 0, 0, tzinfo=sao_paulo)) == {"11/05/2026"}  # dies at midnight: the 11th whole
    assert said(datetime(2026, 5, 12, 1, 30, tzinfo=UTC)) == {"10/05/2026"}  # 22:30 on the 11th in São Paulo
    assert said(datetime(2026, 5, 12, 4, 30, tzinfo=UTC)) == {"11/05/2026"}  # 01:30 on the 12th in São Paulo
    configure(CLIENT_TIMEZONE="America/Rio_Branco")  # Acre, UTC-5: 23:30 on the 11th there
    assert said(datetime(2026, 5, 12, 4, 30, tzinfo=UTC)) == {"10/05/2026"}
