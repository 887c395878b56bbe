"""The admin panel in a real browser: Playwright driving Debian's Chromium (headless) against a real
uvicorn server (subprocess, worker in-process) and the Jotform stand-in server."""

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from review_helpers import add_case, add_demo_case, add_demo_systems, add_system, add_user

from fakes.browser import ARGS, chromium

from raiox.kit.db import session_scope

pytestmark = pytest.mark.browser
PASSWORD = "senha-muito-segura-1"
ROOT = Path(__file__).resolve().parents[2]
# the README's picture of the case page: refreshed only on request (RAIOX_UPDATE_SCREENSHOT=1), so that a
# test run does not leave a changed tracked file behind
SCREENSHOT = ROOT / "docs" / "img" / "case-page.png"
SERVER = ("import sys, uvicorn; from raiox.app import create_app; "
          "uvicorn.run(create_app(worker=True), host='127.0.0.1', port=int(sys.argv[1]), log_level='warning')")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def browser_jotform():
    from fakes.jotform import FORM_ID, FakeJotform

    with FakeJotform(api_key="test-jotform-key") as fake:
        fake.add_submission(FORM_ID, submission_id="5812345678901234567")
        yield fake


@pytest.fixture(scope="module")
def server(database_url, browser_jotform):
    """One uvicorn (with its worker) for the module; each test's `committed` empties the tables."""
    jotform = browser_jotform
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = os.environ | {
        "PYTHONPATH": str(ROOT / "src"), "RAIOX_JOTFORM_API_URL": jotform.url, "RAIOX_PUBLIC_URL": url,
        "RAIOX_JOTFORM_RESULT_FIELDS": json.dumps({"system": "21", "manufacturer": "22", "message": "23",
                                                   "report": "24"}),
        "RAIOX_DELIVERY_BACKOFF_S": "0.1", "RAIOX_SMTP_HOST": "", "OMP_NUM_THREADS": "1",
    }
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the uvicorn server did not start")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(autouse=True)
async def _jobs_finished(committed):
    """After a test, the server's worker finishes the jobs the test started (a delivery after an approval) before
    `committed` empties the tables: emptying them under a running job deadlocks."""
    from sqlalchemy import text

    yield
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        async with session_scope() as session:
            running = (await session.execute(text(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing' "
                "OR (status = 'todo' AND (scheduled_at IS NULL OR scheduled_at <= now()))"))).scalar_one()
        if not running:
            return
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
async def browser():
    from playwright.async_api import async_playwright

    executable = chromium()
    async with async_playwright() as pw:
        instance = await pw.chromium.launch(executable_path=executable, headless=True, args=ARGS)
        yield instance
        await instance.close()


async def _seed(demo: bool = True):
    async with session_scope() as session:
        if demo:  # rendered radiographs (raiox.synth) for the screenshot
            systems = await add_demo_systems(session, 4)
            case = await add_demo_case(session, systems, [0.91, 0.84, 0.72, 0.64], submission_id="5812345678901234567")
        else:
            systems = [await add_system(session, "neo-cm", "Neodent", "Grand Morse", seed=1)]
            case = await add_case(session, candidates=[("neo-cm", 0.8)])
        await add_user(session, "revisora@example.com", PASSWORD, "reviewer")
        await add_user(session, "admin@example.com", PASSWORD, "admin")
    return systems, case


async def _login(page, base: str, email: str, password: str = PASSWORD) -> None:
    await page.goto(f"{base}/admin/login")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Senha").fill(password)
    await page.get_by_role("button", name="Entrar").click()


async def _case_page(browser, server: str, case):
    """The case page for the reviewer, every confirmation accepted; and the questions asked, in order."""
    page = await browser.new_page(locale="pt-BR")
    asked: list[str] = []

    async def answer(dialog) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    page.on("dialog", answer)
    await _login(page, server, "revisora@example.com")
    await page.goto(f"{server}/admin/cases/{case.id}")
    return page, asked


async def test_review_approve_and_delivery(committed, server, browser, browser_jotform, tmp_path):
    jotform = browser_jotform
    systems, case = await _seed()
    page = await browser.new_page(viewport={"width": 1440, "height": 1300}, locale="pt-BR")
    await _login(page, server, "revisora@example.com")
    await page.wait_for_url(f"{server}/admin/")
    assert await page.get_by_role("heading", name="Fila de casos").is_visible()
    row = page.locator("tr", has_text="5812345678901234567")
    await row.get_by_role("link", name="Abrir").click()
    await page.wait_for_url(re.compile(r".*/admin/cases/.*"))
    viewer = page.locator("[data-viewer]").first
    await page.locator(".stage img").first.wait_for()
    await page.wait_for_function(
        "Array.from(document.querySelectorAll('.stage img, #fused img')).every(i => i.complete && i.naturalWidth > 0)")
    await page.evaluate("document.fonts.ready")
    shot = SCREENSHOT if os.environ.get("RAIOX_UPDATE_SCREENSHOT") == "1" else tmp_path / "case-page.png"
    await page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000  # a rendered page, not an empty frame

    await viewer.get_by_role("button", name="Aproximar").click()
    await viewer.get_by_role("button", name="Aproximar").click()
    assert float(await viewer.get_attribute("data-scale")) > 1.5
    assert "scale(1.5" in await viewer.locator(".stage img").get_attribute("style")
    await viewer.get_by_label("Inverter").check()
    await viewer.locator("[data-filter=contrast]").fill("200")
    assert "contrast(200%)" in await viewer.locator(".stage img").get_attribute("style")
    await viewer.get_by_role("button", name="Restaurar").click()  # the picture as it came: zoom and filters
    style = await viewer.locator(".stage img").get_attribute("style")
    assert "scale(1)" in style and "contrast(100%)" in style and "invert" not in style
    assert not await viewer.get_by_label("Inverter").is_checked()

    top1 = page.locator("#approve-form input[name=system_id]").first
    assert await top1.is_checked() and await top1.get_attribute("value") == systems[0].id
    chosen = systems[2]  # not the top-1 candidate, found through the search box (HTMX)
    await page.get_by_label("Outro sistema do catálogo").fill(chosen.name.split(",")[0])
    option = page.locator(f"#system-results input[value='{chosen.id}']")
    await option.check()
    await page.get_by_label("Mensagem ao dentista (opcional)").fill("Conexão confirmada pela revisão.")
    asked = []

    async def answer(dialog) -> None:  # the panel asks before anything reaches the dentist
        asked.append(dialog.message)
        await (dialog.dismiss() if len(asked) == 1 else dialog.accept())

    page.on("dialog", answer)
    await page.get_by_role("button", name="Aprovar e enviar ao dentista").click()  # dismissed: nothing sent
    await page.wait_for_timeout(300)
    assert (await page.locator("#case-status").inner_text()).strip() == "Aguardando revisão"
    await page.get_by_role("button", name="Aprovar e enviar ao dentista").click()  # accepted
    await page.wait_for_selector("#approved-system")
    assert len(asked) == 2 and "Não é possível desfazer" in asked[0] and chosen.name in asked[0]
    assert chosen.name in await page.locator("#approved-system").inner_text()
    done = page.get_by_role("status").filter(has_text="Caso aprovado")  # the page says what was done...
    assert "O resultado será enviado ao dentista" in await done.inner_text()
    for _ in range(50):  # ...once: panel.js drops it from the address, so a reload does not repeat it
        if "feito" not in page.url:
            break
        await page.wait_for_timeout(100)
    assert "feito" not in page.url and page.url.endswith(f"/admin/cases/{case.id}")
    audit = page.locator("#audit")
    assert "Aprovou o caso" in await audit.inner_text() and "revisora@example.com" in await audit.inner_text()

    for _ in range(60):  # the in-process worker delivers to the Jotform stand-in
        await page.reload()
        if (await page.locator("#case-status").inner_text()).strip() == "Entregue":
            break
        await page.wait_for_timeout(500)
    assert (await page.locator("#case-status").inner_text()).strip() == "Entregue"
    assert not await page.locator("#done").count()
    answers = jotform.submissions["5812345678901234567"]["answers"]
    assert answers["21"]["answer"] == chosen.name and answers["23"]["answer"] == "Conexão confirmada pela revisão."
    report = httpx.get(answers["24"]["answer"], timeout=10)
    assert report.status_code == 200 and chosen.name in report.text


async def test_wrong_password_then_lock_out(committed, server, browser):
    await _seed(demo=False)
    page = await browser.new_page()
    for _ in range(5):
        await _login(page, server, "revisora@example.com", "senha errada")
        assert "E-mail ou senha inválidos" in await page.locator("#login-error").inner_text() or \
            "bloqueada" in await page.locator("#login-error").inner_text()
    await _login(page, server, "revisora@example.com")  # right password, account locked
    assert "bloqueada" in await page.locator("#login-error").inner_text()
    assert "/admin/login" in page.url
    # a security reviewer finds all of it in Auditoria: the refused attempts and the lock, by their address
    admin = await browser.new_page()
    await _login(admin, server, "admin@example.com")
    await admin.wait_for_url(f"{server}/admin/")
    await admin.goto(f"{server}/admin/audit")
    await admin.get_by_label("Ação", exact=True).select_option(label="Entrada bloqueada após tentativas falhas")
    await admin.get_by_role("button", name="Filtrar").click()
    rows = admin.locator("table.audit-log tbody tr")
    assert await rows.count() == 1
    text = await rows.first.inner_text()
    assert "endereço 127.0.0.1" in text and "revisora@example.com" in text and "este endereço, nesta conta" in text
    await admin.goto(f"{server}/admin/audit?actor=127.0.0.1")
    assert await admin.locator("td strong", has_text="Tentativa de entrada recusada").count() == 6


async def test_a_form_is_sent_once_however_often_it_is_clicked(committed, server, browser):
    await _seed(demo=False)
    page = await browser.new_page()
    posts = []

    async def slow(route) -> None:  # the answer takes a while: time for the operator to click again
        if route.request.method == "POST":
            posts.append(route.request.url)
            await asyncio.sleep(1.0)
        await route.continue_()

    await page.route("**/admin/login", slow)
    await page.goto(f"{server}/admin/login")
    await page.get_by_label("E-mail").fill("revisora@example.com")
    await page.get_by_label("Senha").fill(PASSWORD)
    await page.get_by_role("button", name="Entrar").click(no_wait_after=True)
    await page.keyboard.press("Enter")  # on the focused button, while the first answer is on its way
    await page.wait_for_url(f"{server}/admin/")
    assert len(posts) == 1


async def test_csrf_rejected_without_token_and_reviewer_kept_out_of_catalog(committed, server, browser):
    _, case = await _seed(demo=False)
    page = await browser.new_page()
    await _login(page, server, "revisora@example.com")
    await page.goto(f"{server}/admin/cases/{case.id}")
    await page.evaluate("document.querySelector('#reject-form input[name=csrf_token]').remove()")
    await page.get_by_label("Motivo da rejeição (enviado ao dentista)").fill("Envie outra radiografia.")
    page.on("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Rejeitar e avisar o dentista").click()
    await page.locator("[role=alert]", has_text="CSRF").wait_for()  # the error page (the case page has alerts too)
    await page.goto(f"{server}/admin/cases/{case.id}")
    assert (await page.locator("#case-status").inner_text()).strip() == "Aguardando revisão"

    response = await page.goto(f"{server}/admin/catalog")
    assert response.status == 403
    assert "restrita a administradores" in await page.content()
    assert await page.get_by_role("link", name="Catálogo").count() == 0


async def test_the_queue_fits_a_phone_without_sideways_scrolling(committed, server, browser):
    """At 390 px the queue's rows stack, and a name or reason without spaces wraps instead of widening the page."""
    from raiox.models import CaseStatus

    await _seed(demo=False)
    async with session_scope() as session:
        failed = await add_case(session, status=CaseStatus.failed, name="A" * 300)
        failed.failure_reason = "no image could be downloaded (" + "x" * 600 + ")"
    page = await browser.new_page(viewport={"width": 390, "height": 844}, locale="pt-BR")
    await _login(page, server, "revisora@example.com")
    await page.wait_for_url(f"{server}/admin/")
    assert await page.locator("table.queue tbody tr").count() == 2
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    assert await page.get_by_role("button", name="Tentar novamente").is_visible()
    await page.get_by_text("Detalhes técnicos").click()  # the reason's detail, unfolded, wraps too
    assert await page.get_by_text("x" * 600).is_visible()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await page.close()


async def test_the_audit_page_fits_a_phone_and_its_filters_work(committed, server, browser):
    """At 390 px the audit log's entries stack like the queue's rows, long values wrap, and a filter narrows it."""
    from raiox.review.service import audit

    await _seed(demo=False)
    async with session_scope() as session:
        await audit(session, "cli:raiox tokens create", "token.create", target="t" * 200, scopes=["all"])
        await audit(session, "user:admin@example.com", "catalog.update", target="neo-cm", active=True,
                    changed={"name": ["Grand Morse", "G" * 300]})
    page = await browser.new_page(viewport={"width": 390, "height": 844}, locale="pt-BR")
    await _login(page, server, "admin@example.com")
    await page.wait_for_url(f"{server}/admin/")
    await page.get_by_role("link", name="Auditoria").click()
    await page.wait_for_url(f"{server}/admin/audit")
    assert await page.locator("table.audit-log tbody tr").count() == 3  # the two, and the admin's sign-in
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    labels = await page.evaluate("""Array.from(document.querySelectorAll('table.audit-log tbody tr')[1].cells)
        .map(cell => getComputedStyle(cell, '::before').content)""")  # the header is hidden: each value names itself
    assert labels[1:2] + labels[3:] == ['"Quem: "', '"Sobre: "', '"Detalhes: "'], labels
    await page.get_by_label("Ação", exact=True).select_option(label="Criou um token da API")
    await page.get_by_role("button", name="Filtrar").click()
    await page.wait_for_url(re.compile(r".*action=token\.create.*"))
    assert await page.locator("table.audit-log tbody tr").count() == 1
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await page.close()


async def test_the_way_back_from_a_case_opens_the_queue_as_it_was_left(committed, server, browser):
    """The operator narrows the queue (a tab, a dentist), opens a case and decides it: "Fila" above the case leads back
    to that narrowed list, not to the default one (after the decision's redirect too)."""
    _systems, case = await _seed(demo=False)
    async with session_scope() as session:
        await add_case(session, name="Dr. Bruno Lima", candidates=[("neo-cm", 0.8)])
    page = await browser.new_page(viewport={"width": 1280, "height": 900}, locale="pt-BR")
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await _login(page, server, "revisora@example.com")
    await page.wait_for_url(f"{server}/admin/")
    await page.goto(f"{server}/admin/?status=all&client=souza")
    assert await page.locator("table.queue tbody tr").count() == 1
    await page.get_by_role("link", name="Abrir").click()
    await page.wait_for_url(f"{server}/admin/cases/{case.id}")
    await page.get_by_label("Motivo da rejeição (enviado ao dentista)").fill("Envie outra radiografia.")
    await page.get_by_role("button", name="Rejeitar e avisar o dentista").click()
    await page.wait_for_selector("#done")
    await page.locator(".crumbs").get_by_role("link", name="Fila").click()
    await page.wait_for_url(re.compile(r".*/admin/(\?.*)?$"))
    assert "status=all" in page.url and "client=souza" in page.url and "feito" not in page.url
    assert await page.get_by_label("Dentista").input_value() == "souza"
    rows = page.locator("table.queue tbody tr")
    assert await rows.count() == 1 and "Dra. Ana Souza" in await rows.inner_text()  # decided: in "Todos" only
    await page.close()


async def test_on_a_phone_the_case_page_jumps_from_its_top_to_the_decision(committed, server, browser):
    """At 390 px the decision stacks below the films and candidates: the link at the top shows and brings it into
    view. Beside the films on a wide screen, the link shows only when the keyboard reaches it."""
    _, case = await _seed(demo=False)
    page = await browser.new_page(viewport={"width": 390, "height": 844}, locale="pt-BR")
    await _login(page, server, "revisora@example.com")
    await page.wait_for_url(f"{server}/admin/")
    await page.goto(f"{server}/admin/cases/{case.id}")
    decision = page.locator("#decision")
    assert not await decision.evaluate("d => d.getBoundingClientRect().top < innerHeight")  # out of sight at first
    link = page.get_by_role("link", name="Ir para a decisão")
    assert await link.is_visible()
    await link.click()
    await page.wait_for_function("document.getElementById('decision').getBoundingClientRect().top < 50")
    assert await page.get_by_role("button", name="Aprovar e enviar").first.is_visible()
    await page.set_viewport_size({"width": 1440, "height": 900})
    await page.goto(f"{server}/admin/cases/{case.id}")
    assert await link.evaluate("a => a.getBoundingClientRect().width") <= 1  # not shown to the eye
    await link.focus()
    assert await link.evaluate("a => a.getBoundingClientRect().width") > 40  # until the keyboard reaches it
    await page.close()


async def test_the_catalog_fits_a_phone_as_cards_every_column_named(committed, server, browser):
    await _seed(demo=False)
    async with session_scope() as session:
        await add_system(session, "long-one", "Synthetic Implant Works Indústria e Comércio Ltda.",
                         "Demo 077 Cone Morse 11.5° tapered buttress-thread line", seed=3)
    page = await browser.new_page(viewport={"width": 390, "height": 844}, locale="pt-BR")
    await _login(page, server, "admin@example.com")
    await page.goto(f"{server}/admin/catalog")
    wrap = page.locator(".table-wrap").first
    assert await wrap.evaluate("w => w.scrollWidth <= w.clientWidth")  # nothing cut off behind a sideways scroll
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    row = page.locator("table.catalog tbody tr", has_text="Demo 077")
    labels = await row.locator("td[data-label]").evaluate_all(
        "cells => cells.map(c => getComputedStyle(c, '::before').content)")
    assert labels[:3] == ['"Fabricante: "', '"Conexão: "', '"Referências: "'] and labels[3].startswith('"Ativo')
    await page.close()


async def test_a_file_that_is_no_image_shows_a_note_not_a_broken_viewer(committed, server, browser):
    from sqlalchemy import select

    from raiox.kit.storage import content_key, get_storage
    from raiox.models import CaseImage

    _, case = await _seed(demo=False)
    async with session_scope() as session:
        image = (await session.execute(select(CaseImage).where(CaseImage.case_id == case.id))).scalars().one()
        key, _ = content_key(b"laudo em texto, nao uma imagem")
        await get_storage().put(key, b"laudo em texto, nao uma imagem", "image/png")
        image.storage_key, image.status, image.error = key, "invalid", "not an image: unrecognised file format"
    page = await browser.new_page(locale="pt-BR")
    await _login(page, server, "revisora@example.com")
    await page.goto(f"{server}/admin/cases/{case.id}")
    note = page.locator(".broken-image")
    await note.wait_for()
    assert "Não é possível exibir este arquivo" in await note.inner_text()
    assert not await page.locator("[data-viewer] .toolbar").is_visible()
    await page.close()


@pytest.mark.parametrize("films, others, sentences, pages", [
    (1, 0, 1, 1), (4, 0, 1, 1), (2, 2, 3, 1), (4, 3, 3, 1), (1, 8, 3, 1), (4, 8, 6, 1), (3, 8, 9, 0),
    (1, 0, "max", 1), (4, 2, "max", 1), (4, 8, "max", 1)])
async def test_the_report_prints_on_one_a4_page(browser, films, others, sentences, pages):
    """The dentist's "one-page" report: up to four films, every approved system (up to nine, long names) with its
    catalog reference, the reviewer's message (up to REPORT_MESSAGE_MAX characters: SENTENCES "max") and the
    disclaimer on one A4 sheet; a result too long for one sheet (nine systems with nine implants named on every film:
    PAGES 0) may take a second one, never squeezing the films away or running past the sheet."""
    import base64
    import io
    import re
    from datetime import UTC, datetime
    from types import SimpleNamespace

    import numpy as np
    from PIL import Image

    from raiox.delivery.templates import render
    from raiox.intake.parse import TOOTH_MAX
    from raiox.review.schemas import REPORT_MESSAGE_MAX

    def film(w: int, h: int) -> str:
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(w).integers(0, 255, (h, w), dtype=np.uint8)).save(buf, "JPEG")
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()

    sentence = "Conexão confirmada pela revisão; confira o pilar antes de pedir os componentes."
    if sentences == "max":  # the longest message an approval takes
        message = " ".join([sentence] * (REPORT_MESSAGE_MAX // len(sentence) + 1))[:REPORT_MESSAGE_MAX]
    else:
        message = " ".join([sentence] * sentences)
    tooth = ("região de 46 e 47, " * 7)[:TOOTH_MAX]  # the longest tooth / region the intake keeps
    case = SimpleNamespace(jotform_submission_id="6084250982513018472", review_message=message, tooth=tooth,
                           client_name="Dra. Ana Souza", reviewed_by="user:x", reviewed_at=datetime.now(UTC))
    sizes = {"platform_mm": 4.3, "diameters": [3.3, 3.75, 4.3, 5.0, 6.0]}  # the facts that order parts, on each line
    system = SimpleNamespace(name="Grand Morse", manufacturer="Neodent", connection="CM 16°", attributes=sizes)
    extra = [(SimpleNamespace(name=f"Demo {k:03d} Cone Morse 11.5° tapered, long body line", connection="internal hex",
                              manufacturer="Synthetic Implant Works Indústria e Comércio Ltda.", attributes=sizes),
              film(600, 1200 + k))
             for k in range(others)]
    captions = [(1, system.name), *((n + 2, o.name) for n, (o, _ref) in enumerate(extra[:2 if pages == 1 else 8]))]
    html = render("report.html", case=case, system=system, reference=film(600, 1200), others=extra,
                  xrays=[(k + 1, film(1400, 1050), captions if others else []) for k in range(films)])
    page = await browser.new_page()
    await page.set_content(html)
    pdf = await page.pdf(format="A4")
    await page.emulate_media(media="print")
    shown = await page.evaluate("Array.from(document.querySelectorAll('.films img')).map(i => i.clientHeight)")
    spill = await page.evaluate("document.querySelector('footer').getBoundingClientRect().bottom"
                                " - document.body.getBoundingClientRect().bottom")
    await page.close()
    sheets = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert sheets == pages if pages else sheets in (1, 2)
    assert len(shown) == films and min(shown) > 100, shown  # every film keeps a readable height (30 mm)
    assert sheets > 1 or spill <= 1, spill  # on one sheet, nothing runs past its end
    assert html.count("Imagem de referência de") == 1 + others and html.count("Radiografia enviada") == 2 * films
    assert f"Dente / região informado:</b> {tooth}" in html


async def test_the_report_on_a_phone_shows_one_film_a_row_and_never_scrolls_sideways(browser):
    """At 390 px (a phone) each film takes the page's width (two side by side were ~165 px: implants too small to
    see), and the header, the facts and the caption wrap instead of widening the page."""
    import base64
    import io
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from PIL import Image

    from raiox.delivery.templates import render

    buf = io.BytesIO()
    Image.new("L", (1400, 1050), 90).save(buf, "JPEG")
    src = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    case = SimpleNamespace(jotform_submission_id="6084250982513018472", review_message="Conexão confirmada.",
                           client_name="Dra. Ana Souza", reviewed_at=datetime.now(UTC))
    system = SimpleNamespace(name="Grand Morse", manufacturer="Neodent", connection="CM 16°",
                             attributes={"platform_mm": 4.3, "diameters": [3.5, 4.0, 5.0]})
    html = render("report.html", case=case, system=system, reference=src, others=[],
                  xrays=[(1, src, [(1, "Grand Morse")]), (2, src, [])])
    page = await browser.new_page(viewport={"width": 390, "height": 844}, locale="pt-BR")
    await page.set_content(html)
    widths = await page.evaluate("Array.from(document.querySelectorAll('.films img')).map(i => i.clientWidth)")
    assert len(widths) == 2 and min(widths) >= 330, widths
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await page.close()


async def test_approving_several_systems_names_them_and_enter_in_the_search_only_searches(committed, server, browser):
    from sqlalchemy import select

    from raiox.models import CaseImage, Fixture, FixtureResult

    async with session_scope() as session:
        await add_system(session, "neo-cm", "Neodent", "Grand Morse", seed=1)
        await add_system(session, "str-bl", "Straumann", "Bone Level", seed=2)
        await add_user(session, "revisora@example.com", PASSWORD, "reviewer")
        case = await add_case(session, candidates=[("neo-cm", 0.93), ("str-bl", 0.70)], images=2)
        second = (await session.execute(select(Fixture).join(CaseImage).where(
            CaseImage.case_id == case.id, CaseImage.position == 1))).scalars().one()
        results = await session.execute(select(FixtureResult).where(FixtureResult.fixture_id == second.id))
        for result in results.scalars():
            result.system_id = {"neo-cm": "str-bl", "str-bl": "neo-cm"}[result.system_id]  # film 2: the other one
    page, asked = await _case_page(browser, server, case)
    boxes = page.locator("#other-systems input[name=other_system_ids]")
    assert await boxes.count() == 2
    assert await boxes.nth(0).is_disabled() and not await boxes.nth(1).is_disabled()  # the main one is not "other"
    await page.locator("#approve-form input[name=system_id][value='str-bl']").check()
    assert not await boxes.nth(0).is_disabled() and await boxes.nth(1).is_disabled()
    await page.locator("#approve-form input[name=system_id][value='neo-cm']").check()
    await boxes.nth(1).check()

    search = page.get_by_label("Outro sistema do catálogo")
    await search.fill("Bone")
    await search.press("Enter")  # searches; must not submit the approval around it
    await page.locator("#system-results input[value='str-bl']").wait_for()
    await page.wait_for_timeout(300)
    assert asked == [] and (await page.locator("#case-status").inner_text()).strip() == "Aguardando revisão"

    await page.get_by_role("button", name="Aprovar e enviar ao dentista").click()
    await page.wait_for_selector("#approved-others")
    assert asked == ["Aprovar e enviar ao dentista: Grand Morse (Neodent), Bone Level (Straumann)? "
                     "Não é possível desfazer."]
    assert "Bone Level" in await page.locator("#approved-others").inner_text()
    await page.close()


async def test_a_refused_note_shows_its_error_and_a_long_link_does_not_widen_the_page(committed, server, browser):
    _, case = await _seed(demo=False)
    page = await browser.new_page(viewport={"width": 390, "height": 844}, locale="pt-BR")
    await _login(page, server, "revisora@example.com")
    await page.goto(f"{server}/admin/cases/{case.id}")
    note = page.locator("textarea[name=text]")
    await note.fill("   ")
    await page.get_by_role("button", name="Adicionar nota").click()
    flash = page.locator("#flash")
    await flash.get_by_text("nota").first.wait_for()  # htmx swaps the 422's pt-BR message in (it ignored 4xx before)
    link = "https://drive.google.com/file/d/" + "1AbCdEfGhIjKlMnOpQrStUvWxYz" * 6 + "/view?usp=sharing"
    await note.fill(f"Link enviado pela dentista: {link}")
    await page.get_by_role("button", name="Adicionar nota").click()
    await page.locator("#audit").get_by_text("Link enviado pela dentista").wait_for()
    assert (await flash.inner_text()).strip() == ""  # the old error does not outlive the saved note
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await page.close()


async def test_the_delivery_line_follows_the_delivery_and_a_mistyped_email_is_said_beside_its_field(committed, server,
                                                                                                   browser):
    """No reload: "Entrega pendente" becomes "Resultado entregue" (and the badge "Entregue") by itself, the success
    message above staying; a resend's "under way" alert goes and the result's buttons (deliver again, revoke) come
    with it; a mistyped address comes back beside its field, what was typed kept in it."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from raiox.cases.service import transition
    from raiox.models import Case, CaseStatus, Delivery

    _, case = await _seed(demo=False)
    async with session_scope() as session:  # approved, undelivered, resent: pending (no job: the test settles it)
        decided = await session.get(Case, case.id)
        decided.status, decided.approved_system_id = CaseStatus.delivery_failed, "neo-cm"
        decided.failure_reason = "jotform: Jotform API 503: unavailable"
        decided.reviewed_by, decided.reviewed_at = "user:revisora@example.com", datetime.now(UTC)
        session.add(Delivery(case_id=case.id, attempts=0))
    page = await browser.new_page(locale="pt-BR")
    await _login(page, server, "revisora@example.com")
    await page.goto(f"{server}/admin/cases/{case.id}?feito=resent")
    line, actions = page.locator("#delivery-state"), page.locator("#report-actions")
    assert (await line.inner_text()).strip() == "Entrega pendente"
    await page.wait_for_timeout(4500)  # a poll came back still pending: the line stays, the message too
    assert "Entrega pendente" in await line.inner_text() and await page.locator("#done").count() == 1
    assert await page.locator("#resend-pending").is_visible() and await actions.get_by_role("button").count() == 0

    await page.locator("#fix-email summary").click()
    field = page.locator("#client-email")
    await field.fill("ana@clinica")
    await page.get_by_role("button", name="Salvar e-mail").click()
    await page.locator("#client-email-error").wait_for()
    assert "“ana@clinica” não é um endereço de e-mail." in await page.locator("#client-email-error").inner_text()
    assert await page.locator("#client-email").input_value() == "ana@clinica"
    assert await page.locator("#client-email").get_attribute("aria-invalid") == "true"
    assert page.url.endswith(f"/admin/cases/{case.id}")  # the same page (feito dropped from the address)

    async with session_scope() as session:
        record = (await session.execute(select(Delivery).where(Delivery.case_id == case.id))).scalar_one()
        record.status, record.jotform_done_at = "delivered", datetime.now(UTC)
        await transition(session, await session.get(Case, case.id), CaseStatus.delivered, actor="system:delivery")
    await page.locator("#delivery-state", has_text="Resultado entregue").wait_for(timeout=8000)
    assert (await page.locator("#case-status").inner_text()).strip() == "Entregue"
    assert await line.get_attribute("hx-trigger") is None  # settled: no more polling
    assert await page.locator("#resend-pending").count() == 0 and await page.locator("#delivery-alert").count() == 1
    assert await actions.get_by_role("button", name="Enviar de novo ao dentista").is_visible()
    assert await actions.get_by_role("button", name="Revogar link do relatório").is_visible()
    assert await page.locator("[hx-swap-oob]").count() == 0
    assert await page.locator("#client-email").input_value() == "ana@clinica"  # nothing reloaded
    await page.close()


async def test_a_new_search_keeps_the_chosen_main_system_or_falls_back_to_the_first_candidate(committed, server,
                                                                                             browser):
    _, case = await _seed(demo=False)
    async with session_scope() as session:
        await add_system(session, "str-bl", "Straumann", "Bone Level", seed=2)
    page = await browser.new_page(locale="pt-BR")
    await _login(page, server, "revisora@example.com")
    await page.goto(f"{server}/admin/cases/{case.id}")
    search = page.get_by_label("Outro sistema do catálogo")
    picked = page.locator("#system-results input[value='str-bl']")
    await search.fill("Bone")
    await picked.check()
    await search.fill("Bone Level")  # new results replace the old ones, the chosen system among them
    await search.press("Enter")
    await page.wait_for_timeout(600)
    assert await picked.is_checked()
    await search.fill("nothing matches this")
    await search.press("Enter")
    await page.locator("#system-results").get_by_text("Nenhum").wait_for()
    checked = page.locator("#approve-form input[name=system_id]:checked")
    assert await checked.count() == 1 and await checked.get_attribute("value") == "neo-cm"  # never no main system
    await page.close()


async def _film_without_implants(system_id: str):
    """A case awaiting review whose film (a rendered scene of SYSTEM_ID) the analysis found no implant on, and a
    catalog of two demo systems embedded with the shipped model."""
    from raiox.catalog.service import Importer
    from raiox.catalog.sources import ImportItem
    from raiox.kit.storage import content_key, get_storage
    from raiox.models import CaseImage
    from raiox.synth import demo_catalog, render_reference, render_scene, to_png
    from raiox.vision import get_embedder

    specs = {s.id: s.spec for s in demo_catalog()}
    items = [ImportItem(sid, "Synthetica", sid.upper(), f"{sid}/{seed}.png",
                        (lambda d=to_png(render_reference(specs[sid], seed=seed)): d), {})
             for sid in ("demo-004", "demo-005") for seed in (0, 1)]
    scene = render_scene([specs[system_id]], seed=11)
    async with session_scope() as session:
        await Importer(get_storage(), get_embedder()).import_batch(session, items)
        case = await add_case(session, images=0)
        data = to_png(scene.image)
        key, sha = content_key(data)
        await get_storage().put(key, data, "image/png")
        height, width = scene.image.shape[:2]
        session.add(CaseImage(case_id=case.id, position=0, source_url="https://www.jotform.com/uploads/x/rx.png",
                              filename="rx.png", storage_key=key, sha256=sha, width=width, height=height,
                              status="processed"))
        await add_user(session, "revisora@example.com", PASSWORD, "reviewer")
    return case, scene


async def test_the_reviewer_marks_a_missed_implant_by_dragging_on_the_film_and_removes_it(committed, server, browser):
    import numpy as np

    case, scene = await _film_without_implants("demo-004")
    page = await browser.new_page(viewport={"width": 1440, "height": 1100}, locale="pt-BR")
    await _login(page, server, "revisora@example.com")
    await page.wait_for_url(f"{server}/admin/")
    await page.goto(f"{server}/admin/cases/{case.id}")
    await page.wait_for_function("document.querySelector('.stage img').complete")
    viewer = page.locator("[data-viewer]").first
    assert await viewer.locator("svg.marks polygon").count() == 0
    await viewer.get_by_role("button", name="Aproximar").click()  # zoomed: the drag is still read in film pixels

    corners = np.asarray(scene.boxes[0], dtype=float)
    (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
    height, width = scene.image.shape[:2]
    draw = viewer.get_by_role("button", name="Marcar implante")
    await draw.click()
    await page.keyboard.press("Escape")  # focus still on the button: Escape leaves the marking mode
    assert await draw.get_attribute("aria-pressed") == "false"
    await draw.click()
    assert await draw.get_attribute("aria-pressed") == "true"
    shown = await viewer.locator(".stage img").bounding_box()
    await page.mouse.click(shown["x"] + 40, shown["y"] + 40)  # a click is no rectangle: nothing filled, still marking
    assert await page.locator("details.mark-form input[name=x0]").input_value() == ""
    assert await draw.get_attribute("aria-pressed") == "true"

    def on_page(x: float, y: float) -> tuple[float, float]:
        return shown["x"] + x / width * shown["width"], shown["y"] + y / height * shown["height"]

    await page.mouse.move(*on_page(x1, y1))  # from the bottom right corner: the form gets the corners in order
    await page.mouse.down()
    await page.mouse.move(*on_page((x0 + x1) / 2, (y0 + y1) / 2), steps=4)
    await page.mouse.move(*on_page(x0, y0), steps=4)
    await page.mouse.up()
    form = page.locator("details.mark-form form")
    typed = [float(await form.locator(f"input[name={n}]").input_value()) for n in ("x0", "y0", "x1", "y1")]
    tolerance = 2 * width / shown["width"] + 1  # a page pixel, in film pixels
    assert np.allclose(typed, [x0, y0, x1, y1], atol=tolerance), (typed, [x0, y0, x1, y1])
    assert await viewer.get_by_role("button", name="Marcar implante").get_attribute("aria-pressed") == "false"

    await form.get_by_role("button", name="Analisar recorte").click()
    await page.wait_for_url(re.compile(r".*#fixture-.*"))
    marked = page.locator("details[id^=fixture-]")
    assert await marked.count() == 1 and await marked.get_attribute("open") is not None  # opened at the new implant
    assert "marcado pelo revisor" in await marked.locator("summary").inner_text()
    assert "DEMO-004" in await marked.locator(".cand").first.inner_text()
    assert "DEMO-004" in await page.locator("#fused .cand").first.inner_text()  # the case's ranking, fused again
    assert await page.locator("svg.marks polygon.manual").count() == 1
    assert "Marcou um implante" in await page.locator("#audit").inner_text()

    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await marked.get_by_role("button", name="Remover este implante").click()
    await page.wait_for_selector("details[id^=fixture-]", state="detached")
    assert await page.locator("svg.marks polygon").count() == 0
    assert await page.locator("#fused .cand").count() == 0
    assert "Removeu um implante" in await page.locator("#audit").inner_text()


async def test_a_system_stated_for_one_implant_is_named_in_the_confirmation(committed, server, browser):
    async with session_scope() as session:
        await add_system(session, "neo-cm", "Neodent", "Grand Morse", seed=1)
        await add_system(session, "str-bl", "Straumann", "Bone Level", seed=2)
        await add_system(session, "long",
                         "Synthetic Implant Works Indústria e Comércio de Produtos Odontológicos Ltda.",
                         "Demo 077 Cone Morse 11.5° tapered, long body line with a microthreaded collar", seed=3)
        await add_user(session, "revisora@example.com", PASSWORD, "reviewer")
        case = await add_case(session, candidates=[("neo-cm", 0.93), ("str-bl", 0.70), ("long", 0.6)], images=2)
    page, asked = await _case_page(browser, server, case)
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # long names: no sideways
    selects = page.locator("#implant-systems select[name=implants]")
    assert await selects.count() == 2
    await selects.nth(0).select_option(label="o sistema principal (escolhido acima)")
    await selects.nth(1).select_option(label="Bone Level — Straumann")
    await page.get_by_role("button", name="Aprovar e enviar ao dentista").click()
    await page.wait_for_selector("#approved-implants")
    assert asked == ["Aprovar e enviar ao dentista: Grand Morse (Neodent), Bone Level (Straumann)? "
                     "Não é possível desfazer."]
    listed = await page.locator("#approved-implants").inner_text()
    assert "radiografia 1, implante 1: Grand Morse" in listed and "radiografia 2, implante 1: Bone Level" in listed
    assert "Bone Level" in await page.locator("#approved-others").inner_text()
    await page.close()


async def test_names_without_spaces_wrap_instead_of_widening_the_catalog_pages(committed, server, browser):
    unbroken = "Implantes" + "X" * 180
    async with session_scope() as session:
        await add_system(session, "long-one", unbroken, "Linha" + "Y" * 180, seed=3)
        await add_user(session, "admin@example.com", PASSWORD, "admin")
    page = await browser.new_page(locale="pt-BR", viewport={"width": 1280, "height": 900})
    await _login(page, server, "admin@example.com")
    for path in ("/admin/catalog", "/admin/catalog/long-one"):
        await page.goto(f"{server}{path}")
        assert unbroken in await page.content()
        widest = await page.evaluate("Math.max(...[...document.querySelectorAll('h1, table')].map(e => e.scrollWidth))")
        assert widest <= 1280, (path, widest)
    await page.close()


async def _until(page, expression: str, timeout: float = 10) -> None:
    """Wait until EXPRESSION is true in the page (polled from here: the panel's CSP forbids the evaluated predicate
    Playwright's own wait_for_function polls with)."""
    deadline = time.monotonic() + timeout
    while not await page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        await asyncio.sleep(0.05)


async def test_the_film_lets_the_page_scroll_until_it_is_zoomed_and_never_leaves_its_frame(committed, server, browser):
    _systems, case = await _seed(demo=False)
    page = await browser.new_page(locale="pt-BR", viewport={"width": 1280, "height": 700})
    await _login(page, server, "revisora@example.com")
    await page.goto(f"{server}/admin/cases/{case.id}")
    viewer, stage = page.locator("[data-viewer]").first, page.locator(".stage").first
    await page.wait_for_function("document.querySelector('.stage img').naturalWidth > 0")
    await stage.scroll_into_view_if_needed()
    box = await stage.bounding_box()
    middle = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await page.mouse.move(*middle)
    before = await page.evaluate("window.scrollY")
    await page.mouse.wheel(0, 300)  # over the film at 100 %: the page scrolls, the film stays as it is
    await _until(page, f"window.scrollY > {before}")
    assert await viewer.get_attribute("data-scale") == "1.00"
    style = await viewer.locator(".stage img").get_attribute("style")
    await page.mouse.move(*middle)
    await page.mouse.down()
    await page.mouse.move(middle[0] + 200, middle[1] + 150, steps=5)  # a drag at 100 %: nothing to move
    await page.mouse.up()
    assert await viewer.locator(".stage img").get_attribute("style") == style
    box = await stage.bounding_box()
    middle = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await page.mouse.move(*middle)
    await page.keyboard.down("Control")  # Ctrl + wheel (a trackpad's pinch) zooms
    await page.mouse.wheel(0, -100)
    await page.keyboard.up("Control")
    await _until(page, "Number(document.querySelector('[data-viewer]').dataset.scale) > 1.1")
    scale = float(await viewer.get_attribute("data-scale"))
    await page.mouse.down()
    await page.mouse.move(middle[0] + 5000, middle[1] + 5000, steps=5)  # far past the edge
    await page.mouse.up()
    shift = await page.evaluate("""() => {
        const img = document.querySelector('.stage img');
        const m = img.style.transform.match(/translate\\(([-\\d.]+)px, *([-\\d.]+)px\\)/);
        return {x: Number(m[1]), y: Number(m[2]), w: img.offsetWidth, h: img.offsetHeight};
    }""")
    assert 0 < shift["x"] <= (scale - 1) * shift["w"] / 2 + 0.5  # moved, but only as far as the picture's edge
    assert 0 < shift["y"] <= (scale - 1) * shift["h"] / 2 + 0.5
    await page.close()
