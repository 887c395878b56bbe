"""The admin panel over HTTP (ASGI): login, lock-out, CSRF, roles, queue, case page, actions."""

import logging
import re
from html import unescape

import httpx
import pytest
from review_helpers import add_case, add_system, add_user, reindex_as
from fakes.db import until_blocked

from raiox.kit.db import session_scope
from raiox.models import CaseStatus

PASSWORD = "correct horse battery"


@pytest.fixture
async def panel(committed):
    from raiox.app import create_app

    app = create_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("198.51.100.7", 5000)),
                                 base_url="http://testserver") as http:
        yield http


async def _data():
    async with session_scope() as session:
        await add_system(session, "neo-cm", "Neodent", "Grand Morse", seed=1)
        await add_system(session, "str-bl", "Straumann", "Bone Level", seed=2)
        await add_system(session, "nob-ac", "Nobel Biocare", "NobelActive", seed=3)
        case = await add_case(session, candidates=[("neo-cm", 0.78), ("str-bl", 0.66)])
        failed = await add_case(session, status=CaseStatus.failed, name="Dr. Bruno Lima")
        failed.failure_reason = "download failed: Jotform upload host answered 404"
        await add_user(session, "rev@example.com", PASSWORD, "reviewer")
        await add_user(session, "admin@example.com", PASSWORD, "admin")
    return case, failed


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


async def login(http, email: str, password: str = PASSWORD) -> httpx.Response:
    page = await http.get("/admin/login")
    return await http.post("/admin/login", data={"email": email, "password": password, "csrf_token": _csrf(page.text)})


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def test_login_failures_are_logged_and_lock_the_account(panel):
    await _data()
    handler = Lines()
    logging.getLogger("raiox.admin").addHandler(handler)
    try:
        for _ in range(5):
            response = await login(panel, "rev@example.com", "wrong password")
            assert response.status_code == 401
        # the client's address for fail2ban; the typed address masked as every address in the logs
        assert handler.lines[0] == "raiox.admin.login_failed ip=198.51.100.7 email=<e-mail>"
        assert len(handler.lines) == 5
        locked = await login(panel, "rev@example.com")  # right password, but locked now
        assert locked.status_code == 401 and "bloqueada" in locked.text
        for _ in range(5):  # an address nobody has answers exactly alike: accounts cannot be enumerated
            nobody = await login(panel, "nobody@example.com", "wrong password")
        error = re.compile(r'id="login-error"[^>]*>(.*?)<', re.S)
        assert error.search(nobody.text).group(1) == error.search(locked.text).group(1)
        await login(panel, "my secret password")  # typed into the e-mail field: not logged
        assert handler.lines[-1] == "raiox.admin.login_failed ip=198.51.100.7 email=-not-an-e-mail-"
    finally:
        logging.getLogger("raiox.admin").removeHandler(handler)


async def test_a_login_next_with_a_line_break_is_ignored_not_a_crash(panel):
    await _data()
    page = await panel.get("/admin/login")
    response = await panel.post("/admin/login", data={"email": "rev@example.com", "password": PASSWORD,
                                                      "next": "/admin/\r\nSet-Cookie: x=1",
                                                      "csrf_token": _csrf(page.text)})
    assert response.status_code == 303 and response.headers["location"].endswith("/admin/")


async def test_login_session_cookie_and_logout(panel):
    await _data()
    assert (await panel.get("/admin/", follow_redirects=False)).headers["location"].startswith("/admin/login")
    response = await login(panel, "rev@example.com")
    assert response.status_code == 303
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    queue = await panel.get("/admin/")
    assert queue.status_code == 200 and "Fila de casos" in queue.text and "Dra. Ana Souza" in queue.text
    logout = await panel.post("/admin/logout", data={"csrf_token": _csrf(queue.text)})
    assert logout.status_code == 303
    assert (await panel.get("/admin/", follow_redirects=False)).status_code == 303


async def test_login_form_without_csrf_is_refused(panel):
    await _data()
    response = await panel.post("/admin/login", data={"email": "rev@example.com", "password": PASSWORD})
    assert response.status_code == 403


async def test_csrf_required_on_actions(panel):
    case, _ = await _data()
    await login(panel, "rev@example.com")
    page = await panel.get(f"/admin/cases/{case.id}")
    refused = await panel.post(f"/admin/cases/{case.id}/approve", data={"system_id": "str-bl"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    htmx_refused = await panel.post(f"/admin/cases/{case.id}/note", data={"text": "x"}, headers={"HX-Request": "true"})
    assert htmx_refused.status_code == 403
    assert 'name="add_to_catalog"' not in page.text  # the catalog is the admins'
    reviewer_adds = await panel.post(f"/admin/cases/{case.id}/approve", data={
        "system_id": "str-bl", "csrf_token": _csrf(page.text), "add_to_catalog": "true"})
    assert reviewer_adds.status_code == 403 and "Somente administradores" in reviewer_adds.text
    ok = await panel.post(f"/admin/cases/{case.id}/approve",
                          data={"system_id": "str-bl", "csrf_token": _csrf(page.text)})
    assert ok.status_code == 303
    after = await panel.get(f"/admin/cases/{case.id}")
    assert "Aprovou o caso" in after.text and "Bone Level" in after.text
    audit = re.search(r'<ol class="audit" id="audit">.*?</ol>', after.text, re.S).group(0)
    assert "<p>Bone Level (Straumann)</p>" in audit  # the log names the system as the rest of the panel does
    again = await panel.post(f"/admin/cases/{case.id}/approve",
                             data={"system_id": "str-bl", "csrf_token": _csrf(page.text)})
    assert again.status_code == 303  # a double click approves once
    stale = await panel.post(f"/admin/cases/{case.id}/approve",
                             data={"system_id": "neo-cm", "csrf_token": _csrf(page.text)})
    assert stale.status_code == 409 and "Este caso não aguarda mais revisão (situação: Aprovado)" in stale.text
    assert "not awaiting review" not in stale.text  # the service's English is the API's, not the operator's


async def test_a_rejection_from_the_case_page_is_in_its_audit_list(panel):
    from sqlalchemy import select

    from raiox.models import AuditEntry

    case, _ = await _data()
    await login(panel, "rev@example.com")
    page = (await panel.get(f"/admin/cases/{case.id}")).text
    rejected = await panel.post(f"/admin/cases/{case.id}/reject",
                                data={"message": "Envie uma radiografia mais nítida.", "csrf_token": _csrf(page)})
    assert rejected.status_code == 303
    audit = re.search(r'<ol class="audit" id="audit">.*?</ol>', (await panel.get(f"/admin/cases/{case.id}")).text,
                      re.S).group(0)
    assert "Rejeitou o caso" in audit and "rev@example.com" in audit and "Envie uma radiografia mais nítida." in audit
    async with session_scope() as session:
        entry = (await session.execute(select(AuditEntry).where(AuditEntry.action == "case.reject"))).scalar_one()
    assert (entry.actor, entry.case_id, entry.details) == (
        "user:rev@example.com", case.id, {"message": "Envie uma radiografia mais nítida."})


async def test_reviewer_cannot_reach_catalog_admin(panel):
    await _data()
    await login(panel, "rev@example.com")
    assert (await panel.get("/admin/catalog")).status_code == 403
    assert (await panel.get("/admin/catalog/neo-cm")).status_code == 403
    assert 'href="/admin/catalog"' not in (await panel.get("/admin/")).text


async def test_queue_counts_filters_and_failed_reason(panel):
    await _data()
    await login(panel, "admin@example.com")
    needs_action = await panel.get("/admin/")  # the default: review, and failed cases to retry, together
    assert "Dra. Ana Souza" in needs_action.text and "Dr. Bruno Lima" in needs_action.text
    assert "Precisam de ação <span class=\"count\">2</span>" in needs_action.text
    unknown = await panel.get("/admin/", params={"status": "foo"})
    assert unknown.status_code == 400 and "Status desconhecido: foo" in unknown.text
    awaiting = await panel.get("/admin/", params={"status": "awaiting_review"})
    assert "Dra. Ana Souza" in awaiting.text and "Dr. Bruno Lima" not in awaiting.text
    assert "1 caso encontrado<" in awaiting.text and "2 casos encontrados" in needs_action.text  # no "caso(s)"
    failed = await panel.get("/admin/", params={"status": "failed"})
    assert "Dr. Bruno Lima" in failed.text and "upload host answered 404" in failed.text
    assert "Tentar novamente" in failed.text
    assert "Dra. Ana Souza" not in (await panel.get("/admin/", params={"status": "all", "client": "bruno"})).text
    assert "Dr. Bruno Lima" in (await panel.get("/admin/", params={"status": "all", "q": "Bruno"})).text
    assert "Nenhum caso" in (await panel.get("/admin/", params={"status": "all", "date_from": "2001-01-01",
                                                                "date_to": "2001-01-02"})).text


def tab_counts(html: str) -> dict[str, int]:
    """The count beside each status tab of the queue, by the status it opens."""
    tabs = re.search(r'<nav class="status-tabs"[^>]*>(.*?)</nav>', html, re.S).group(1)
    return {status: int(n) for status, n in
            re.findall(r'<a href="\?status=(\w+)[^"]*"[^>]*>[^<]*<span class="count">(\d+)</span>', tabs)}


async def test_the_status_tabs_count_the_cases_the_other_filters_keep(panel):
    """Beside each status, the number of cases its tab lists with the dentist, search and day filters applied."""
    from datetime import UTC, datetime

    from sqlalchemy import update

    from raiox.models import Case

    await _data()  # Dra. Ana Souza awaiting review, Dr. Bruno Lima failed
    async with session_scope() as session:
        await add_case(session, name="Dra. Carla Dias")
        older = await add_case(session, name="Dr. Bruno Lima", status=CaseStatus.delivered)
        await session.execute(update(Case).where(Case.id == older.id)
                              .values(created_at=datetime(2025, 6, 10, 15, 0, tzinfo=UTC)))
    await login(panel, "rev@example.com")

    async def counts(**params) -> dict[str, int]:
        return tab_counts((await panel.get("/admin/", params={"status": "all", **params})).text)

    everything = await counts()
    assert (everything["all"], everything["attention"], everything["awaiting_review"]) == (4, 3, 2)
    assert (everything["failed"], everything["delivered"], everything["received"]) == (1, 1, 0)
    bruno = await counts(q="bruno")
    assert (bruno["all"], bruno["attention"], bruno["awaiting_review"], bruno["failed"], bruno["delivered"]) == \
        (2, 1, 0, 1, 1)
    assert (await counts(client="carla"))["awaiting_review"] == 1 and (await counts(client="carla"))["all"] == 1
    june = await counts(date_from="2025-06-01", date_to="2025-06-30")
    assert (june["all"], june["delivered"], june["attention"]) == (1, 1, 0)
    for status, n in bruno.items():  # each tab's count is what the tab, followed, lists
        listed = (await panel.get("/admin/", params={"status": status, "q": "bruno"})).text
        assert (f"{n} casos encontrados" if n != 1 else "1 caso encontrado") in listed, status


async def test_the_queue_date_filter_counts_days_on_the_operators_calendar(panel):
    """RAIOX_ADMIN_TIMEZONE (America/Sao_Paulo): a case received at 01:30 UTC on the 3rd came in on the evening of
    the 2nd for the operator, and the filter by day says so, whatever the server's own timezone."""
    from datetime import UTC, datetime

    from sqlalchemy import update

    from raiox.models import Case

    case, _ = await _data()
    async with session_scope() as session:
        await session.execute(update(Case).where(Case.id == case.id)
                              .values(created_at=datetime(2026, 12, 3, 1, 30, tzinfo=UTC)))
    await login(panel, "rev@example.com")

    def day(first: str, last: str):
        return panel.get("/admin/", params={"status": "all", "date_from": first, "date_to": last})

    assert "Dra. Ana Souza" in (await day("2026-12-02", "2026-12-02")).text
    assert "Dra. Ana Souza" not in (await day("2026-12-03", "2026-12-03")).text
    assert "Dra. Ana Souza" in (await day("2026-12-01", "2026-12-03")).text
    reversed_range = (await day("2026-12-03", "2026-12-01")).text  # typed the wrong way round: the range meant
    assert "Dra. Ana Souza" in reversed_range and 'name="date_from" value="01/12/2026"' in reversed_range
    opened = (await panel.get("/admin/", params={"status": "all"})).text
    assert re.search(r'aria-label="Abrir o caso \d+ \(Dra\. Ana Souza\)"', opened)  # each "Abrir" names its case


async def test_searches_ignore_accents_and_case_both_ways(panel):
    await _data()
    async with session_scope() as session:
        await add_case(session, name="JOÃO DA CONCEIÇÃO", candidates=[("neo-cm", 0.8)])
        await add_system(session, "conexao-torque", "Conexão", "Torque Tite", seed=4)
        await add_system(session, "os-1", "ØSTER", "Přesný", seed=5)
    await login(panel, "admin@example.com")
    for word in ("joao", "João", "CONCEIÇÃO", "conceicao"):
        for field in ("q", "client"):  # the search box and the dentist filter
            found = await panel.get("/admin/", params={"status": "all", field: word})
            assert "JOÃO DA CONCEIÇÃO" in found.text and "Dra. Ana Souza" not in found.text, (field, word)
    for words in ("conexao", "CONEXÃO torque", "conexão"):
        listing = await panel.get("/admin/catalog", params={"q": words})
        assert "Torque Tite" in listing.text and "Grand Morse" not in listing.text, words
    for words in ("øster", "ØSTER", "presny", "PŘESNÝ"):  # by the catalog's name keys, whatever the database's locale
        listing = await panel.get("/admin/catalog", params={"q": words})
        assert "Přesný" in listing.text and "Torque Tite" not in listing.text, words
        picked = await panel.get("/admin/systems/search", params={"q": words})  # a case's "Outro sistema"
        assert 'value="os-1"' in picked.text and 'value="conexao-torque"' not in picked.text, words
    percent = await panel.get("/admin/", params={"status": "all", "q": "%"})
    assert "Nenhum caso" in percent.text  # still a character, not a wildcard


def fused_labels(html: str) -> list[str]:
    fused = re.search(r'<ol class="cands" id="fused">(.*?)</ol>', html, re.S).group(1)
    return re.findall(r'<li class="cand conf-(\w+)"', fused)


async def test_confidence_follows_the_first_candidates_lead_over_the_runner_up(panel):
    """Wrong answers are look-alike siblings scored almost as high: the lead, not the similarity, sets the label."""
    await _data()
    async with session_scope() as session:
        cases = {lead: await add_case(session, candidates=[("neo-cm", top), ("str-bl", second)], name=f"Dr. {lead}")
                 for lead, top, second in (("tie", 0.93, 0.92), ("close", 0.75, 0.72), ("dim", 0.66, 0.40))}
        alone = await add_case(session, candidates=[("neo-cm", 0.80)], name="Dr. Alone")
    await login(panel, "rev@example.com")
    pages = {lead: (await panel.get(f"/admin/cases/{case.id}")).text for lead, case in cases.items()}
    assert fused_labels(pages["tie"]) == ["low", "low"]  # 0.93 is similar, but a sibling is as similar
    assert 'id="low-confidence"' in pages["tie"]
    assert fused_labels(pages["close"]) == ["medium", "low"]  # a lead of 0.03
    assert fused_labels(pages["dim"]) == ["low", "low"]  # a lead of 0.26 under the 0.70 similarity floor
    assert fused_labels((await panel.get(f"/admin/cases/{alone.id}")).text) == ["medium"]  # alone: 0.80 < 0.85
    assert "supera o segundo em 5 pontos" in pages["tie"]


async def test_case_page_shows_candidates_confidence_and_warning(panel):
    case, _ = await _data()
    await login(panel, "rev@example.com")
    page = await panel.get(f"/admin/cases/{case.id}")
    assert page.status_code == 200
    assert "Grand Morse" in page.text and "alta" in page.text and "baixa" in page.text
    assert fused_labels(page.text) == ["high", "low"]  # 0.78 leads 0.66 by 0.12
    assert 'id="low-confidence"' not in page.text
    assert "dentista@example.com" in page.text and "(11) 98765-4321" in page.text
    assert page.text.count("conexão lida:") == 1 and "conexão lida: cônica 11,5° (72%)" in page.text  # its one fixture
    assert page.text.count("lido no corpo:") == 1
    assert "lido no corpo: ápice cônico (95%), rosca em V (90%)<" in page.text  # sure reads only: no collar
    image = re.search(r'/admin/media/case-images/([0-9a-f-]+)"', page.text).group(0).rstrip('"')
    assert (await panel.get(image)).headers["content-type"] == "image/png"
    search = await panel.get("/admin/systems/search", params={"q": "nobel"})
    assert 'value="nob-ac"' in search.text


async def test_each_candidates_rank_is_read_by_screen_readers(panel):
    """An aria-label on a plain <span> is ignored by screen readers: the rank is text they read ("Posição 2"), the
    bare number shown beside it hidden from them (not read twice)."""
    case, _ = await _data()
    await login(panel, "rev@example.com")
    page = (await panel.get(f"/admin/cases/{case.id}")).text
    fused = re.search(r'<ol class="cands" id="fused">(.*?)</ol>', page, re.S).group(1)
    ranks = re.findall(r'<span class="rank"><span aria-hidden="true">(\d+)</span><span class="sr-only">([^<]*)</span>'
                       r"</span>", fused)
    assert ranks == [("1", "Posição 1"), ("2", "Posição 2")]
    assert page.count('<span class="rank">') == 4  # the fixture's own candidates too
    assert not re.search(r'<span(?![^>]*\brole=)[^>]*aria-label=', page)  # no name where nothing reads it


async def test_case_page_shows_the_length_each_candidates_pitch_gives_the_thread_count(panel):
    """The fixture's thread count (11.8 x the pitch) read as each candidate's length, beside its line's nearest."""
    from raiox.models import ImplantSystem

    case, _ = await _data()
    async with session_scope() as session:
        for system_id, pitch, lengths in (("neo-cm", 1.0, [10, 11.5, 13]), ("str-bl", 2.0, [8, 10])):
            system = await session.get(ImplantSystem, system_id)
            system.spec = {"thread": {"pitch_mm": pitch}, "length_mm": lengths[0]}
            system.attributes = {"lengths": lengths}
    await login(panel, "rev@example.com")
    page = (await panel.get(f"/admin/cases/{case.id}")).text
    assert "pela rosca ≈ 11,5 mm (a linha tem 11,5 mm)<" in page  # 11.8 x 1.0 mm - 0.3 mm
    assert "pela rosca ≈ 23,3 mm (fora da linha: 8,0–10,0 mm)<" in page  # 11.8 x 2.0 mm - 0.3 mm: no length near
    assert page.count("pela rosca") == 2  # the fixture's own candidates only: the fused ranking has no count


async def test_case_page_names_what_sets_a_look_alike_candidate_apart_from_the_first(panel):
    """The runner-up differs from the first only in its cone: the page says so, and that the film shows it only
    on an open platform; the first candidate gets no such line, nor does an unrelated system."""
    from raiox.models import ImplantSystem

    case, _ = await _data()
    cone = {"kind": "conical", "cone_angle_deg": 16.0, "platform_mm": 3.0, "screw_mm": 1.6, "depth_mm": 2.4}
    async with session_scope() as session:
        first = await session.get(ImplantSystem, "neo-cm")
        first.spec = {"thread": {"profile": "v", "pitch_mm": 0.8}, "apex": {"shape": "dome"}, "connection": cone}
        second = await session.get(ImplantSystem, "str-bl")
        second.spec = {"thread": {"profile": "v", "pitch_mm": 0.8}, "apex": {"shape": "dome"},
                       "connection": {**cone, "cone_angle_deg": 24.0}}
    await login(panel, "rev@example.com")
    page = (await panel.get(f"/admin/cases/{case.id}")).text
    line = ('<span class="muted spec-diff">difere do 1º só em: ângulo do cone 24° (no 1º: 16°) · '
            "só se vê com a plataforma descoberta</span>")
    assert page.count(line) == 2  # the fused ranking and the fixture's own candidates
    assert page.count("spec-diff") == 2  # never under the first
    async with session_scope() as session:
        second = await session.get(ImplantSystem, "str-bl")
        second.spec = {"thread": {"profile": "knife", "pitch_mm": 2.0}, "apex": {"shape": "flat"},
                       "connection": {"kind": "external_hex"}}
    page = (await panel.get(f"/admin/cases/{case.id}")).text
    assert "spec-diff" not in page  # thread, connection and apex differ: not a sibling


async def test_media_requires_login(panel):
    case, _ = await _data()
    await login(panel, "rev@example.com")
    page = await panel.get(f"/admin/cases/{case.id}")
    image = re.search(r'/admin/media/case-images/[0-9a-f-]+', page.text).group(0)
    shown = await panel.get(image)
    assert shown.status_code == 200 and shown.headers["cache-control"] == "private, no-store"  # a patient's film
    assert (await panel.get(image, params={"w": -5})).status_code == 400  # a bad size is the request's fault
    panel.cookies.clear()
    assert (await panel.get(image, follow_redirects=False)).status_code == 303


async def test_note_via_htmx_and_api_with_panel_session(panel):
    case, _ = await _data()
    await login(panel, "rev@example.com")
    token = _csrf((await panel.get(f"/admin/cases/{case.id}")).text)
    note = await panel.post(f"/admin/cases/{case.id}/note", data={"text": "Ligar para a dentista"},
                            headers={"HX-Request": "true", "X-CSRF-Token": token})
    assert note.status_code == 200 and "Ligar para a dentista" in note.text and note.text.startswith('<ol')
    assert "Nota interna" in note.text and "rev@example.com" in note.text  # the audit list, by whom
    assert (await panel.post(f"/cases/{case.id}/reject", json={"message": "Outra, por favor"})).status_code == 403
    api = await panel.post(f"/cases/{case.id}/reject", json={"message": "Outra, por favor"},
                           headers={"X-CSRF-Token": token})
    assert api.status_code == 200 and api.json()["reviewed_by"] == "user:rev@example.com"


async def test_a_case_read_by_an_earlier_model_offers_to_read_its_implants_again(panel):
    from sqlalchemy import select

    from raiox.models import AuditEntry, CaseImage, Fixture
    from raiox.vision import get_embedder

    case, failed = await _data()  # its implant was read by raiox-v1; the current embedder is another model
    current = get_embedder().model_id
    await login(panel, "rev@example.com")
    page = await panel.get(f"/admin/cases/{case.id}")
    notice = re.search(r'id="stale-model">(.*?)</div>', page.text, re.S).group(1)
    assert "lidos por outro modelo (raiox-v1)" in notice and f"o modelo atual é {current}" in notice
    assert f"O catálogo ainda não tem vetores do modelo {current}" in notice  # reindex first: nothing to search
    assert "Ler os implantes de novo" not in notice
    refused = await panel.post(f"/admin/cases/{case.id}/reread", data={"csrf_token": _csrf(page.text)})
    assert refused.status_code == 409 and "Nada foi alterado no caso" in refused.text

    async with session_scope() as session:  # the catalog reindexed with the current model
        await reindex_as(session, current)
    page = await panel.get(f"/admin/cases/{case.id}")
    notice = re.search(r'id="stale-model">(.*?)</div>', page.text, re.S).group(1)
    assert "Ler os implantes de novo" in notice and "O catálogo ainda não" not in notice

    assert (await panel.post(f"/admin/cases/{case.id}/reread")).status_code == 403  # no CSRF token
    done = await panel.post(f"/admin/cases/{case.id}/reread", data={"csrf_token": _csrf(page.text)})
    assert done.status_code == 303 and done.headers["location"].endswith(f"/admin/cases/{case.id}?feito=reread")
    page = await panel.get(done.headers["location"])  # the page says what was done
    assert re.search(r'id="done">Implantes lidos de novo com o modelo atual\.<', page.text)
    assert 'id="stale-model"' not in page.text and "Leu os implantes de novo" in page.text
    for other in ("", "?feito=nada", "?feito=__class__", "?feito=%3Cb%3Ex"):  # only what the panel names
        assert 'id="done"' not in (await panel.get(f"/admin/cases/{case.id}{other}")).text
    assert f"raiox-v1 → {current} · 1 implante<" in page.text
    async with session_scope() as session:
        models = dict((await session.execute(select(CaseImage.case_id, Fixture.model_id).join(CaseImage))).all())
        entry = (await session.execute(select(AuditEntry).where(AuditEntry.action == "case.reread"))).scalar_one()
    assert models == {case.id: current, failed.id: "raiox-v1"}  # a failed case is not read again
    assert entry.actor == "user:rev@example.com" and entry.details["models_before"] == ["raiox-v1"]


async def test_users_add_cli(committed):
    import os
    import subprocess
    import sys

    from sqlalchemy import select

    from raiox.models import AuditEntry
    from raiox.review import repository
    from raiox.review.accounts import verify_password

    def cli(*args: str, stdin: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "raiox", "users", "add", *args], input=stdin, text=True,
                              capture_output=True, env=os.environ | {"PYTHONPATH": "src"}, timeout=120)

    import asyncio

    result, bad_role, short = await asyncio.gather(  # three processes at once: each on its own address
        asyncio.to_thread(cli, "Ops@Example.com", "--role", "admin", "--password-stdin",
                          stdin="a long enough password\n"),
        asyncio.to_thread(cli, "x@example.com", "--role", "root", "--password-stdin", stdin="p" * 12),
        asyncio.to_thread(cli, "y@example.com", "--password-stdin", stdin="short\n"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "user ops@example.com (admin) created\n"  # the result on stdout, not among the logs
    assert bad_role.returncode == 2 and short.returncode == 2, (bad_role.stderr, short.stderr)
    async with session_scope() as session:
        user = await repository.user_by_email(session, "ops@example.com")
        assert user.role == "admin" and user.password_hash.startswith("$argon2id$")
        assert verify_password(user.password_hash, "a long enough password")
        assert await repository.user_by_email(session, "y@example.com") is None
    again = cli("ops@example.com", "--role", "reviewer", "--password-stdin", stdin="another long password\n")
    assert again.returncode == 0 and again.stdout == "user ops@example.com (reviewer) updated\n", again.stderr
    async with session_scope() as session:
        audit = (await session.execute(select(AuditEntry.actor, AuditEntry.action, AuditEntry.target,
                                              AuditEntry.details).order_by(AuditEntry.id))).all()
    assert audit == [  # the refused ones wrote nothing; never the password
        ("cli:raiox users add", "user.add", "ops@example.com", {"outcome": "created", "role": "admin"}),
        ("cli:raiox users add", "user.add", "ops@example.com", {
            "outcome": "updated", "role": "reviewer", "role_before": "admin", "active_before": True,
            "password_reset": True})]


async def test_a_system_cannot_take_the_manufacturer_and_name_of_another(panel):
    """Manufacturer + name are unique in the catalog: renaming one system to another's (or creating one under another
    id with them) is refused in pt-BR, not a database error (500), and nothing changes."""
    from sqlalchemy import func, select

    from raiox.models import AuditEntry, ImplantSystem

    await _data()
    await login(panel, "admin@example.com")
    token = _csrf((await panel.get("/admin/catalog/str-bl")).text)
    renamed = await panel.post("/admin/catalog/str-bl", data={
        "manufacturer": " Neodent ", "name": "Grand Morse", "connection": "", "active": "true", "csrf_token": token})
    assert renamed.status_code == 409
    assert "Já existe um sistema Neodent Grand Morse no catálogo (neo-cm)" in renamed.text
    created = await panel.post("/admin/catalog/new", data={
        "manufacturer": "Neodent", "name": "Grand Morse", "system_id": "gm-2", "active": "true", "csrf_token": token})
    assert created.status_code == 409 and "(neo-cm)" in created.text
    kept = await panel.post("/admin/catalog/neo-cm", data={  # its own name: saved
        "manufacturer": "Neodent", "name": "Grand Morse", "connection": "cone morse", "active": "true",
        "csrf_token": token})
    assert kept.status_code == 303
    async with session_scope() as session:
        assert (await session.get(ImplantSystem, "str-bl")).manufacturer == "Straumann"
        assert await session.get(ImplantSystem, "gm-2") is None
        assert await session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action.in_(("catalog.update", "catalog.create")))) == 1


async def test_a_look_alike_of_another_system_is_refused_too(panel):
    """Letter case, accents and spaces do not make another system: "neodent / grand  morse " (new, or another system
    renamed so) is refused in pt-BR naming the system it looks like; a system's own names in another case are saved
    as typed (trimmed), and one whose names are left as they were is saved whatever the catalog holds."""
    from raiox.models import ImplantSystem

    await _data()
    await login(panel, "admin@example.com")
    token = _csrf((await panel.get("/admin/catalog/str-bl")).text)
    for path, manufacturer, name in (("/admin/catalog/new", "neodent", " grand  morse "),
                                     ("/admin/catalog/new", "NEODENT", "Grând\u00a0Mórse"),
                                     ("/admin/catalog/str-bl", " Neodent", "GRAND MORSE")):
        refused = await panel.post(path, data={"manufacturer": manufacturer, "name": name, "system_id": "gm-2",
                                               "active": "true", "csrf_token": token})
        assert refused.status_code == 409, (manufacturer, name)
        assert "Já existe um sistema Neodent Grand Morse no catálogo (neo-cm)" in refused.text
        assert "maiúsculas, acentos e espaços não os distinguem" in refused.text
    own = await panel.post("/admin/catalog/neo-cm", data={
        "manufacturer": "Neodent ", "name": " grand morse", "active": "true", "csrf_token": token})
    assert own.status_code == 303
    other = await panel.post("/admin/catalog/new", data={  # another name: a system of its own
        "manufacturer": "Neodent", "name": "Grand Morse Acqua", "active": "true", "csrf_token": token})
    assert other.status_code == 303
    async with session_scope() as session:
        assert (await session.get(ImplantSystem, "neo-cm")).name == "grand morse"
        assert (await session.get(ImplantSystem, "str-bl")).name == "Bone Level"
        assert await session.get(ImplantSystem, "gm-2") is None
        assert (await session.get(ImplantSystem, "neodent-grand-morse-acqua")).name == "Grand Morse Acqua"


async def test_two_saves_of_one_name_at_once_give_the_409_not_a_500(panel, database_url):
    """The check and the save are not one step: a look-alike saved meanwhile by another session (here: inserted, not
    yet committed, when the panel checks) is refused by the database's unique index; the panel answers the same
    pt-BR 409, not a database error."""
    import asyncio

    import psycopg

    from raiox.models import ImplantSystem

    await _data()
    await login(panel, "admin@example.com")
    token = _csrf((await panel.get("/admin/catalog/str-bl")).text)
    async with await psycopg.AsyncConnection.connect(database_url) as other:
        await other.execute("INSERT INTO implant_systems (id, manufacturer, name, manufacturer_key, name_key, "
                            "attributes) VALUES ('racer', 'Nobel', 'Active', 'nobel', 'active', '{}')")
        save = asyncio.create_task(panel.post("/admin/catalog/new", data={
            "manufacturer": "nobel", "name": "ACTIVE ", "active": "true", "csrf_token": token}))
        await until_blocked(database_url, "the panel's save")  # on the other session's uncommitted row
        await other.commit()
        refused = await save
    assert refused.status_code == 409
    assert "Já existe um sistema Nobel Active no catálogo (racer)" in refused.text
    async with session_scope() as session:
        assert await session.get(ImplantSystem, "nobel-active") is None


async def _racing(panel, database_url, insert: str, form: dict):
    """The panel's create of FORM while another session holds INSERT uncommitted (the panel's checks pass, its insert
    waits on that row), committed once the panel waits: the panel's answer."""
    import asyncio

    import psycopg

    async with await psycopg.AsyncConnection.connect(database_url) as other:
        await other.execute(insert)
        save = asyncio.create_task(panel.post("/admin/catalog/new", data=form))
        await until_blocked(database_url, "the panel's save")  # on the other session's uncommitted row
        await other.commit()
        return await save


@pytest.mark.parametrize("names", [("Zimmer", "Tapered Screw-Vent"), ("Nobel", "Active")])
async def test_two_creates_of_one_id_at_once_give_the_409_not_a_500(panel, database_url, names):
    """Two creates of the same system id at once (two admins, or a double submit): both find the id free, the second
    insert is refused by the primary key (whatever the names: the same ones too, the key is checked first); the panel
    answers the pt-BR 409 of an existing id, as when the first was already saved, not a database error (500)."""
    from sqlalchemy import func, select

    from raiox.models import AuditEntry, ImplantSystem
    from raiox.models.catalog import name_key

    await _data()
    await login(panel, "admin@example.com")
    token = _csrf((await panel.get("/admin/catalog/new")).text)
    keys = [name_key(text) for text in names]
    refused = await _racing(panel, database_url, "INSERT INTO implant_systems (id, manufacturer, name, "
                            f"manufacturer_key, name_key, attributes) VALUES ('nobel-active', '{names[0]}', "
                            f"'{names[1]}', '{keys[0]}', '{keys[1]}', '{{}}')",
                            {"manufacturer": "Nobel", "name": "Active", "active": "true", "csrf_token": token})
    assert refused.status_code == 409, refused.text
    assert "Já existe um sistema com o identificador nobel-active." in refused.text
    async with session_scope() as session:
        assert (await session.get(ImplantSystem, "nobel-active")).manufacturer == names[0]  # the first one's, kept
        assert await session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "catalog.create")) == 0


async def test_admin_creates_system_and_uploads_reference(panel):
    from sqlalchemy import select

    from raiox.models import AuditEntry, ReferenceEmbedding, ReferenceImage
    from raiox.synth import demo_catalog, render_reference, to_png

    await _data()
    await login(panel, "admin@example.com")
    form = (await panel.get("/admin/catalog/new")).text
    token = _csrf(form)
    assert '<option value="external hex">hexágono externo</option>' in form  # known terms offered, shown in pt-BR
    assert '<option value="tapered">cônico</option>' in form and 'list="known-connections"' in form
    # the column where the references go says what comes next, instead of staying empty
    assert "Salve os dados do sistema para enviar as imagens de referência: até 20 por envio" in form
    created = await panel.post("/admin/catalog/new", data={"manufacturer": "SIN", "name": "Strong SW",
                                                           "connection": "HE", "active": "true", "csrf_token": token})
    assert created.status_code == 303
    assert created.headers["location"] == "/admin/catalog/sin-strong-sw?feito=system_created"
    assert "Sistema criado." in (await panel.get(created.headers["location"])).text
    png = to_png(render_reference(demo_catalog()[0].spec, seed=3))
    upload = await panel.post("/admin/catalog/sin-strong-sw/images", data={"csrf_token": token},
                              files=[("files", ("ref 1.png", png, "image/png")),
                                     ("files", ("bad.png", b"<html>", "image/png"))])
    assert upload.status_code == 200, upload.text
    assert "1 imagem adicionada, 0 já existentes, 1 ignorada." in upload.text and "bad.png" in upload.text
    async with session_scope() as session:
        ref = (await session.execute(select(ReferenceImage)
                                     .where(ReferenceImage.system_id == "sin-strong-sw"))).scalar_one()
        assert ref.source == "upload"
        emb = (await session.execute(select(ReferenceEmbedding)
                                     .where(ReferenceEmbedding.reference_image_id == ref.id))).scalar_one()
        assert len(emb.embedding) == 512
    listing = await panel.get("/admin/catalog", params={"q": "strong"})
    assert "Strong SW" in listing.text and "Grand Morse" not in listing.text
    edited = await panel.post("/admin/catalog/sin-strong-sw", data={
        "manufacturer": "SIN", "name": "Strong SW Plus", "connection": "HE", "active": "true", "csrf_token": token})
    assert edited.status_code == 303
    async with session_scope() as session:
        entry = (await session.execute(select(AuditEntry).where(AuditEntry.action == "catalog.update"))).scalar_one()
        created = (await session.execute(select(AuditEntry).where(AuditEntry.action == "catalog.create"))).scalar_one()
    assert entry.details["changed"] == {"name": ["Strong SW", "Strong SW Plus"]}  # what changed, from what
    assert (created.actor, created.target) == ("user:admin@example.com", "sin-strong-sw")
    assert created.details["fields"] == {"manufacturer": "SIN", "name": "Strong SW", "connection": "HE",
                                         "body_shape": None, "active": True}  # what it was created with
    async with session_scope() as session:
        upload = (await session.execute(select(AuditEntry).where(AuditEntry.action == "catalog.upload"))).scalar_one()
    assert upload.details["added"] == 1
    assert upload.details["images"] == [f"upload/1 ({len(png)} bytes) sha256:{ref.sha256[:12]}"]  # not its file name

    from raiox.kit.storage import get_storage

    page = await panel.get("/admin/catalog/sin-strong-sw")
    assert "Remover do catálogo" in page.text and "Não é possível desfazer" in page.text
    elsewhere = await panel.post(f"/admin/catalog/neo-cm/references/{ref.id}/delete", data={"csrf_token": token})
    assert elsewhere.status_code == 404 and "não encontrada neste sistema" in elsewhere.text  # another system's
    assert await get_storage().exists(ref.storage_key)
    removed = await panel.post(f"/admin/catalog/sin-strong-sw/references/{ref.id}/delete", data={"csrf_token": token})
    assert removed.status_code == 303
    async with session_scope() as session:
        assert await session.get(ReferenceImage, ref.id) is None
        left = (await session.execute(select(ReferenceEmbedding)
                                      .where(ReferenceEmbedding.reference_image_id == ref.id))).scalars().all()
        entry = (await session.execute(select(AuditEntry)
                                       .where(AuditEntry.action == "catalog.reference_remove"))).scalar_one()
    assert left == [] and not await get_storage().exists(ref.storage_key)  # no case or reference uses the object
    assert entry.details["sha256"] == ref.sha256 and entry.details["object_deleted"] is True
    page = (await panel.get("/admin/catalog/sin-strong-sw")).text  # the system's changes, newest first, in pt-BR
    audit = re.search(r'<ol class="audit" id="audit">.*?</ol>', page, re.S).group(0)
    labels = re.findall(r"<strong>(.*?)</strong>", audit)
    assert labels == ["Removeu uma imagem de referência", "Editou um sistema do catálogo",
                      "Enviou imagens de referência", "Criou um sistema no catálogo"]
    assert audit.count("admin@example.com") == 4 and "catalog." not in audit


async def test_uploaded_references_are_stored_without_the_files_metadata(panel):
    """A phone photo's EXIF (author, camera serial, GPS) and a DICOM's patient, clinic and device attributes are not
    kept: the catalog stores a copy of the picture alone, embeds exactly its pixels and shows it."""
    import hashlib
    import io

    import numpy as np
    from fakes.films import carries_personal_data, dicom_with_patient, jpeg_with_exif
    from PIL import Image
    from review_helpers import xray_png
    from sqlalchemy import select

    from raiox.kit.storage import get_storage
    from raiox.models import ReferenceEmbedding, ReferenceImage
    from raiox.vision import read_image

    await _data()
    await login(panel, "admin@example.com")
    token = _csrf((await panel.get("/admin/catalog/neo-cm")).text)
    photo = jpeg_with_exif(np.asarray(Image.open(io.BytesIO(xray_png(7, size=(300, 420))))), orientation=6)
    film = dicom_with_patient(np.asarray(Image.open(io.BytesIO(xray_png(8, size=(280, 400))))))
    assert carries_personal_data(photo) and carries_personal_data(film)
    upload = await panel.post("/admin/catalog/neo-cm/images", data={"csrf_token": token},
                              files=[("files", ("foto.jpg", photo, "image/jpeg")),
                                     ("files", ("filme.dcm", film, "application/dicom"))])
    assert upload.status_code == 200 and "2 imagens adicionadas" in upload.text, upload.text
    async with session_scope() as session:
        refs = (await session.execute(select(ReferenceImage).where(ReferenceImage.source == "upload"))).scalars().all()
        embedded = set((await session.execute(select(ReferenceEmbedding.reference_image_id))).scalars())
    assert len(refs) == 2 and {ref.id for ref in refs} <= embedded
    originals = {hashlib.sha256(data).hexdigest(): data for data in (photo, film)}
    assert {ref.sha256 for ref in refs} == set(originals)  # each reference knows the file it came from
    for ref in refs:
        stored = await get_storage().get(ref.storage_key)
        assert not carries_personal_data(stored), ref.origin
        pixels = read_image(stored)
        assert np.array_equal(pixels, read_image(originals[ref.sha256])) and (ref.height, ref.width) == pixels.shape
        shown = await panel.get(f"/admin/media/references/{ref.id}")
        assert shown.status_code == 200 and shown.headers["content-type"] == "image/png"
        assert not carries_personal_data(shown.content)


async def test_an_uploads_file_names_are_shown_to_its_admin_but_kept_nowhere(panel):
    """A film's file name often is its patient's: the audit, the references' origin and the logs know each file by its
    place in the upload, its size and (stored ones) its sha256; only the page answering the upload names the files."""
    import hashlib
    import json

    import structlog
    from sqlalchemy import select

    from raiox.models import AuditEntry, ReferenceImage
    from raiox.synth import demo_catalog, render_reference, to_png

    await _data()
    await login(panel, "admin@example.com")
    token = _csrf((await panel.get("/admin/catalog/neo-cm")).text)
    png = to_png(render_reference(demo_catalog()[0].spec, seed=5))
    with structlog.testing.capture_logs() as logs:
        upload = await panel.post("/admin/catalog/neo-cm/images", data={"csrf_token": token}, files=[
            ("files", ("joao_silva_rx.png", png, "image/png")),
            ("files", ("maria_souza_rx.png", b"<html>", "image/png")),
            ("files", ("joao_silva_rx (1).png", png, "image/png")),
            ("files", ("ana_lima.dcm", b"", "application/dicom"))])
    assert upload.status_code == 200, upload.text
    for shown in ("Arquivo 2 do envio (maria_souza_rx.png): ",
                  "Arquivo 3 do envio (joao_silva_rx (1).png): a mesma imagem que "
                  "arquivo 1 do envio (joao_silva_rx.png)",
                  "Arquivo 4 do envio (ana_lima.dcm): arquivo vazio"):
        assert shown in upload.text, shown  # the admin who sent them reads their names and places, in pt-BR
    assert "upload/" not in upload.text  # never the importer's internal label
    async with session_scope() as session:
        entry = (await session.execute(select(AuditEntry).where(AuditEntry.action == "catalog.upload"))).scalar_one()
        origin = (await session.execute(select(ReferenceImage.origin)
                                        .where(ReferenceImage.source == "upload"))).scalar_one()
    size, sha = len(png), hashlib.sha256(png).hexdigest()[:12]
    assert origin == f"upload/1 ({size} bytes)"
    assert entry.details["images"] == [f"upload/1 ({size} bytes) sha256:{sha}"]
    assert [line.split(": ")[0] for line in entry.details["skipped"]] == [
        "upload/2 (6 bytes)", f"upload/3 ({size} bytes)", "upload/4 (0 bytes)"]
    assert f"duplicate of upload/1 ({size} bytes)" in entry.details["skipped"][1]
    kept = json.dumps([entry.details, origin, logs]).lower()
    assert not any(name in kept for name in ("joao", "silva", "maria", "souza", "ana_lima"))


async def test_removing_a_reference_keeps_the_object_a_case_still_uses(panel):
    from sqlalchemy import select

    from raiox.kit.storage import get_storage
    from raiox.models import AuditEntry, CaseImage, ReferenceImage

    case, _ = await _data()
    async with session_scope() as session:  # the case's film added to the catalog (approve's add_to_catalog)
        film = (await session.execute(select(CaseImage).where(CaseImage.case_id == case.id))).scalars().first()
        ref = ReferenceImage(system_id="neo-cm", storage_key=film.storage_key, sha256=film.sha256, source="case")
        session.add(ref)
    await login(panel, "admin@example.com")
    token = _csrf((await panel.get("/admin/catalog/neo-cm")).text)
    removed = await panel.post(f"/admin/catalog/neo-cm/references/{ref.id}/delete", data={"csrf_token": token})
    assert removed.status_code == 303 and await get_storage().exists(film.storage_key)  # the case's film stays
    async with session_scope() as session:
        entry = (await session.execute(select(AuditEntry)
                                       .where(AuditEntry.action == "catalog.reference_remove"))).scalar_one()
    assert entry.details["object_deleted"] is False and entry.actor == "user:admin@example.com"
    assert (await panel.get(f"/admin/cases/{case.id}")).status_code == 200


async def test_each_remove_reference_button_names_the_reference_and_the_system_it_removes(panel):
    """A screen reader lists the buttons by their names: each "Remover do catálogo" says which image of which system."""
    from raiox.models import ReferenceImage

    await _data()
    async with session_scope() as session:  # neo-cm's second reference
        session.add(ReferenceImage(system_id="neo-cm", storage_key="references/second.png", sha256="ab" * 32,
                                   source="upload"))
    await login(panel, "admin@example.com")
    page = (await panel.get("/admin/catalog/neo-cm")).text
    names = re.findall(r'<button class="btn btn-small" type="submit"\s+aria-label="([^"]*)">'
                       r"Remover do catálogo</button>", page)
    assert names == ["Remover do catálogo a imagem de referência 1 de Grand Morse (Neodent)",
                     "Remover do catálogo a imagem de referência 2 de Grand Morse (Neodent)"]


def _title_and_heading(html: str) -> tuple[str, str]:
    title = re.search(r"<title>(.*?)</title>", html, re.S).group(1)
    heading = re.search(r"<h1>(.*?)</h1>", html, re.S).group(1)
    return title, heading


async def test_every_page_is_titled_in_pt_br_as_its_heading_reads(panel):
    """The browser tab says what the page's heading says (then the app's name); a system is "Grand Morse (Neodent)",
    as the case page and the audit log name it (review.service.system_label), not "Neodent Grand Morse"."""
    case, _ = await _data()
    assert _title_and_heading((await panel.get("/admin/login")).text) == ("Entrar · Raiox AI", "Entrar")
    await login(panel, "admin@example.com")
    for path, heading in [("/admin/", "Fila de casos"),
                          (f"/admin/cases/{case.id}", f"Caso {case.jotform_submission_id}"),
                          ("/admin/catalog", "Catálogo de sistemas"), ("/admin/catalog/new", "Novo sistema"),
                          ("/admin/catalog/neo-cm", "Grand Morse (Neodent)"),
                          ("/admin/catalog/nob-ac", "NobelActive (Nobel Biocare)")]:
        page = await panel.get(path)
        assert page.status_code == 200, path
        assert _title_and_heading(page.text) == (f"{heading} · Raiox AI", heading), path


async def test_retry_failed_case_and_resend_failed_delivery(panel):
    from sqlalchemy import select, text

    from raiox.cases.service import transition
    from raiox.models import AuditEntry, Case

    case, failed = await _data()
    async with session_scope() as session:
        row = await session.get(Case, case.id)
        await transition(session, row, CaseStatus.approved, actor="user:rev@example.com")
        await transition(session, row, CaseStatus.delivery_failed, actor="system:delivery", reason="Jotform API 401")
    await login(panel, "admin@example.com")
    page = await panel.get(f"/admin/cases/{case.id}")
    assert "Falha na entrega" in page.text and "Jotform API 401" in page.text
    listing = await panel.get("/admin/", params={"status": "delivery_failed"})
    assert "Jotform API 401" in listing.text and f"/admin/cases/{case.id}/resend" in listing.text
    token = {"csrf_token": _csrf(page.text)}
    assert (await panel.post(f"/admin/cases/{case.id}/resend", data=token)).status_code == 303
    assert (await panel.post(f"/admin/cases/{failed.id}/retry", data=token)).status_code == 303
    async with session_scope() as session:
        assert (await session.get(Case, failed.id)).status == CaseStatus.received
        tasks = (await session.execute(text("SELECT task_name FROM procrastinate_jobs"))).scalars().all()
        assert "deliver_result" in tasks and len(tasks) == 2
        actions = set((await session.execute(select(AuditEntry.action))).scalars())
        assert {"delivery.resend", "case.retry", "auth.login"} <= actions


async def test_a_film_that_could_not_be_downloaded_is_fetched_again_from_the_case_page(panel):
    from sqlalchemy import select, text

    from raiox.models import AuditEntry, Case, CaseImage

    case, _ = await _data()
    async with session_scope() as session:
        film = (await session.execute(select(CaseImage).where(CaseImage.case_id == case.id))).scalar_one()
        film.status, film.error, film.storage_key = "failed", "upload host answered HTTP 403 for https://…", None
    await login(panel, "rev@example.com")
    page = await panel.get(f"/admin/cases/{case.id}")
    assert "Esta radiografia não pôde ser baixada" in page.text and "Baixar de novo" in page.text
    done = await panel.post(f"/admin/cases/{case.id}/retry", data={"csrf_token": _csrf(page.text)})
    assert done.status_code == 303 and done.headers["location"].endswith("?feito=refetch_queued")
    shown = await panel.get(done.headers["location"])
    assert "serão baixadas (as que falharam) e analisadas de novo em instantes" in shown.text
    # the history says it, in pt-BR
    assert "nova tentativa com as radiografias que falharam ou ficaram sem análise" in shown.text
    async with session_scope() as session:
        assert (await session.get(Case, case.id)).status == CaseStatus.awaiting_review
        tasks = (await session.execute(text("SELECT task_name FROM procrastinate_jobs"))).scalars().all()
        assert tasks == ["refetch_images"]
        entry = (await session.execute(select(AuditEntry).where(AuditEntry.action == "case.retry"))).scalar_one()
        assert entry.details == {"films_only": True} and entry.actor == "user:rev@example.com"


async def test_a_film_stored_but_never_analysed_is_offered_its_analysis_from_the_case_page(panel):
    """A film whose bytes were saved but whose analysis never ran (a job stopped in between) is taken by the case's
    retry (intake.refetch): the page offers it, in pt-BR, while the case awaits review, and not once it is decided."""
    from sqlalchemy import delete, select, text

    from raiox.cases.service import transition
    from raiox.models import AuditEntry, Case, CaseImage, Fixture

    await _data()
    async with session_scope() as session:
        case = await add_case(session, candidates=[("neo-cm", 0.78)], images=2, name="Dra. Carla Dias")
        films = (await session.execute(select(CaseImage).where(CaseImage.case_id == case.id)
                                       .order_by(CaseImage.position))).scalars().all()
        films[1].status = "stored"  # downloaded (its storage key kept), never analysed
        await session.execute(delete(Fixture).where(Fixture.case_image_id == films[1].id))
    await login(panel, "rev@example.com")
    page = await panel.get(f"/admin/cases/{case.id}")
    assert page.text.count('class="inline refetch"') == 1  # the stored film's, not the analysed one's
    assert "foi baixada, mas não chegou a ser analisada" in page.text and "Analisar de novo" in page.text
    assert "Baixar de novo" not in page.text
    done = await panel.post(f"/admin/cases/{case.id}/retry", data={"csrf_token": _csrf(page.text)})
    assert done.status_code == 303 and done.headers["location"].endswith("?feito=refetch_queued")
    async with session_scope() as session:
        assert (await session.get(Case, case.id)).status == CaseStatus.awaiting_review
        tasks = (await session.execute(text("SELECT task_name FROM procrastinate_jobs"))).scalars().all()
        assert tasks == ["refetch_images"]
        entry = (await session.execute(select(AuditEntry).where(AuditEntry.action == "case.retry"))).scalar_one()
        assert entry.details == {"films_only": True}
        await transition(session, await session.get(Case, case.id), CaseStatus.rejected, actor="user:rev@example.com")
    decided = await panel.get(f"/admin/cases/{case.id}")  # the retry would refuse it: nothing offered
    assert 'class="inline refetch"' not in decided.text and "Analisar de novo" not in decided.text


async def test_what_the_case_page_asks_and_warns_fits_the_cases_state(panel):
    """Resending asks first (it may reach the dentist twice); message boxes stop at the length the service takes;
    the low-confidence warning is for a case still to decide, not for one decided."""
    from raiox.cases.service import transition
    from raiox.models import Case

    await _data()
    async with session_scope() as session:
        unsure = await add_case(session, candidates=[("neo-cm", 0.21), ("str-bl", 0.2)], name="Dra. Incerta")
        failed = await add_case(session, candidates=[("neo-cm", 0.21), ("str-bl", 0.2)], name="Dr. Falha")
        row = await session.get(Case, failed.id)
        await transition(session, row, CaseStatus.approved, actor="user:rev@example.com")
        await transition(session, row, CaseStatus.delivery_failed, actor="system:delivery", reason="jotform: 404")
    await login(panel, "rev@example.com")
    waiting = (await panel.get(f"/admin/cases/{unsure.id}")).text
    assert 'id="low-confidence"' in waiting
    assert len(re.findall(r'<textarea[^>]*maxlength="5000"', waiting)) == 2  # reject, note
    # the approval's message prints on the one-page report: its box stops at the report's limit, and says so
    assert re.search(r'<textarea id="approve-message"[^>]*maxlength="1500"', waiting)
    assert "Impressa no relatório de uma página: até 1.500 caracteres." in waiting
    decided = (await panel.get(f"/admin/cases/{failed.id}")).text
    assert 'id="low-confidence"' not in decided
    assert len(re.findall(r'<textarea[^>]*maxlength="5000"', decided)) == 2  # delivered elsewhere, note
    confirm = "Reenviar o resultado ao dentista (Jotform e e-mail)?"
    assert re.search(r'action="/admin/cases/[^"]+/resend"[^>]*data-confirm="' + re.escape(confirm), decided)
    queue = (await panel.get("/admin/", params={"status": "delivery_failed"})).text
    assert re.search(r'action="/admin/cases/[^"]+/resend"[^>]*data-confirm="' + re.escape(confirm), queue)


async def test_a_case_to_decide_links_from_its_top_to_the_decision(panel):
    """On a phone the decision comes after every film and candidate: a link at the top of the page jumps to it while
    the case awaits one, and is gone once decided (the section stays, showing the decision)."""
    case, _ = await _data()
    await login(panel, "rev@example.com")
    page = (await panel.get(f"/admin/cases/{case.id}")).text
    link = re.search(r'<a [^>]*id="to-decision"[^>]*>([^<]*)</a>', page)
    assert link and 'href="#decision"' in link.group(0) and link.group(1) == "Ir para a decisão"
    assert link.start() < page.index('id="h-xrays"')  # above the films
    section = re.search(r'<section [^>]*id="decision"[^>]*>(?:(?!</section>).)*', page, re.S)
    assert section and 'id="approve-form"' in section.group(0) and 'id="reject-form"' in section.group(0)
    assert page.count('id="decision"') == 1
    sent = await panel.post(f"/admin/cases/{case.id}/approve", data={"system_id": "neo-cm", "csrf_token": _csrf(page)})
    assert sent.status_code == 303
    decided = (await panel.get(f"/admin/cases/{case.id}")).text
    assert 'id="to-decision"' not in decided and 'href="#decision"' not in decided
    assert re.search(r'<section [^>]*id="decision"', decided) and 'id="approve-form"' not in decided


async def test_a_decided_case_leads_on_to_the_next_case_awaiting_review(panel):
    """Clearing the queue: once a case is decided its page offers the oldest case still awaiting review (the queue's
    order; never itself, never a failed one), and nothing once none waits."""
    from datetime import UTC, datetime

    case, _failed = await _data()
    async with session_scope() as session:
        later = await add_case(session, name="Dr. Carlos Dias", candidates=[("neo-cm", 0.7)])
        older = await add_case(session, name="Dra. Eva Reis", candidates=[("neo-cm", 0.7)])
        later.created_at, older.created_at = datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
    await login(panel, "rev@example.com")
    page = (await panel.get(f"/admin/cases/{case.id}")).text
    assert 'id="next-case"' not in page  # still to decide: the decision comes first
    sent = await panel.post(f"/admin/cases/{case.id}/approve", data={"system_id": "neo-cm", "csrf_token": _csrf(page)})
    assert sent.status_code == 303
    decided = (await panel.get(sent.headers["location"])).text
    link = re.search(r'<a [^>]*id="next-case"[^>]*>([^<]*)</a>', decided)
    assert link and f'href="/admin/cases/{older.id}"' in link.group(0)
    assert link.group(1).startswith("Próximo caso aguardando revisão")
    assert f"protocolo {older.jotform_submission_id}, Dra. Eva Reis" in link.group(0)  # what a screen reader says
    nexts = []
    for other in (older, later):
        page = (await panel.get(f"/admin/cases/{other.id}")).text
        await panel.post(f"/admin/cases/{other.id}/reject", data={"message": "Envie outra radiografia.",
                                                                   "csrf_token": _csrf(page)})
        nexts.append(re.search(r'id="next-case" href="/admin/cases/([^"]+)"',
                               (await panel.get(f"/admin/cases/{other.id}")).text))
    assert nexts[0] and nexts[0].group(1) == str(later.id)
    assert nexts[1] is None  # none waits (the failed case is no review)


async def test_a_form_sent_after_the_session_ended_says_so_and_leads_back_to_its_page(panel):
    case, _ = await _data()
    await login(panel, "rev@example.com")
    page = await panel.get(f"/admin/cases/{case.id}")
    token = _csrf(page.text)
    await panel.post("/admin/logout", data={"csrf_token": token})  # e.g. signed out in another tab
    here = f"http://testserver/admin/cases/{case.id}"
    sent = await panel.post(f"/admin/cases/{case.id}/notes", data={"text": "Nota digitada", "csrf_token": token},
                            headers={"referer": here})
    assert sent.status_code == 303
    assert sent.headers["location"] == f"/admin/login?expirou=1&next=/admin/cases/{case.id}"
    elsewhere = await panel.post(f"/admin/cases/{case.id}/notes", data={"text": "x"},
                                 headers={"referer": "https://evil.example/admin/cases/x"})  # never another site
    assert elsewhere.headers["location"] == "/admin/login?expirou=1"
    shown = await panel.get(sent.headers["location"])
    assert 'id="session-ended"' in shown.text and "o que você tinha digitado não foi enviado" in shown.text
    assert f'name="next" value="/admin/cases/{case.id}"' in shown.text
    back = await panel.post("/admin/login", data={"email": "rev@example.com", "password": PASSWORD,
                                                  "next": f"/admin/cases/{case.id}", "csrf_token": _csrf(shown.text)})
    assert back.status_code == 303 and back.headers["location"] == f"/admin/cases/{case.id}"
    async with session_scope() as session:
        from sqlalchemy import select

        from raiox.models import AuditEntry
        notes = (await session.execute(select(AuditEntry).where(AuditEntry.action == "case.note"))).scalars().all()
        assert notes == []  # nothing was recorded from the expired form


async def test_login_outcomes_are_counted_in_metrics(panel):
    from raiox.kit.metrics import REGISTRY

    def value(outcome: str) -> float:
        return REGISTRY.get_sample_value("raiox_admin_logins_total", {"outcome": outcome}) or 0.0

    await _data()
    failed, ok = value("failed"), value("ok")
    await login(panel, "rev@example.com", "nope")
    await login(panel, "rev@example.com")
    assert value("failed") == failed + 1 and value("ok") == ok + 1


async def test_the_case_page_warns_when_its_implants_look_like_different_systems(panel):
    """One approval sends one system: implants whose confident first candidates differ are named on the page."""
    from sqlalchemy import select

    from raiox.models import CaseImage, Fixture, FixtureResult

    single_case, _ = await _data()
    async with session_scope() as session:
        same = await add_case(session, candidates=[("neo-cm", 0.93), ("str-bl", 0.70)], images=2, name="Dr. Same")
        mixed = await add_case(session, candidates=[("neo-cm", 0.93), ("str-bl", 0.70)], images=2, name="Dr. Mixed")
        second = (await session.execute(select(Fixture).join(CaseImage).where(
            CaseImage.case_id == mixed.id, CaseImage.position == 1))).scalars().one()
        for result in (await session.execute(select(FixtureResult).where(
                FixtureResult.fixture_id == second.id))).scalars():
            result.system_id = {"neo-cm": "str-bl", "str-bl": "neo-cm"}[result.system_id]  # film 2: the other one
    await login(panel, "rev@example.com")
    assert 'id="mixed-systems"' not in (await panel.get(f"/admin/cases/{same.id}")).text
    page = (await panel.get(f"/admin/cases/{mixed.id}")).text
    warning = re.search(r'<div class="alert alert-warn" role="alert" id="mixed-systems">(.*?)</div>',
                        page, re.S).group(1)
    assert "radiografia 1, implante 1: <strong>Grand Morse</strong>" in warning
    assert "radiografia 2, implante 1: <strong>Bone Level</strong>" in warning
    # the approval can name the other system: offered with the implant it leads, then sent with the main one
    offered = re.search(r'<fieldset id="other-systems">(.*?)</fieldset>', page, re.S).group(1)
    assert re.findall(r'name="other_system_ids" value="([^"]+)"', offered) == ["neo-cm", "str-bl"]
    assert "1º candidato em radiografia 2, implante 1" in offered.split('value="str-bl"')[1]
    single = (await panel.get(f"/admin/cases/{single_case.id}")).text
    assert 'id="other-systems"' not in single  # one implant: nothing else to name
    approved = await panel.post(f"/admin/cases/{mixed.id}/approve", data={
        "system_id": "neo-cm", "other_system_ids": ["str-bl"], "csrf_token": _csrf(page)})
    assert approved.status_code == 303
    after = (await panel.get(f"/admin/cases/{mixed.id}")).text
    others = re.search(r'<ol id="approved-others">(.*?)</ol>', after, re.S).group(1)
    assert "Bone Level" in others and "Grand Morse" not in others


async def test_a_failed_delivery_marked_delivered_from_the_case_page(panel):
    from raiox.cases.service import transition
    from raiox.delivery import repository as delivery_repo
    from raiox.models import Case
    from raiox.review import service

    case, _ = await _data()
    async with session_scope() as session:
        await service.approve(session, case.id, "neo-cm", actor="user:rev@example.com")
        row = await session.get(Case, case.id)
        await transition(session, row, CaseStatus.delivery_failed, actor="system:delivery",
                         reason="jotform: Jotform API 401")
        (await delivery_repo.get_delivery(session, case.id)).status = "failed"  # what the delivery job leaves
    await login(panel, "rev@example.com")
    page = (await panel.get(f"/admin/cases/{case.id}")).text
    form = re.search(r'<details id="mark-delivered">(.*?)</details>', page, re.S).group(1)
    assert f'action="/admin/cases/{case.id}/mark-delivered"' in form and "data-confirm" in form
    empty = await panel.post(f"/admin/cases/{case.id}/mark-delivered", data={"message": " ", "csrf_token": _csrf(page)})
    assert empty.status_code == 422 and "Informe como o resultado chegou ao dentista" in empty.text
    done = await panel.post(f"/admin/cases/{case.id}/mark-delivered",
                            data={"message": "Enviado por WhatsApp.", "csrf_token": _csrf(page)})
    assert done.status_code == 303
    after = (await panel.get(f"/admin/cases/{case.id}")).text
    assert re.search(r'id="case-status">\s*Entregue\s*<', after) and 'id="mark-delivered"' not in after
    assert "Entregue por outro meio" in after and "Marcado como entregue por outro meio" in after
    assert "Enviado por WhatsApp." in after


async def test_a_resend_in_progress_is_shown_as_such_not_as_the_old_failure(panel):
    from raiox.cases.service import transition
    from raiox.delivery import repository as delivery_repo
    from raiox.models import Case
    from raiox.review import service

    case, _ = await _data()
    async with session_scope() as session:
        await service.approve(session, case.id, "neo-cm", actor="user:rev@example.com")
        await transition(session, await session.get(Case, case.id), CaseStatus.delivery_failed, actor="system:delivery",
                         reason="jotform: Jotform API 503: unavailable")
        record = await delivery_repo.get_delivery(session, case.id)
        record.status = "failed"
        record.email_sent_at = record.created_at
    await login(panel, "rev@example.com")
    page = (await panel.get(f"/admin/cases/{case.id}")).text
    assert 'id="email-went"' in page and "falta apenas o Jotform" in page and "Reenviar resultado" in page
    await panel.post(f"/admin/cases/{case.id}/resend", data={"csrf_token": _csrf(page)})
    after = (await panel.get(f"/admin/cases/{case.id}")).text
    assert 'id="resend-pending"' in after and f'/cases/{case.id}/resend"' not in after and "alert-error" not in after


async def test_queue_tabs_keep_the_filters_and_a_delivered_rejection_is_marked(panel):
    from raiox.cases.service import transition
    from raiox.models import Case
    from raiox.review import service

    case, _ = await _data()
    async with session_scope() as session:
        await service.reject(session, case.id, "Envie uma radiografia mais nítida.", actor="user:rev@example.com")
        await transition(session, await session.get(Case, case.id), CaseStatus.delivered, actor="system:delivery")
    await login(panel, "rev@example.com")
    page = (await panel.get("/admin/", params={"status": "all", "client": "Ana Souza", "q": "x&y"})).text
    assert 'href="?status=delivered&client=Ana%20Souza&q=x%26y"' in page
    listing = (await panel.get("/admin/", params={"status": "delivered"})).text
    row = re.search(r"<tr>(?:(?!</tr>).)*Dra\. Ana Souza.*?</tr>", listing, re.S).group(0)
    assert "Entregue" in row and '<span class="badge badge-rejected">rejeitado</span>' in row


async def test_a_delivered_case_shows_its_decision_approved_or_rejected_alike(panel):
    """A delivered (or undeliverable) case shows what the reviewer decided: "rejeitado" for a rejection, "aprovado"
    for an approval (the approvals had none: an unmarked row read as no decision); a case still `approved` needs no
    second badge."""
    from raiox.cases.service import transition
    from raiox.models import Case

    await _data()
    await _decided("Dra. Carla Dias", approve=False, delivered=True)
    await _decided("Dr. Davi Melo", approve=True, delivered=True)
    failed = await _decided("Dra. Eva Rocha", approve=True, delivered=False)
    await _decided("Dr. Fábio Reis", approve=True, delivered=False)
    async with session_scope() as session:
        await transition(session, await session.get(Case, failed.id), CaseStatus.delivery_failed,
                         actor="system:delivery", reason="jotform: Jotform API 503: unavailable")
    await login(panel, "rev@example.com")
    listing = (await panel.get("/admin/", params={"status": "all"})).text

    def row(name: str) -> str:
        return re.search(rf"<tr>(?:(?!</tr>).)*{re.escape(name)}.*?</tr>", listing, re.S).group(0)

    approved, rejected = '<span class="badge badge-approved">aprovado</span>', \
        '<span class="badge badge-rejected">rejeitado</span>'
    assert rejected in row("Dra. Carla Dias") and approved not in row("Dra. Carla Dias")
    assert approved in row("Dr. Davi Melo") and rejected not in row("Dr. Davi Melo")
    assert approved in row("Dra. Eva Rocha") and "Falha na entrega" in row("Dra. Eva Rocha")
    assert approved not in row("Dr. Fábio Reis") and ">Aprovado</span>" in row("Dr. Fábio Reis")


async def test_the_system_search_finds_connections_by_the_words_the_panel_shows(panel):
    from raiox.models import ImplantSystem

    await _data()
    async with session_scope() as session:
        (await session.get(ImplantSystem, "nob-ac")).connection = "internal hex"  # typed in English, shown in pt-BR
    await login(panel, "admin@example.com")
    for query in ("hexágono interno", "hexagono interno nobel", "internal hex", "hexágono", "HI"):
        found = (await panel.get("/admin/systems/search", params={"q": query})).text
        assert 'value="nob-ac"' in found and 'value="neo-cm"' not in found, query
    for query in ("cônica", "conica", "CM"):  # the word by word search behind both pages (test_system_search)
        found = (await panel.get("/admin/systems/search", params={"q": query})).text
        assert 'value="neo-cm"' in found and 'value="nob-ac"' not in found, query
    listing = (await panel.get("/admin/catalog", params={"q": "Hexágono Interno"})).text
    assert "NobelActive" in listing and "Grand Morse" not in listing
    listing = (await panel.get("/admin/catalog", params={"q": "cone morse"})).text
    assert "Grand Morse" in listing and "NobelActive" not in listing
    typed = (await panel.get("/admin/systems/search", params={"q": "cone morse"})).text  # as the catalog typed it
    assert 'value="neo-cm"' in typed
    from raiox.review import repository

    async with session_scope() as session:  # a query of thousands of words is cut to its first few, not one clause each
        found = await repository.search_systems(session, " ".join(["nobel"] * 3000 + ["absent"]))
    assert [s.id for s in found] == ["nob-ac"]


async def test_only_admins_add_case_films_to_the_catalog_through_the_api_too(panel):
    from raiox.review.auth import CSRF_HEADER

    case, _ = await _data()
    body = {"system_id": "neo-cm", "add_to_catalog": True}
    await login(panel, "rev@example.com")
    csrf = _csrf((await panel.get("/admin/")).text)
    refused = await panel.post(f"/cases/{case.id}/approve", json=body, headers={CSRF_HEADER: csrf})
    assert refused.status_code == 403 and "only admins" in refused.json()["detail"]
    await panel.post("/admin/logout", data={"csrf_token": csrf})
    await login(panel, "admin@example.com")
    csrf = _csrf((await panel.get("/admin/")).text)
    allowed = await panel.post(f"/cases/{case.id}/approve", json=body, headers={CSRF_HEADER: csrf})
    assert allowed.status_code == 200, allowed.text


@pytest.mark.parametrize("path", ["/admin/catalog/neo-cm/images", "/admin/catalog/login", "/admin/cases/x/login"])
async def test_an_anonymous_post_is_sent_to_the_login_before_its_body_is_read(panel, path):
    pulled = []

    async def body():
        for _ in range(64):  # 64 MiB offered to the catalog upload (or to a path that only ends like the login's)
            pulled.append(1)
            yield b"\0" * (1 << 20)

    response = await panel.post(path, content=body(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 303 and response.headers["location"].endswith("/admin/login?expirou=1")
    assert len(pulled) <= 2
    page = await panel.get("/admin/login")  # the login form itself still posts without a session
    assert (await login(panel, "nobody@example.com")).status_code == 401 and page.status_code == 200


async def test_a_reviewers_catalog_upload_is_refused_before_its_body_is_read(panel):
    await _data()
    await login(panel, "rev@example.com")
    pulled = []

    async def body():
        for _ in range(64):  # 64 MiB offered to the catalog upload, an admin's page
            pulled.append(1)
            yield b"\0" * (1 << 20)

    response = await panel.post("/admin/catalog/neo-cm/images", content=body(),
                                headers={"content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 403 and "administradores" in response.text
    assert len(pulled) <= 2


async def test_form_answers_show_what_the_dentist_card_does_not(panel):
    case, _ = await _data()
    await login(panel, "rev@example.com")
    page = (await panel.get(f"/admin/cases/{case.id}")).text
    answers = re.search(r"<details><summary>Respostas do formulário</summary>(.*?)</details>", page, re.S).group(1)
    assert "<dt>Regiao</dt><dd>36</dd>" in answers and "<dt>Nome</dt><dd>Ana Souza</dd>" in answers
    assert "dentista@example.com" not in answers  # already the card's e-mail: not repeated


async def test_the_case_page_shows_the_tooth_and_the_queue_search_finds_it(panel):
    case, failed = await _data()
    async with session_scope() as session:
        named = await add_case(session, name="Dr. Caio Reis", tooth="Região de 46", candidates=[("neo-cm", 0.8)])
    await login(panel, "rev@example.com")
    page = (await panel.get(f"/admin/cases/{named.id}")).text
    assert '<dt>Dente / região</dt><dd data-field="tooth">Região de 46</dd>' in page
    answers = re.search(r"<details><summary>Respostas do formulário</summary>(.*?)</details>", page, re.S).group(1)
    assert "<dt>Regiao</dt>" in answers  # its question's own answer ("36" here) is still listed
    assert '<dd data-field="tooth">—</dd>' in (await panel.get(f"/admin/cases/{case.id}")).text
    for word in ("regiao de 46", "REGIÃO DE"):
        found = (await panel.get("/admin/", params={"status": "all", "q": word})).text
        assert "Dr. Caio Reis" in found and "Dra. Ana Souza" not in found and "Dr. Bruno Lima" not in found, word
    assert "dente" in (await panel.get("/admin/")).text.split('id="f-q"')[1].split(">")[0]  # the hint says so


async def test_a_tooth_answer_is_not_repeated_among_the_form_answers(panel):
    async with session_scope() as session:
        case = await add_case(session, tooth="36")  # the form's "q8_regiao": "36" is the tooth shown on the card
        await add_user(session, "rev@example.com", PASSWORD, "reviewer")
    await login(panel, "rev@example.com")
    page = (await panel.get(f"/admin/cases/{case.id}")).text
    answers = re.search(r"<details><summary>Respostas do formulário</summary>(.*?)</details>", page, re.S).group(1)
    assert "<dt>Regiao</dt>" not in answers and "<dt>Nome</dt><dd>Ana Souza</dd>" in answers


async def test_users_disable_cli_ends_the_sessions_at_once_and_list_shows_it(panel):
    import os
    import subprocess
    import sys

    from sqlalchemy import select

    from raiox.models import AuditEntry

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "raiox", "users", *args], text=True, capture_output=True,
                              env=os.environ | {"PYTHONPATH": "src"}, timeout=120)

    await _data()
    await login(panel, "rev@example.com")
    assert (await panel.get("/admin/", follow_redirects=False)).status_code == 200
    import asyncio

    disabled, missing = await asyncio.gather(asyncio.to_thread(cli, "disable", "REV@example.com"),  # both at once
                                             asyncio.to_thread(cli, "disable", "nobody@example.com"))
    assert disabled.returncode == 0, disabled.stderr
    assert disabled.stdout == "user rev@example.com disabled; their sessions ended\n"  # the result on stdout
    assert missing.returncode == 1 and "no panel user nobody@example.com" in missing.stderr and missing.stdout == ""
    assert (await panel.get("/admin/", follow_redirects=False)).status_code == 303  # signed out at once
    assert (await login(panel, "rev@example.com")).status_code == 401  # and cannot sign in again
    listed = cli("list").stdout.splitlines()
    assert "rev@example.com\treviewer\tdisabled" in listed and "admin@example.com\tadmin\tactive" in listed
    async with session_scope() as session:
        audits = (await session.execute(select(AuditEntry.target).where(AuditEntry.action == "user.disable"))).scalars()
        assert list(audits) == ["rev@example.com"]


async def test_the_case_page_draws_the_implants_and_marks_or_removes_one(panel):
    from sqlalchemy import select

    from raiox.models import AuditEntry, Fixture

    case, failed = await _data()
    await login(panel, "rev@example.com")
    page = (await panel.get(f"/admin/cases/{case.id}")).text
    assert '<svg class="marks" viewBox="0 0 640 420"' in page
    assert 'points="300.0,90.0 340.0,90.0 340.0,300.0 300.0,300.0 "' in page  # the located box over the film
    assert "Marcar implante" in page and "Remover este implante" in page
    url = re.search(r'action="(/admin/cases/[^"]+/fixtures)"', page).group(1)
    token = _csrf(page)

    small = await panel.post(url, data={"x0": 10, "y0": 10, "x1": 15, "y1": 80, "csrf_token": token})
    assert small.status_code == 422 and "menos de 8 pixels" in small.text
    # corners of a drag from the bottom right, past the film's edge: ordered and clipped, not refused
    marked = await panel.post(url, data={"x0": 700, "y0": 330, "x1": 420, "y1": 80, "csrf_token": token})
    assert marked.status_code == 303 and "#fixture-" in marked.headers["location"]
    fixture_id = marked.headers["location"].rsplit("#fixture-", 1)[1]
    async with session_scope() as session:
        fixture = await session.get(Fixture, __import__("uuid").UUID(fixture_id))
        assert fixture.manual and fixture.index == 1 and fixture.confidence == 1.0
        xs = [x for x, _y in fixture.box]
        assert min(xs) >= 420 - 1 and max(xs) <= 640 + 1  # inside the drawn (clipped) box
        actions = (await session.execute(select(AuditEntry.action).where(AuditEntry.case_id == case.id))).scalars()
        assert list(actions) == ["case.fixture_add"]
    page = (await panel.get(f"/admin/cases/{case.id}")).text
    assert f'id="fixture-{fixture_id}"' in page and "marcado pelo revisor" in page
    assert page.count('<polygon class="mark') == 2 and 'class="mark manual"' in page
    assert "Marcou um implante" in page and "radiografia 1, implante 2" in page

    removed = await panel.post(f"/admin/cases/{case.id}/fixtures/{fixture_id}/delete", data={"csrf_token": token})
    assert removed.status_code == 303
    page = (await panel.get(f"/admin/cases/{case.id}")).text
    assert f'id="fixture-{fixture_id}"' not in page and "Removeu um implante" in page
    gone = await panel.post(f"/admin/cases/{case.id}/fixtures/{fixture_id}/delete", data={"csrf_token": token})
    assert gone.status_code == 404

    closed = (await panel.get(f"/admin/cases/{failed.id}")).text  # nothing to review: no marking, no removing
    assert "Marcar implante" not in closed and "Remover este implante" not in closed


async def test_the_approval_says_which_system_each_implant_is(panel):
    """Two implants: a select per implant; a system chosen there (not ticked among the other systems) is sent as
    another system, "o sistema principal" follows the chosen main one, and the decision shows the mapping."""
    from sqlalchemy import select

    from raiox.models import Case, CaseImage, Fixture

    single_case, _ = await _data()
    async with session_scope() as session:
        two = await add_case(session, candidates=[("neo-cm", 0.93), ("str-bl", 0.70)], images=2, name="Dr. Two")
        fixtures = (await session.execute(select(Fixture.id).join(CaseImage).where(CaseImage.case_id == two.id)
                                          .order_by(CaseImage.position))).scalars().all()
    await login(panel, "rev@example.com")
    assert 'id="implant-systems"' not in (await panel.get(f"/admin/cases/{single_case.id}")).text  # one implant
    page = (await panel.get(f"/admin/cases/{two.id}")).text
    rows = re.search(r'<fieldset id="implant-systems">(.*?)</fieldset>', page, re.S).group(1)
    assert "radiografia 1, implante 1" in rows and "radiografia 2, implante 1" in rows
    assert f'value="{fixtures[1]}|str-bl"' in rows and f'value="{fixtures[0]}|main"' in rows
    approved = await panel.post(f"/admin/cases/{two.id}/approve", data={
        "system_id": "neo-cm", "implants": [f"{fixtures[0]}|main", f"{fixtures[1]}|str-bl"], "csrf_token": _csrf(page)})
    assert approved.status_code == 303, approved.text
    async with session_scope() as session:
        case = await session.get(Case, two.id)
        assert case.other_system_ids == ["str-bl"]  # stated for an implant only: sent as another system
        assert case.implant_systems == {str(fixtures[0]): "neo-cm", str(fixtures[1]): "str-bl"}
    after = (await panel.get(f"/admin/cases/{two.id}")).text
    listed = re.search(r'<ul id="approved-implants">(.*?)</ul>', after, re.S).group(1)
    assert listed.index("radiografia 1, implante 1: <strong>Grand Morse</strong>") < listed.index(
        "radiografia 2, implante 1: <strong>Bone Level</strong>")


async def test_failing_logins_from_elsewhere_does_not_lock_the_operator_out(committed):
    """Failures lock their source address out of the account; the operator, from another address, still gets in;
    the account itself locks only after RAIOX_ADMIN_MAX_FAILED_LOGINS_ACCOUNT failures from everywhere, and then
    not for the address the operator signed in from lately; an IPv6 source is its whole /64."""
    import os

    from raiox.app import create_app
    from raiox.kit.settings import get_settings

    await _data()
    app = create_app()

    def client(ip: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 5000)), base_url="http://testserver")

    async with client("203.0.113.9") as attacker, client("198.51.100.7") as operator:
        for _ in range(5):
            assert (await login(attacker, "rev@example.com", "guess")).status_code == 401
        assert (await login(attacker, "rev@example.com")).status_code == 401  # that source is locked out
        assert (await login(operator, "rev@example.com")).status_code == 303  # the operator is not
        assert (await login(attacker, "rev@example.com")).status_code == 401  # the operator's login unlocks no one else
    os.environ["RAIOX_ADMIN_MAX_FAILED_LOGINS_ACCOUNT"] = "8"
    get_settings.cache_clear()
    try:
        app = create_app()
        for k in range(8):  # a distributed guess: eight sources, one failure each
            async with client(f"192.0.2.{k + 1}") as guesser:
                assert (await login(guesser, "rev@example.com", "guess")).status_code == 401
        async with client("198.51.100.99") as newcomer:
            assert (await login(newcomer, "rev@example.com")).status_code == 401  # now the account is locked
        async with client("198.51.100.7") as operator:  # ... but not for where the operator signed in from lately
            assert (await login(operator, "rev@example.com")).status_code == 303
    finally:
        del os.environ["RAIOX_ADMIN_MAX_FAILED_LOGINS_ACCOUNT"]
        get_settings.cache_clear()
    app = create_app()
    for k in range(5):  # five addresses of one IPv6 /64: one source
        async with client(f"2001:db8:0:1::{k + 1}") as guesser:
            assert (await login(guesser, "admin@example.com", "guess")).status_code == 401
    async with client("2001:db8:0:1::abcd") as same_network:
        assert (await login(same_network, "admin@example.com")).status_code == 401
    async with client("2001:db8:0:2::1") as other_network:
        assert (await login(other_network, "admin@example.com")).status_code == 303
    async with session_scope() as session:  # each lock is in the audit log: who set it (the source), on what, which
        from sqlalchemy import select

        from raiox.models import AuditEntry

        locks = (await session.execute(select(AuditEntry.actor, AuditEntry.target, AuditEntry.details["scope"])
                                       .where(AuditEntry.action == "auth.lockout").order_by(AuditEntry.id))).all()
    assert [tuple(row) for row in locks] == [("ip:203.0.113.9", "rev@example.com", "source"),
                                              ("ip:192.0.2.8", "rev@example.com", "account"),
                                              ("ip:2001:db8:0:1::/64", "admin@example.com", "source")]


async def test_a_delivered_case_offers_a_new_link_and_revoking_the_old_ones(panel):
    from raiox.models import Case

    case, _failed = await _data()
    async with session_scope() as session:
        done = await session.get(Case, case.id)
        done.status, done.approved_system_id = CaseStatus.delivered, "neo-cm"
        done.reviewed_by, done.reviewed_at = "user:rev@example.com", __import__("datetime").datetime.now()
    await login(panel, "rev@example.com")
    page = (await panel.get(f"/admin/cases/{case.id}")).text
    assert "Enviar de novo ao dentista" in page and "Revogar link do relatório" in page
    revoked = await panel.post(f"/admin/cases/{case.id}/revoke-report", data={"csrf_token": _csrf(page)})
    assert revoked.status_code == 303
    sent = await panel.post(f"/admin/cases/{case.id}/redeliver", data={"csrf_token": _csrf(page)})
    assert sent.status_code == 303
    page = (await panel.get(f"/admin/cases/{case.id}")).text
    assert "Revogou os links do relatório" in page and "Reenvio ao dentista solicitado (novo link)" in page
    assert "/redeliver" not in page  # on its way again: approved, not delivered
    assert "/revoke-report" not in page  # a delivery is on its way: nothing to revoke or send meanwhile
    again = await panel.post(f"/admin/cases/{case.id}/redeliver", data={"csrf_token": _csrf(page)})
    assert again.status_code == 409
    running = await panel.post(f"/admin/cases/{case.id}/revoke-report", data={"csrf_token": _csrf(page)})
    assert running.status_code == 409 and "Há uma entrega deste caso em andamento" in running.text
    async with session_scope() as session:  # delivered again, at once
        from review_helpers import settle_jobs

        await settle_jobs(session)
        (await session.get(Case, case.id)).status = CaseStatus.delivered
    soon = await panel.post(f"/admin/cases/{case.id}/redeliver", data={"csrf_token": _csrf(page)})
    assert soon.status_code == 429 and "Aguarde 10 min" in soon.text


async def test_approval_mistakes_from_the_implant_selects_read_in_portuguese(panel):
    """Ticked plus stated systems past the limit, or a stated implant removed in another tab: a pt-BR answer."""
    from sqlalchemy import select

    from raiox.models import Case, CaseImage, Fixture

    await _data()
    async with session_scope() as session:
        for k in range(9):
            await add_system(session, f"sys-{k}", "Acme", f"Sistema {k}", seed=10 + k)
        two = await add_case(session, candidates=[("neo-cm", 0.93), ("str-bl", 0.70)], images=2, name="Dr. Two")
        fixtures = (await session.execute(select(Fixture.id).join(CaseImage).where(CaseImage.case_id == two.id)
                                          .order_by(CaseImage.position))).scalars().all()
    await login(panel, "rev@example.com")
    token = _csrf((await panel.get(f"/admin/cases/{two.id}")).text)
    many = await panel.post(f"/admin/cases/{two.id}/approve", data={
        "system_id": "neo-cm", "other_system_ids": [f"sys-{k}" for k in range(8)],
        "implants": [f"{fixtures[1]}|sys-8"], "csrf_token": token})
    assert many.status_code == 422 and "nomearia 9 outros sistemas" in many.text
    gone = await panel.post(f"/admin/cases/{two.id}/approve", data={
        "system_id": "neo-cm", "implants": [f"{__import__('uuid').uuid4()}|main"], "csrf_token": token})
    assert gone.status_code == 409 and "Volte ao caso e aprove de novo" in gone.text
    async with session_scope() as session:
        assert (await session.get(Case, two.id)).status == CaseStatus.awaiting_review


async def test_the_operator_corrects_a_mistyped_email_in_portuguese(panel):
    from raiox.models import Case

    case, _failed = await _data()
    await login(panel, "rev@example.com")
    page = (await panel.get(f"/admin/cases/{case.id}")).text
    assert "Corrigir e-mail do dentista" in page
    bad = await panel.post(f"/admin/cases/{case.id}/contact", data={"email": "ana@", "csrf_token": _csrf(page)})
    assert bad.status_code == 422 and "não é um endereço de e-mail" in bad.text
    done = await panel.post(f"/admin/cases/{case.id}/contact",
                            data={"email": "ana@clinica.com.br", "csrf_token": _csrf(page)})
    assert done.status_code == 303
    async with session_scope() as session:
        assert (await session.get(Case, case.id)).client_email == "ana@clinica.com.br"
    page = (await panel.get(f"/admin/cases/{case.id}")).text
    assert "Corrigiu o e-mail do dentista" in page and "dentista@example.com → ana@clinica.com.br" in page


async def test_a_film_not_analysed_because_the_case_was_decided_reads_so_in_pt_br(panel):
    """`skipped` (a refetch that finished after the approval: raiox.intake.refetch): the film is still shown, its badge
    and reason in pt-BR."""
    from sqlalchemy import update

    from raiox.intake.processing import decided_reason
    from raiox.models import CaseImage

    async with session_scope() as session:
        await add_system(session, "neo-cm", "Neodent", "Grand Morse", seed=1)
        case = await add_case(session, status=CaseStatus.approved, candidates=[("neo-cm", 0.78)], images=2)
        await session.execute(update(CaseImage).where(CaseImage.case_id == case.id, CaseImage.position == 1)
                              .values(status="skipped", error=decided_reason("approved")))
        await add_user(session, "rev@example.com", PASSWORD, "reviewer")
    await login(panel, "rev@example.com")
    page = await panel.get(f"/admin/cases/{case.id}")
    assert page.status_code == 200
    assert "não analisada" in page.text
    assert "o caso já tinha sido decidido antes da análise desta radiografia" in page.text
    assert page.text.count("/media/case-images/") >= 2  # both films still shown


async def test_a_failed_case_can_be_rejected_so_its_dentist_hears_why(panel):
    """A case no film of which could be downloaded or read (`failed`) offers, besides the retry, the rejection that
    tells the dentist what to send (nothing to approve); rejected, it is delivered, and no longer retried."""
    from sqlalchemy import select

    from raiox.models import AuditEntry, Case, Delivery

    _, failed = await _data()
    await login(panel, "rev@example.com")
    page = (await panel.get(f"/admin/cases/{failed.id}")).text
    section = re.search(r'<section [^>]*id="decision"[^>]*>(?:(?!</section>).)*', page, re.S).group(0)
    assert 'id="reject-form"' in section and 'id="approve-form"' not in section
    assert "Nenhuma radiografia deste caso pôde ser baixada ou lida" in section
    assert 'placeholder="Ex.: não conseguimos abrir os arquivos enviados.' in section
    message = "Não conseguimos abrir os arquivos enviados. Envie as radiografias em JPEG ou PNG."
    rejected = await panel.post(f"/admin/cases/{failed.id}/reject",
                                data={"message": message, "csrf_token": _csrf(page)})
    assert rejected.status_code == 303
    async with session_scope() as session:
        case = await session.get(Case, failed.id)
        assert (case.status, case.review_message, case.failure_reason) == (CaseStatus.rejected, message, None)
        assert (await session.execute(select(Delivery.status).where(Delivery.case_id == failed.id))).scalar_one() \
            == "pending"
        actions = (await session.execute(select(AuditEntry.action).where(AuditEntry.case_id == failed.id))).scalars()
        assert "case.reject" in list(actions)
    page = (await panel.get(f"/admin/cases/{failed.id}")).text
    assert 'id="reject-form"' not in page and "Caso rejeitado." in page
    retried = await panel.post(f"/admin/cases/{failed.id}/retry", data={"csrf_token": _csrf(page)})
    async with session_scope() as session:
        assert (await session.get(Case, failed.id)).status == CaseStatus.rejected  # the retry changed nothing
    assert retried.status_code in (303, 409)


async def _decided(name: str, *, approve: bool, delivered: bool):
    """A case decided (approved with neo-cm, or rejected) by the reviewer, then delivered or not."""
    from raiox.cases.service import transition
    from raiox.models import Case
    from raiox.review import service

    async with session_scope() as session:
        case = await add_case(session, name=name, candidates=[("neo-cm", 0.8)], images=0)
        if approve:
            await service.approve(session, case.id, "neo-cm", actor="user:rev@example.com")
        else:
            await service.reject(session, case.id, "Envie uma radiografia mais nítida.", actor="user:rev@example.com")
        if delivered:
            await transition(session, await session.get(Case, case.id), CaseStatus.delivered, actor="system:delivery")
    return case


async def test_the_outcome_filter_finds_decisions_whatever_became_of_the_case(panel):
    """ "Which cases did we reject?": a rejection delivered since is listed under "Entregue", not "Rejeitado"; the
    filter `resultado` keeps the cases so decided, with the tabs, counts and other filters."""
    await _data()  # Ana awaiting review, Bruno failed: neither decided
    await _decided("Dra. Carla Dias", approve=False, delivered=True)
    await _decided("Dra. Eva Rocha", approve=False, delivered=False)
    await _decided("Dr. Davi Melo", approve=True, delivered=True)
    await _decided("Dr. Fábio Reis", approve=True, delivered=False)
    await login(panel, "rev@example.com")

    async def listed(**params) -> tuple[str, dict[str, int]]:
        page = await panel.get("/admin/", params={"status": "all", **params})
        assert page.status_code == 200, page.text[:300]
        return page.text, tab_counts(page.text)

    plain, counts = await listed()
    assert (counts["rejected"], counts["delivered"], counts["all"]) == (1, 2, 6)  # without it: as before
    rejected, counts = await listed(resultado="rejected")
    assert "Dra. Carla Dias" in rejected and "Dra. Eva Rocha" in rejected and "2 casos encontrados" in rejected
    assert not {"Dr. Davi Melo", "Dr. Fábio Reis", "Dra. Ana Souza", "Dr. Bruno Lima"} & set(re.findall(
        r"<strong>([^<]+)</strong>", rejected))
    assert (counts["all"], counts["rejected"], counts["delivered"], counts["attention"]) == (2, 1, 1, 0)
    assert '<option value="rejected" selected>Rejeitados</option>' in rejected
    assert 'href="?status=delivered&resultado=rejected"' in rejected  # the tabs keep it
    delivered = (await panel.get("/admin/", params={"status": "delivered", "resultado": "rejected"})).text
    assert "Dra. Carla Dias" in delivered and "Dra. Eva Rocha" not in delivered and "1 caso encontrado" in delivered
    approved, counts = await listed(resultado="approved", q="d")
    assert "Dr. Davi Melo" in approved and "Dr. Fábio Reis" in approved and "Dra. Carla Dias" not in approved
    assert (counts["all"], counts["approved"], counts["delivered"]) == (2, 1, 1)
    unknown = await panel.get("/admin/", params={"resultado": "maybe"})
    assert unknown.status_code == 400 and "Resultado desconhecido: maybe" in unknown.text


async def test_every_list_is_paged_alike_naming_its_pages_and_keeping_its_filters(panel):
    """Queue, catalog (and audit log, tests/review/test_audit_page.py): one pager, "Página X de Y", named for
    screen readers, its links keeping the list's filters."""
    from datetime import UTC, datetime

    from raiox.models import Case, ImplantSystem

    await _data()
    async with session_scope() as session:
        for i in range(51):
            session.add(Case(jotform_submission_id=f"77{i:05d}", client_name=f"Dr. Lote {i}", status="rejected",
                             reviewed_at=datetime.now(UTC), reviewed_by="user:rev@example.com"))
            session.add(ImplantSystem(id=f"lote-{i:02d}", manufacturer="Lote", name=f"Sistema {i:02d}"))
    await login(panel, "admin@example.com")
    queue = (await panel.get("/admin/", params={"status": "all", "resultado": "rejected", "q": "lote"})).text
    pager = unescape(re.search(r'<nav class="pager"[^>]*>.*?</nav>', queue, re.S).group(0))
    assert 'aria-label="Páginas"' in pager and "Página 1 de 2" in pager
    assert 'href="?status=all&q=lote&resultado=rejected&page=2"' in pager
    second = (await panel.get("/admin/", params={"status": "all", "resultado": "rejected", "q": "lote",
                                                 "page": "2"})).text
    assert "Página 2 de 2" in second and "1 caso encontrado" not in second and "51 casos encontrados" in second
    catalog = (await panel.get("/admin/catalog", params={"q": "lote"})).text
    pager = re.search(r'<nav class="pager"[^>]*>.*?</nav>', catalog, re.S).group(0)
    assert 'aria-label="Páginas"' in pager and "Página 1 de 2" in pager and "page=2" in pager and "q=lote" in pager
    last = (await panel.get("/admin/catalog", params={"q": "lote", "page": "2"})).text
    assert "Página 2 de 2" in last and "Sistema 50" in last and "Sistema 49" not in last
    assert '<nav class="pager"' not in (await panel.get("/admin/catalog", params={"q": "grand"})).text  # one page


async def test_the_queue_takes_days_typed_dd_mm_aaaa_as_well_as_iso(panel):
    from datetime import UTC, datetime

    from sqlalchemy import update

    from raiox.models import Case

    case, _ = await _data()
    async with session_scope() as session:
        await session.execute(update(Case).where(Case.id == case.id)
                              .values(created_at=datetime(2026, 6, 10, 15, 0, tzinfo=UTC)))
    await login(panel, "rev@example.com")
    typed = (await panel.get("/admin/", params={"status": "all", "date_from": "10/06/2026", "date_to": "10/6/2026"}))
    assert typed.status_code == 200 and "Dra. Ana Souza" in typed.text and "Dr. Bruno Lima" not in typed.text
    assert 'name="date_to" value="10/06/2026"' in typed.text and 'placeholder="dd/mm/aaaa"' in typed.text
    assert 'type="date"' not in typed.text  # a browser's picker would show its own language's order (mm/dd/yyyy)
    assert "Dra. Ana Souza" in (await panel.get("/admin/", params={"status": "all", "date_from": "2026-06-10",
                                                                   "date_to": "2026-06-10"})).text
    assert (await panel.get("/admin/", params={"date_from": "31/02/2026"})).status_code == 400


async def test_the_delivery_line_asks_for_itself_until_the_delivery_settles(panel):
    """ "Entrega pendente" is not left on screen until a reload: the line polls a read-only fragment (login needed)
    every few seconds, and the settled answer stops it and shows the case's new status."""
    from raiox.cases.service import transition
    from raiox.delivery import repository as delivery_repo
    from raiox.models import Case

    await _data()
    case = await _decided("Dra. Carla Dias", approve=True, delivered=False)
    fragment = f"/admin/cases/{case.id}/delivery-state"
    anonymous = await panel.get(fragment)
    assert anonymous.status_code == 303 and "/login" in anonymous.headers["location"]
    await login(panel, "rev@example.com")
    page = (await panel.get(f"/admin/cases/{case.id}")).text
    line = re.search(r'<p class="muted" id="delivery-state"[^>]*>', page).group(0)
    assert f'hx-get="{fragment}"' in line and 'hx-trigger="every 3s"' in line and "Entrega pendente" in page
    pending = await panel.get(fragment, headers={"HX-Request": "true"})
    assert pending.status_code == 200 and 'hx-trigger="every 3s"' in pending.text
    assert "Entrega pendente" in pending.text and "<html" not in pending.text and 'id="case-status"' not in pending.text
    assert (await panel.post(fragment)).status_code in (303, 403, 405)  # read only
    async with session_scope() as session:
        record = await delivery_repo.get_delivery(session, case.id)
        record.status, record.jotform_done_at = "delivered", record.created_at
        await transition(session, await session.get(Case, case.id), CaseStatus.delivered, actor="system:delivery")
    settled = (await panel.get(fragment, headers={"HX-Request": "true"})).text
    assert "hx-trigger" not in settled and "Resultado entregue" in settled and "Jotform ✓" in settled
    assert re.search(r'<span class="badge badge-delivered big" id="case-status" hx-swap-oob="true">Entregue</span>',
                     settled)


async def test_a_settled_resend_brings_the_page_s_alert_and_actions_up_to_date_without_a_reload(panel):
    """A resend under way said "reload the page", and the buttons of the outcome (resend again, deliver again, revoke)
    came only with a reload: the delivery line's settled answer now replaces the alert above the page and the result's
    actions out of band (still a read-only GET), as the page would show them."""
    from raiox.cases.service import transition
    from raiox.delivery import repository as delivery_repo
    from raiox.models import Case
    from raiox.review import service

    case, _ = await _data()
    async with session_scope() as session:
        await service.approve(session, case.id, "neo-cm", actor="user:rev@example.com")
        await transition(session, await session.get(Case, case.id), CaseStatus.delivery_failed, actor="system:delivery",
                         reason="jotform: Jotform API 503: unavailable")
        (await delivery_repo.get_delivery(session, case.id)).status = "failed"
    await login(panel, "rev@example.com")
    page = (await panel.get(f"/admin/cases/{case.id}")).text
    await panel.post(f"/admin/cases/{case.id}/resend", data={"csrf_token": _csrf(page)})
    page = (await panel.get(f"/admin/cases/{case.id}")).text
    assert re.search(r'<div id="delivery-alert">\s*<div class="alert alert-info" role="status" id="resend-pending">',
                     page) and "Recarregue" not in page
    assert re.search(r'<div id="report-actions">\s*</div>', page)  # nothing to do with the result while it goes
    fragment = f"/admin/cases/{case.id}/delivery-state"
    pending = (await panel.get(fragment, headers={"HX-Request": "true"})).text
    assert "hx-swap-oob" not in pending  # the page left alone while the delivery runs

    async def settle(status: str, to: CaseStatus, reason: str | None = None) -> str:
        async with session_scope() as session:
            (await delivery_repo.get_delivery(session, case.id)).status = status
            await transition(session, await session.get(Case, case.id), to, actor="system:delivery", reason=reason)
        return (await panel.get(fragment, headers={"HX-Request": "true"})).text

    failed = await settle("failed", CaseStatus.delivery_failed, "jotform: Jotform API 503: unavailable again")
    alert = re.search(r'<div id="delivery-alert" hx-swap-oob="true">(.*?)</div>\s*<div id="report-actions"', failed,
                      re.S).group(1)
    assert 'id="resend-pending"' not in alert and "Falha na entrega do resultado" in alert
    assert f'action="/admin/cases/{case.id}/resend"' in alert
    assert f'action="/admin/cases/{case.id}/mark-delivered"' in alert
    assert alert.count(f'name="csrf_token" value="{_csrf(page)}"') == 2  # the forms work as the page's do
    actions = re.search(r'<div id="report-actions" hx-swap-oob="true">(.*)</div>', failed, re.S).group(1)
    assert f'action="/admin/cases/{case.id}/revoke-report"' in actions and "/redeliver" not in actions

    async with session_scope() as session:  # the operator's second resend, delivered this time
        await service.resend(session, case.id, actor="user:rev@example.com")
    assert "hx-swap-oob" not in (await panel.get(fragment, headers={"HX-Request": "true"})).text
    delivered = await settle("delivered", CaseStatus.delivered)
    assert re.search(r'<div id="delivery-alert" hx-swap-oob="true">\s*</div>', delivered)  # the alert goes
    actions = re.search(r'<div id="report-actions" hx-swap-oob="true">(.*)</div>', delivered, re.S).group(1)
    assert f'action="/admin/cases/{case.id}/redeliver"' in actions
    assert f'action="/admin/cases/{case.id}/revoke-report"' in actions
    assert re.search(r'id="case-status" hx-swap-oob="true">Entregue<', delivered)
    reloaded = (await panel.get(f"/admin/cases/{case.id}")).text  # what a reload shows: the same
    assert unescape(actions).split() == unescape(
        re.search(r'<div id="report-actions">(.*?)</div>\s*<p class="muted" id="delivery-state"', reloaded,
                  re.S).group(1)).split()


async def test_a_mistyped_email_is_said_beside_the_field_keeping_what_was_typed(panel):
    """No page replaced by an error page: the form comes back (HTMX) or the case page (no JS), the address typed
    still in the field, the error beside it; a right address is saved as before."""
    from raiox.models import Case

    case, _failed = await _data()
    await login(panel, "rev@example.com")
    page = (await panel.get(f"/admin/cases/{case.id}")).text
    assert f'hx-post="/admin/cases/{case.id}/contact"' in page
    htmx = await panel.post(f"/admin/cases/{case.id}/contact", headers={"HX-Request": "true"},
                            data={"email": "ana@clinica", "csrf_token": _csrf(page)})
    assert htmx.status_code == 422 and "HX-Retarget" not in htmx.headers  # the form itself, not the message area
    assert htmx.text.lstrip().startswith("<form") and "<html" not in htmx.text
    assert re.search(r'<input id="client-email"[^>]*value="ana@clinica"[^>]*aria-invalid="true"', htmx.text, re.S)
    assert '<p class="field-error" id="client-email-error" role="alert">“ana@clinica” não é um endereço de e-mail.' \
        in htmx.text
    plain = await panel.post(f"/admin/cases/{case.id}/contact",
                             data={"email": "ana@clinica", "csrf_token": _csrf(page)})
    assert plain.status_code == 422 and "<h1>" in plain.text and '<details id="fix-email" open>' in plain.text
    assert re.search(r'<input id="client-email"[^>]*value="ana@clinica"', plain.text, re.S)
    assert 'id="client-email-error"' in plain.text and "dentista@example.com" in plain.text  # the case as it is
    async with session_scope() as session:
        assert (await session.get(Case, case.id)).client_email == "dentista@example.com"
    saved = await panel.post(f"/admin/cases/{case.id}/contact", headers={"HX-Request": "true"},
                             data={"email": "ana@clinica.com.br", "csrf_token": _csrf(page)})
    assert saved.status_code == 204 and saved.headers["HX-Redirect"].endswith(f"/cases/{case.id}?feito=contact_saved")


def _reject_draft(page: str) -> str:
    import html

    return html.unescape(re.search(r'<textarea id="reject-message"[^>]*>(.*?)</textarea>', page, re.S).group(1))


async def test_a_failed_cases_rejection_starts_from_each_files_problem_in_pt_br(panel, configure):
    """The reject form of a `failed` case is pre-filled (editable text, not a placeholder) with what the dentist must
    know: which files could not be used and a plain pt-BR reason for each (the dentist's wording of the recorded
    error's kind, not the panel's reading of it for the operator; a copy of another film is no problem), and what to
    send: JPEG, PNG or DICOM. In pt-BR even when the operator's panel is in English: the dentist reads it."""
    from raiox.models import CaseImage

    await _data()
    async with session_scope() as session:
        failed = await add_case(session, status=CaseStatus.failed, images=4)
        empty = await add_case(session, status=CaseStatus.failed, images=0)
        awaiting = await add_case(session, candidates=[("neo-cm", 0.8)])
        films = sorted((await session.execute(
            CaseImage.__table__.select().where(CaseImage.case_id == failed.id))).all(), key=lambda f: f.position)
        problems = [("foto <1>.heic", "invalid", "not an image: HEIC photo (image/heic)"),
                    ("raio-x.png", "failed", "upload host answered 403 for /uploads/x/raio-x.png"),
                    ("copia.heic", "skipped", "duplicate of foto <1>.heic"),
                    (None, "invalid", "something nobody foresaw")]
        for film, (name, status, error) in zip(films, problems, strict=True):
            image = await session.get(CaseImage, film.id)
            image.filename, image.status, image.error = name, status, error
    await login(panel, "rev@example.com")
    page = (await panel.get(f"/admin/cases/{failed.id}")).text
    assert _reject_draft(page) == (
        "Não conseguimos usar as radiografias enviadas:\n"
        "- foto <1>.heic: formato não suportado (envie JPEG, PNG ou DICOM)\n"
        "- raio-x.png: o link do arquivo expirou ou não pôde ser baixado — envie novamente\n"
        "- arquivo 4: não foi possível usar o arquivo\n"
        "\n"
        "Envie as radiografias como arquivos JPEG, PNG ou DICOM.")
    assert "foto &lt;1&gt;.heic" in page and 'id="reject-draft-hint"' in page
    assert _reject_draft((await panel.get(f"/admin/cases/{empty.id}")).text) == (
        "Não recebemos nenhuma radiografia: o formulário chegou sem arquivos anexados.\n\n"
        "Envie as radiografias como arquivos JPEG, PNG ou DICOM.")
    assert _reject_draft((await panel.get(f"/admin/cases/{awaiting.id}")).text) == ""  # a review's own words
    configure(ADMIN_LOCALE="en")
    page = (await panel.get(f"/admin/cases/{failed.id}")).text
    assert "Reason for rejection" in page and _reject_draft(page).startswith("Não conseguimos usar as radiografias")
