import re
import uuid

from review_helpers import add_case, add_system, settle_jobs

from raiox.delivery.report import LinkExpired, case_from_token, report_token, report_url
from raiox.review import service as review


def _tampered(token: str) -> str:
    """TOKEN with its signature's first character changed: every bit of it counts (the last base64 character of a
    20-byte HMAC carries 4 bits only, so changing it could leave the signature valid, ~1 run in 500)."""
    at = token.rindex(".") + 1
    return token[:at] + ("B" if token[at] == "A" else "A") + token[at + 1:]


async def test_signed_report_link_shows_the_result(client, session):
    await add_system(session, "str-bl", "Straumann", "Bone Level", seed=2)
    case = await add_case(session, candidates=[("str-bl", 0.8)])
    await review.approve(session, case.id, "str-bl", actor="user:rev@example.com")
    url = report_url(case.id)
    assert url.startswith("http") and "/reports/" in url
    response = await client.get(f"/reports/{report_token(case.id)}")
    assert response.status_code == 200
    assert "Bone Level" in response.text and "Straumann" in response.text and "Equipe Raiox AI" in response.text
    assert "rev@example.com" not in response.text  # the reviewer's address is internal, not the dentist's to see
    assert response.text.count("data:image/jpeg;base64,") == 2  # the X-ray and the system's reference
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY" and response.headers["x-content-type-options"] == "nosniff"
    tampered = _tampered(report_token(case.id))
    assert (await client.get(f"/reports/{tampered}")).status_code == 404
    head = await client.head(f"/reports/{report_token(case.id)}")  # a mail scanner's look before the dentist's
    assert head.status_code == 200 and head.headers["content-type"].startswith("text/html")


async def test_the_report_names_the_tooth_the_dentist_gave(client, session):
    await add_system(session, "str-bl", "Straumann", "Bone Level", seed=2)
    named = await add_case(session, candidates=[("str-bl", 0.8)], tooth="região de 46 <b>")
    unnamed = await add_case(session, candidates=[("str-bl", 0.8)])
    for case in (named, unnamed):
        await review.approve(session, case.id, "str-bl", actor="user:rev@example.com")
    page = (await client.get(f"/reports/{report_token(named.id)}")).text
    assert "<span><b>Dente / região informado:</b> região de 46 &lt;b&gt;</span>" in page
    assert "Dente / região" not in (await client.get(f"/reports/{report_token(unnamed.id)}")).text


async def test_a_link_without_a_report_gives_the_dentist_a_pt_br_page(client, session, monkeypatch):
    """The dentist opens these links: a tampered, expired or not (yet) reportable one explains itself in pt-BR,
    as an HTML page with the right status, never as an English JSON error."""
    import itsdangerous

    case = await add_case(session, candidates=[])
    pages = {"tampered": await client.get(f"/reports/{_tampered(report_token(case.id))}"),
             "unapproved": await client.get(f"/reports/{report_token(case.id)}"),
             "trailing": await client.get(f"/reports/{report_token(case.id)}/x"),  # pasted with a stray tail
             "cut": await client.get("/reports/"), "bare": await client.get("/reports")}  # the token cut off
    old = report_token(case.id)
    monkeypatch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: 2_000_000_000_0)
    pages["expired"] = await client.get(f"/reports/{old}")
    monkeypatch.undo()
    expected = {"tampered": (404, "Link de relatório inválido"), "unapproved": (404, "Relatório indisponível"),
                "trailing": (404, "Link de relatório inválido"), "cut": (404, "Link de relatório inválido"),
                "bare": (404, "Link de relatório inválido"),
                "expired": (410, "Este link de relatório expirou")}
    for name, response in pages.items():
        status, heading = expected[name]
        assert response.status_code == status, name
        assert response.headers["content-type"].startswith("text/html") and f"<h1>{heading}</h1>" in response.text
        assert 'lang="pt-BR"' in response.text and response.headers["x-robots-tag"] == "noindex"
    assert f'<strong id="protocol">{case.jotform_submission_id}</strong>' in pages["expired"].text  # to quote
    assert 'id="protocol"' not in pages["tampered"].text  # a forged link names nothing


async def test_expired_report_link(monkeypatch, session):
    import itsdangerous

    token = report_token(uuid.uuid4())
    monkeypatch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: 2_000_000_000_0)
    try:
        case_from_token(token)
        raise AssertionError("expected NotFound")
    except LinkExpired as exc:
        assert "expired" in exc.message and exc.status_code == 410


async def test_the_report_names_catalog_terms_in_pt_br(client, session):
    """A catalog typed in English ("external hex") reads in Portuguese on the dentist's report; a Brazilian
    abbreviation ("CM 16°") stays as typed."""
    from raiox.models import ImplantSystem

    for system_id, connection, shown in (("sys-he", "external hex", "hexágono externo"),
                                         ("sys-cm", "CM 16°", "CM 16°")):
        await add_system(session, system_id, "Acme", system_id.upper(), seed=3)
        (await session.get(ImplantSystem, system_id)).connection = connection
        case = await add_case(session, candidates=[(system_id, 0.8)])
        await review.approve(session, case.id, system_id, actor="user:rev@example.com")
        page = (await client.get(f"/reports/{report_token(case.id)}")).text
        assert f"· conexão {shown}" in page, system_id


async def test_the_report_lists_every_approved_system_with_its_reference(client, session):
    await add_system(session, "neo-cm", "Neodent", "Grand Morse", seed=1)
    await add_system(session, "str-bl", "Straumann", "Bone Level", seed=2)
    case = await add_case(session, candidates=[("str-bl", 0.8), ("neo-cm", 0.7)])
    await review.approve(session, case.id, "str-bl", actor="user:rev@example.com", other_system_ids=["neo-cm"])
    page = (await client.get(f"/reports/{report_token(case.id)}")).text
    listed = re.search(r'<ol class="systems">(.*?)</ol>', page, re.S).group(1)
    assert listed.index("Bone Level") < listed.index("Grand Morse") and "Neodent" in listed
    assert listed.count("· conexão Cone Morse") == 2  # every system with its details, the main one too
    assert "implantes de 2 sistemas" in page
    assert page.count("data:image/jpeg;base64,") == 3  # the X-ray and both systems' references
    assert 'alt="Imagem de referência de Grand Morse"' in page


async def test_a_report_never_shows_another_patients_film_added_to_the_catalog(client, session):
    """"Add to catalog" keeps a case's film as a reference (for the operators' search); a report shows the dentist
    catalog references only, never that film, even when it matched best."""
    from sqlalchemy import select

    from raiox.delivery.routes import _data_uri, report_context
    from raiox.models import CaseImage, Fixture, FixtureResult, ReferenceImage

    await add_system(session, "neo-cm", "Neodent", "Grand Morse", seed=1)
    catalog_ref = (await session.execute(select(ReferenceImage)
                                         .where(ReferenceImage.system_id == "neo-cm"))).scalar_one()
    first = await add_case(session, candidates=[("neo-cm", 0.9)], name="Paciente A")
    await review.approve(session, first.id, "neo-cm", actor="user:admin@example.com", add_to_catalog=True)
    from_case = (await session.execute(select(ReferenceImage).where(ReferenceImage.source == "case"))).scalar_one()
    other = await add_case(session, candidates=[("neo-cm", 0.9)], name="Outra clínica")
    for result in (await session.execute(select(FixtureResult).join(Fixture, Fixture.id == FixtureResult.fixture_id)
                                         .join(CaseImage, CaseImage.id == Fixture.case_image_id)
                                         .where(CaseImage.case_id == other.id))).scalars():
        result.reference_image_id = from_case.id  # the first patient's film matched best
    await review.approve(session, other.id, "neo-cm", actor="user:rev@example.com")
    context = await report_context(session, other.id)
    assert context["reference"] == await _data_uri(catalog_ref.storage_key)
    assert context["reference"] != await _data_uri(from_case.storage_key)


async def test_a_report_leaves_out_films_the_analysis_refused(client, session):
    from sqlalchemy import select

    from raiox.delivery.routes import report_context
    from raiox.models import CaseImage

    await add_system(session, "neo-cm", "Neodent", "Grand Morse", seed=1)
    case = await add_case(session, candidates=[("neo-cm", 0.9)], images=2)
    refused = (await session.execute(select(CaseImage).where(
        CaseImage.case_id == case.id, CaseImage.position == 1))).scalar_one()
    refused.status, refused.error = "invalid", "image too large: 15000x15000 pixels (limit 60000000)"
    await review.approve(session, case.id, "neo-cm", actor="user:rev@example.com")
    assert len((await report_context(session, case.id))["xrays"]) == 1


async def test_the_report_draws_and_names_each_mapped_implant(client, session):
    """Implants the reviewer mapped to systems are outlined and numbered on the report's films, and each film's
    caption names them; without a mapping the films are shown as sent."""
    import base64
    import io

    import numpy as np
    from PIL import Image
    from sqlalchemy import select

    from raiox.models import CaseImage, Fixture

    await add_system(session, "neo-cm", "Neodent", "Grand Morse", seed=1)
    await add_system(session, "str-bl", "Straumann", "Bone Level", seed=2)
    case = await add_case(session, candidates=[("str-bl", 0.8), ("neo-cm", 0.7)], images=2)
    fixtures = (await session.execute(select(Fixture.id).join(CaseImage).where(CaseImage.case_id == case.id)
                                      .order_by(CaseImage.position))).scalars().all()
    await review.approve(session, case.id, "str-bl", actor="user:rev@example.com", other_system_ids=["neo-cm"],
                         implants={str(fixtures[0]): "str-bl", str(fixtures[1]): "neo-cm"})
    page = (await client.get(f"/reports/{report_token(case.id)}")).text
    captions = re.findall(r"<figcaption>(Radiografia enviada .*?)</figcaption>", page)
    assert captions == ["Radiografia enviada 1 — implante 1: <strong>Bone Level</strong>",
                        "Radiografia enviada 2 — implante 1: <strong>Grand Morse</strong>"]
    film = re.search(r'<img src="data:image/jpeg;base64,([^"]+)" alt="Radiografia enviada 1"', page).group(1)
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(film))).convert("RGB")).astype(int)
    yellow = (pixels[..., 0] > 200) & (pixels[..., 1] > 170) & (pixels[..., 2] < 90)
    ys, xs = np.nonzero(yellow)
    assert yellow.sum() > 200 and 290 <= xs.min() <= 302 and 338 <= xs.max() <= 370  # the box [[300, 90]..[340, 300]]
    assert 295 <= ys.max() <= 306 and ys.min() < 90  # down to the apex edge; the number above the platform edge

    plain = await add_case(session, candidates=[("str-bl", 0.8)])
    await review.approve(session, plain.id, "str-bl", actor="user:rev@example.com")
    page = (await client.get(f"/reports/{report_token(plain.id)}")).text
    assert re.findall(r"<figcaption>(Radiografia enviada .*?)</figcaption>", page) == ["Radiografia enviada 1"]
    film = re.search(r'<img src="data:image/jpeg;base64,([^"]+)" alt="Radiografia enviada 1"', page).group(1)
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(film))).convert("RGB")).astype(int)
    assert ((pixels[..., 0] > 200) & (pixels[..., 1] > 170) & (pixels[..., 2] < 90)).sum() == 0  # nothing drawn


async def test_revoking_the_report_link_deactivates_every_link_made_before(client, session):
    from raiox.kit.errors import Conflict
    from raiox.models import Case

    await add_system(session, "neo-cm", "Neodent", "Grand Morse", seed=1)
    case = await add_case(session, candidates=[("neo-cm", 0.8)])
    await review.approve(session, case.id, "neo-cm", actor="user:rev@example.com")
    await settle_jobs(session)  # delivered
    before = report_token(case.id)  # a link sent before any revocation carries no key
    assert (await client.get(f"/reports/{before}")).status_code == 200
    await review.revoke_report(session, case.id, actor="user:rev@example.com")
    key = (await session.get(Case, case.id)).report_key
    assert key
    gone = await client.get(f"/reports/{before}")
    assert gone.status_code == 410 and "foi desativado" in gone.text
    assert case.jotform_submission_id not in gone.text  # a revoked link is likely in wrong hands: no protocol
    assert (await client.get(f"/reports/{report_token(case.id, key)}")).status_code == 200
    await review.revoke_report(session, case.id, actor="user:rev@example.com")  # again: that link dies too
    assert (await client.get(f"/reports/{report_token(case.id, key)}")).status_code == 410
    forged = report_token(case.id, "made-up-key")
    assert (await client.get(f"/reports/{forged}")).status_code == 410

    rejected = await add_case(session, candidates=[("neo-cm", 0.8)])
    await review.reject(session, rejected.id, "Envie outra radiografia.", actor="user:rev@example.com")
    try:
        await review.revoke_report(session, rejected.id, actor="user:rev@example.com")
        raise AssertionError("a rejected case has no report to revoke")
    except Conflict as exc:
        assert "has no report" in exc.message


async def test_the_report_gives_what_orders_parts_keeps_the_reviewers_lines_and_has_headings(client, session):
    """The platform beside the connection (pt-BR decimals); the reviewer's line breaks kept,
    his markup shown as typed; the page's parts named by headings (h1, then h2) for a screen reader."""
    from raiox.models import ImplantSystem

    await add_system(session, "str-bl", "Straumann", "Bone Level", seed=2)
    (await session.get(ImplantSystem, "str-bl")).attributes = {"platform_mm": 4.1, "diameters": [3.3, 4]}
    case = await add_case(session, candidates=[("str-bl", 0.8)])
    await review.approve(session, case.id, "str-bl", actor="user:rev@example.com",
                         message="Conexão confirmada.\nPeça o pilar <b>reto</b>.")
    page = (await client.get(f"/reports/{report_token(case.id)}")).text
    assert re.search(r"<strong>Bone Level</strong> — Straumann · conexão Cone Morse · plataforma 4,1 mm\s*<", page)
    assert "diâmetros" not in page  # the line's options (the e-mail lists them): nine systems' would take a 2nd sheet
    assert "<p>Conexão confirmada.<br>\nPeça o pilar &lt;b&gt;reto&lt;/b&gt;.</p>" in page
    headings = re.findall(r"<(h[1-6])[^>]*>(.*?)</h[1-6]>", page)
    assert headings == [("h1", "Raiox AI — Relatório de identificação"), ("h2", "Sistema de implante identificado"),
                        ("h2", "Imagens de referência do catálogo")]


async def test_the_reports_date_is_in_the_dentists_time_zone_not_the_operators(client, session, configure):
    """RAIOX_CLIENT_TIMEZONE (São Paulo by default) dates what the dentist reads; the operator's panel zone
    (RAIOX_ADMIN_TIMEZONE) does not move it."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    await add_system(session, "str-bl", "Straumann", "Bone Level", seed=2)
    case = await add_case(session, candidates=[("str-bl", 0.8)])
    await review.approve(session, case.id, "str-bl", actor="user:rev@example.com")
    case.reviewed_at = datetime(2026, 3, 10, 23, 30, tzinfo=ZoneInfo("America/Sao_Paulo"))
    await session.flush()
    configure(ADMIN_TIMEZONE="Asia/Tokyo")  # 11/03 11:30 there
    page = (await client.get(f"/reports/{report_token(case.id)}")).text
    assert "<span><b>Data:</b> 10/03/2026 23:30</span>" in page
    configure(CLIENT_TIMEZONE="America/Manaus")  # UTC-4
    page = (await client.get(f"/reports/{report_token(case.id)}")).text
    assert "<span><b>Data:</b> 10/03/2026 22:30</span>" in page


async def test_an_expired_link_of_one_day_says_dia(client, session, configure, monkeypatch):
    import itsdangerous

    configure(REPORT_LINK_DAYS="1")
    case = await add_case(session, candidates=[])
    token = report_token(case.id)
    monkeypatch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: 2_000_000_000_0)
    page = (await client.get(f"/reports/{token}")).text
    assert "os links de relatório valem 1 dia a partir do envio do resultado." in page


def test_the_facts_of_a_system_read_its_catalog_attributes_in_pt_br():
    from types import SimpleNamespace

    from raiox.delivery.templates import facts

    system = SimpleNamespace(connection="external hex", attributes={"platform_mm": 4.1, "diameters": [3.75, 4, "5.0"]})
    assert facts(system) == ["conexão hexágono externo", "plataforma 4,1 mm",
                             "diâmetros disponíveis 3,75 / 4,0 / 5,0 mm"]
    assert facts(system, diameters=False) == ["conexão hexágono externo", "plataforma 4,1 mm"]
    odd = SimpleNamespace(connection=None, attributes={"platform_mm": {"mm": 4}, "diameters": [True, None, ""]})
    assert facts(odd) == [] and facts(SimpleNamespace(connection="", attributes=None)) == []
