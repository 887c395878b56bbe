"""Bad input in the panel gets the panel's pt-BR error page (HTML, or the HTMX flash), never a 500 or FastAPI's
English JSON; the page names what is wrong."""

import re

import httpx
import pytest
from review_helpers import add_case, add_system, add_user

from raiox.kit.db import session_scope

PASSWORD = "correct horse battery"


@pytest.fixture
async def admin(committed):
    """A panel client logged in as an admin, with a case awaiting review (returned as `admin.case`)."""
    from raiox.app import create_app

    async with session_scope() as session:
        await add_system(session, "neo-cm", "Neodent", "Grand Morse", seed=1)
        case = await add_case(session, candidates=[("neo-cm", 0.78)])
        await add_user(session, "admin@example.com", PASSWORD, "admin")
    transport = httpx.ASGITransport(app=create_app(), client=("198.51.100.77", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        token = _csrf((await http.get("/admin/login")).text)
        login = await http.post("/admin/login",
                                data={"email": "admin@example.com", "password": PASSWORD, "csrf_token": token})
        assert login.status_code == 303
        http.case = case
        http.token = _csrf((await http.get("/admin/")).text)
        yield http


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _page(response: httpx.Response, status: int) -> str:
    """The panel's error page with STATUS: HTML, pt-BR, no FastAPI JSON."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    assert "Não foi possível concluir" in response.text and '"detail"' not in response.text
    return response.text


async def test_out_of_range_queue_filters_get_the_400_page(admin):
    for params in ({"date_to": "9999-12-31"}, {"date_from": "0001-01-01"}, {"date_from": "notadate"}):
        text = _page(await admin.get("/admin/", params=params), 400)
        assert "Data inválida" in text and "dd/mm/aaaa" in text
    for page in ("99999999999999999999", "-1", "0", "abc", "2000000"):
        text = _page(await admin.get("/admin/", params={"page": page}), 400)
        assert "página (valor inválido)" in text
    assert _page(await admin.get("/admin/catalog", params={"page": "99999999999999999999"}), 400)
    assert _page(await admin.get("/admin/", params={"q": "a\x00b"}), 422)  # a value PostgreSQL refuses: not a 500
    # the bounds themselves still filter
    ok = await admin.get("/admin/", params={"date_from": "1900-01-01", "date_to": "9998-12-31", "page": "1000000"})
    assert ok.status_code == 200 and "Fila de casos" in ok.text


async def test_malformed_path_and_form_values_get_the_pt_br_page(admin):
    case = admin.case
    assert "identificador do caso (valor inválido)" in _page(await admin.get("/admin/cases/abc"), 400)
    assert "identificador da imagem (valor inválido)" in _page(await admin.get("/admin/media/case-images/abc"), 400)
    approve = await admin.post(f"/admin/cases/{case.id}/approve", data={"csrf_token": admin.token})
    assert "sistema de implante (obrigatório)" in _page(approve, 400)
    upload = await admin.post("/admin/catalog/neo-cm/images", data={"csrf_token": admin.token})
    assert "arquivos (obrigatório)" in _page(upload, 400)
    big = await admin.post(f"/admin/cases/{case.id}/note", data={"csrf_token": admin.token},
                           files={"text": (None, "x" * (1024 * 1024 + 10))})  # multipart, field over 1 MB
    text = _page(big, 400)
    assert "passou do limite de 1024 KB" in text and "Field exceeded" not in text
    assert "Não encontrado." in _page(await admin.get("/admin/no-such-page"), 404)


async def test_htmx_requests_get_the_error_in_the_flash(admin):
    response = await admin.post(f"/admin/cases/{admin.case.id}/approve", data={"message": "x"},
                                headers={"HX-Request": "true", "X-CSRF-Token": admin.token})
    assert response.status_code == 400 and response.headers["HX-Retarget"] == "#flash"
    assert response.text.startswith('<div class="alert alert-error"')
    assert "sistema de implante (obrigatório)" in response.text


async def test_a_new_systems_id_folds_accents_like_the_importer_and_refuses_unusable_ones(admin):
    def create(**fields):
        return admin.post("/admin/catalog/new", data={"csrf_token": admin.token, **fields})

    made = await create(manufacturer="Conexão", name="Torque Tite 4.1")
    assert made.status_code == 303
    assert made.headers["location"] == "/admin/catalog/conexao-torque-tite-4-1?feito=system_created"
    for fields, shown in (({"manufacturer": "SIN", "name": "X", "system_id": "new"}, "“new”"),  # the create page's
                          ({"manufacturer": "🦷", "name": "🦷🦷"}, "🦷 🦷🦷")):
        text = _page(await create(**fields), 422)
        assert "Não é possível formar um identificador" in text and shown in text
    assert "Informe o fabricante e o nome" in _page(await create(manufacturer=" ", name="X"), 422)


async def test_duplicate_catalog_id_says_so_not_the_case_conflict(admin):
    response = await admin.post("/admin/catalog/new", data={"manufacturer": "Neodent", "name": "Outro",
                                                            "system_id": "neo-cm", "csrf_token": admin.token})
    text = _page(response, 409)
    assert "Já existe um sistema com o identificador neo-cm." in text and "talvez outra pessoa" not in text


async def test_empty_reject_and_note_name_the_required_field(admin):
    from sqlalchemy import select

    from raiox.models import AuditEntry, Case

    case = admin.case
    reject = await admin.post(f"/admin/cases/{case.id}/reject", data={"message": "  ", "csrf_token": admin.token})
    assert "O motivo da rejeição é obrigatório" in _page(reject, 422)
    note = await admin.post(f"/admin/cases/{case.id}/note", data={"text": "", "csrf_token": admin.token},
                            headers={"HX-Request": "true"})
    assert note.status_code == 422 and "O texto da nota é obrigatório." in note.text
    async with session_scope() as session:
        assert (await session.get(Case, case.id)).status == "awaiting_review"
        assert (await session.execute(select(AuditEntry).where(AuditEntry.case_id == case.id))).first() is None


async def test_panel_notes_and_messages_are_capped_like_the_api(admin):
    from sqlalchemy import select

    from raiox.models import AuditEntry, Case

    case = admin.case
    long_note = await admin.post(f"/admin/cases/{case.id}/note", data={"text": "n" * 5001, "csrf_token": admin.token})
    assert "A nota tem 5.001 caracteres; o máximo é 5.000." in _page(long_note, 422)
    long_reject = await admin.post(f"/admin/cases/{case.id}/reject",
                                   data={"message": "m" * 5001, "csrf_token": admin.token})
    assert "o máximo é 5.000" in _page(long_reject, 422)
    long_message = await admin.post(f"/admin/cases/{case.id}/approve", data={
        "system_id": "neo-cm", "message": "m" * 1501, "csrf_token": admin.token})  # printed on the one-page report
    assert "A mensagem ao dentista tem 1.501 caracteres; o máximo é 1.500, para que o relatório caiba em uma página " \
           "A4." in _page(long_message, 422)
    longest = await admin.post(f"/admin/cases/{case.id}/note", data={"text": "n" * 5000, "csrf_token": admin.token})
    assert longest.status_code == 303
    async with session_scope() as session:
        notes = (await session.execute(select(AuditEntry).where(AuditEntry.action == "case.note"))).scalars().all()
        assert [len(n.details["note"]) for n in notes] == [5000]
        assert (await session.get(Case, case.id)).status == "awaiting_review"


async def test_empty_upload_file_is_named_in_the_report(admin):
    from raiox.synth import demo_catalog, render_reference, to_png

    png = to_png(render_reference(demo_catalog()[0].spec, seed=3))
    upload = await admin.post("/admin/catalog/neo-cm/images", data={"csrf_token": admin.token},
                              files=[("files", ("ref.png", png, "image/png")),
                                     ("files", ("vazio.png", b"", "image/png")),
                                     ("files", ("bad.png", b"<html>", "image/png"))])
    assert upload.status_code == 200, upload.text
    assert "2 ignoradas." in upload.text
    assert "Arquivo 2 do envio (vazio.png): arquivo vazio (0 bytes), ignorado" in upload.text
    assert "Arquivo 3 do envio (bad.png): " in upload.text and "upload/" not in upload.text
    nothing = await admin.post("/admin/catalog/neo-cm/images", data={"csrf_token": admin.token},
                               files=[("files", ("", b"", "application/octet-stream"))])  # an empty file input
    assert "arquivos (valor inválido)" in _page(nothing, 400)


async def test_an_upload_is_bounded_in_files_and_size_and_says_the_limit(admin, monkeypatch):
    from raiox.review import views_catalog

    url = "/admin/catalog/neo-cm/images"
    many = [("files", (f"r{n}.png", b"x", "image/png")) for n in range(views_catalog.MAX_FILES + 1)]
    text = _page(await admin.post(url, data={"csrf_token": admin.token}, files=many), 422)
    assert f"{views_catalog.MAX_FILES + 1} arquivos de uma vez: envie no máximo {views_catalog.MAX_FILES}" in text
    monkeypatch.setattr(views_catalog, "MAX_UPLOAD", 2**20)
    big = [("files", ("grande.png", b"x" * (2**20 + 1), "image/png"))]
    text = _page(await admin.post(url, data={"csrf_token": admin.token}, files=big), 422)
    assert "O arquivo grande.png passa de 1 MB, o limite por imagem" in text
    # the images together: each under its own limit, over the upload's (all of them are held in memory at once)
    monkeypatch.setattr(views_catalog, "MAX_UPLOAD_TOTAL", 2 * 2**20)
    three = [("files", (f"r{n}.png", b"x" * 2**20, "image/png")) for n in range(3)]
    text = _page(await admin.post(url, data={"csrf_token": admin.token}, files=three), 413)
    assert ("O envio tem 3 MB, mais do que o limite de 2 MB por envio (até 20 imagens, de até 1 MB cada); nenhuma "
            "imagem foi adicionada.") in text
    two = await admin.post(url, data={"csrf_token": admin.token}, files=three[:2])
    assert two.status_code == 200 and "2 ignoradas." in two.text, two.text[:500]
    # the page states the limits beside the file input, as they are
    page = await admin.get("/admin/catalog/neo-cm")
    assert ('aria-describedby="ref-files-limits"' in page.text
            and "Até 20 imagens por envio, de até 1 MB cada e 2 MB ao todo." in page.text), page.text[:500]


async def test_an_upload_over_the_pages_body_limit_is_refused_in_pt_br_before_it_is_read(admin, monkeypatch):
    """The largest upload the page takes (MAX_UPLOAD_TOTAL bytes of images and their framing) is nginx's cap too
    (tests/ops/test_nginx.py); a body declared over it gets the page's own 413, without being read."""
    from sqlalchemy import select

    from raiox.models import AuditEntry
    from raiox.review import views_catalog

    assert views_catalog.MAX_UPLOAD_BODY == views_catalog.MAX_UPLOAD_TOTAL + 2**20
    monkeypatch.setattr(views_catalog, "MAX_UPLOAD_TOTAL", 2 * 2**20)
    monkeypatch.setattr(views_catalog, "MAX_UPLOAD_BODY", 3 * 2**20)
    pulled = []

    async def body():
        for _ in range(8):  # 8 MiB declared and offered
            pulled.append(1)
            yield b"\0" * (1 << 20)

    text = _page(await admin.post("/admin/catalog/neo-cm/images", content=body(), headers={
        "content-type": "multipart/form-data; boundary=x", "content-length": str(8 << 20)}), 413)  # a plain form
    assert ("O envio tem 8 MB, mais do que o limite de 2 MB por envio (até 20 imagens, de até 30 MB cada); nenhuma "
            "imagem foi adicionada.") in text
    assert len(pulled) <= 2  # not read, not even for the form's csrf_token
    async with session_scope() as session:
        assert not (await session.execute(select(AuditEntry).where(AuditEntry.action == "catalog.upload"))).all()
    # at the limit: taken in and read (here: 2 MiB of one file)
    png = b"x" * (2 * 2**20)
    under = await admin.post("/admin/catalog/neo-cm/images", data={"csrf_token": admin.token},
                             files=[("files", ("ref.png", png, "image/png"))])
    assert under.status_code == 200 and "1 ignorada." in under.text, under.text[:500]


async def test_an_unexpected_failure_is_the_api_error_shape_or_the_panel_page_never_bare_text(admin, monkeypatch):
    """A bug or an outage nothing names (here: the case lookup fails) is still answered in the product's own form."""
    from raiox.app import create_app
    from raiox.cases import service as cases
    from raiox.cases import views
    from raiox.kit.tokens import create_token

    async with session_scope() as session:
        token = await create_token(session, "ops")

    async def broken(*_args, **_kwargs):
        raise RuntimeError("connection to /srv/secret/socket lost")

    monkeypatch.setattr(cases, "get_or_404", broken)
    monkeypatch.setattr(views, "case_detail", broken)
    transport = httpx.ASGITransport(app=create_app(), raise_app_exceptions=False)  # Starlette re-raises after answering
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", cookies=admin.cookies) as http:
        page = await http.get(f"/admin/cases/{admin.case.id}")
        response = await http.get(f"/cases/{admin.case.id}", headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
    assert "Erro interno: a falha foi registrada" in page.text and "secret" not in page.text
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "detail": "internal server error: the failure was logged"}


async def test_the_error_page_links_back_only_to_the_panels_own_pages(admin):
    missing = "/admin/cases/00000000-0000-0000-0000-000000000000"
    ours = await admin.get(missing, headers={"referer": "http://testserver/admin/?status=all"})
    assert 'href="http://testserver/admin/?status=all"' in _page(ours, 404)
    for foreign in ("https://evil.example/admin/", "javascript:alert(1)", "http://testserver/other"):
        page = _page(await admin.get(missing, headers={"referer": foreign}), 404)
        assert "evil" not in page and "javascript:" not in page and "/other" not in page, foreign


# The services the panel calls: every typed error they raise must read in pt-BR (review.operator_errors).
PANEL_SERVICES = ("cases/service.py", "review/service.py", "review/marks.py", "review/reread.py", "review/images.py",
                  "review/views_media.py", "intake/service.py", "kit/storage.py")
TYPED = {"BadRequest", "NotFound", "Conflict", "Unprocessable", "TooLarge", "TooManyRequests", "Forbidden",
         "Unauthorized", "DeliveryRunning", "CasePurged", "InvalidEmail", "TooSoon"}


def _raised_messages():
    """(file, line, message) of each typed error built with a literal message in PANEL_SERVICES, each {value} of an
    f-string written "7" (ServiceUnavailable aside: an outage reads as the 503 page)."""
    import ast
    from pathlib import Path

    import raiox

    root = Path(raiox.__file__).parent
    for name in PANEL_SERVICES:
        tree = ast.parse((root / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in TYPED
                    and node.args):
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield name, node.lineno, arg.value
            elif isinstance(arg, ast.JoinedStr):
                yield name, node.lineno, "".join(v.value if isinstance(v, ast.Constant) else "7" for v in arg.values)


def test_every_refusal_of_the_services_the_panel_calls_reads_in_pt_br():
    from raiox.review.operator_errors import operator_text

    found = list(_raised_messages())
    assert len(found) > 30
    untranslated = [(f, line, text) for f, line, text in found if operator_text(text) is None]
    assert untranslated == []
    # values carried over, a status by its label
    assert operator_text("case 1 is approved; only a failed delivery can be resent") == (
        "Só uma entrega que falhou pode ser reenviada; este caso está na situação “Aprovado”.")
    assert operator_text("film 2 has 8 marked implants already (at most 8)") == (
        "A radiografia 2 já tem 8 implantes marcados pelo revisor (no máximo 8).")
    assert operator_text("something the panel never heard of") is None


async def test_a_services_refusal_is_shown_in_pt_br_without_its_english(admin):
    """The API's JSON keeps the English message (a contract); the panel's page says it in the operator's words."""
    missing = "/admin/cases/00000000-0000-0000-0000-000000000000"
    text = _page(await admin.get(missing), 404)
    assert "Caso não encontrado" in text and "not found" not in text
    case = admin.case
    resend = _page(await admin.post(f"/admin/cases/{case.id}/resend", data={"csrf_token": admin.token}), 409)
    assert "Só uma entrega que falhou pode ser reenviada; este caso está na situação “Aguardando revisão”." in resend
    assert "only a failed delivery" not in resend and str(case.id) not in resend
    retry = _page(await admin.post(f"/admin/cases/{case.id}/retry", data={"csrf_token": admin.token}), 409)
    assert "não há o que tentar de novo" in retry and "nothing to retry" not in retry
    unknown = _page(await admin.post(f"/admin/cases/{case.id}/approve",
                                     data={"system_id": "no-such", "csrf_token": admin.token}), 422)
    assert "Sistema de implante desconhecido no catálogo: &#39;no-such&#39;." in unknown and "unknown" not in unknown
    image = _page(await admin.get("/admin/media/case-images/00000000-0000-0000-0000-000000000000"), 404)
    assert "Radiografia não encontrada" in image and "image not found" not in image
    nul = _page(await admin.get("/admin/", params={"q": "a\x00b"}), 422)
    assert "caractere inválido (NUL)" in nul and "cannot be stored" not in nul
    flash = await admin.post(f"/admin/cases/{case.id}/revoke-report", headers={"HX-Request": "true",
                                                                             "X-CSRF-Token": admin.token})
    assert flash.status_code == 409 and flash.headers["HX-Retarget"] == "#flash"
    assert "Este caso não tem relatório (situação: Aguardando revisão)" in flash.text and "report" not in flash.text


async def test_a_refusal_the_panel_does_not_know_reads_as_its_status_never_english(admin, monkeypatch):
    from raiox.kit.errors import Conflict
    from raiox.review import service

    async def refuse(*_args, **_kwargs):
        raise Conflict("case 1 is in a state nobody wrote words for")

    monkeypatch.setattr(service, "resend", refuse)
    text = _page(await admin.post(f"/admin/cases/{admin.case.id}/resend", data={"csrf_token": admin.token}), 409)
    assert "Esta ação não é possível no estado atual" in text and "nobody" not in text and "case 1" not in text
