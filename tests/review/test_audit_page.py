"""The audit log for administrators: the panel's Auditoria page (/admin/audit) and `raiox audit list`."""

import asyncio
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from review_helpers import add_case, add_system, add_user
from typer.testing import CliRunner

from raiox.kit.db import session_scope

PASSWORD = "correct horse battery"


@pytest.fixture
async def panel(committed):
    from raiox.app import create_app

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://testserver") as http:
        yield http


async def login(http, email: str) -> None:
    page = await http.get("/admin/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    done = await http.post("/admin/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert done.status_code == 303


async def _entries(at: datetime | None = None):
    """A case, a system, two users and entries of every kind the page must read: case, catalog, token, user."""
    from sqlalchemy import update

    from raiox.models import AuditEntry
    from raiox.review.service import audit

    async with session_scope() as session:
        await add_system(session, "neo-cm", "Neodent", "Grand Morse", seed=1)
        case = await add_case(session, submission_id="5800000000000000001")
        await add_user(session, "rev@example.com", PASSWORD, "reviewer")
        await add_user(session, "admin@example.com", PASSWORD, "admin")
        await audit(session, "cli:raiox tokens create", "token.create", target="ci-bot", scopes=["review"],
                    prefix="rx_abc1234")
        await audit(session, "cli:raiox users add", "user.add", target="ops@example.com", outcome="created",
                    role="admin")
        await audit(session, "user:admin@example.com", "catalog.update", target="neo-cm", active=True,
                    changed={"name": ["Grand Morse", "Grand Morse II"]})
        await audit(session, "user:admin@example.com", "catalog.reference_remove", target="neo-cm",
                    origin="pacientes/joao-da-silva.png", sha256="ab" * 32, object_deleted=True,
                    storage_key="refs/ab/abab.png")
        await audit(session, "user:rev@example.com", "case.approve", case.id, "neo-cm",
                    system="Grand Morse (Neodent)", message="Implante Grand Morse.", others=["Helix (Neodent)"],
                    implants={"0b6c3f8e-59a4-4f0e-9d1c-7d4c3c1f2a10": "neo-cm",
                              "5e1d2c3b-4a59-4867-8a9b-0c1d2e3f4a5b": "neo-hx"})
        if at is not None:  # every entry so far at AT, each a second after the one before
            ids = (await session.execute(AuditEntry.__table__.select().order_by(AuditEntry.id))).all()
            for n, row in enumerate(ids):
                await session.execute(update(AuditEntry).where(AuditEntry.id == row.id)
                                      .values(created_at=at + timedelta(seconds=n)))
    return case


async def test_an_admin_reads_every_entry_newest_first_in_portuguese_and_a_reviewer_is_refused(panel):
    case = await _entries()
    await login(panel, "rev@example.com")
    refused = await panel.get("/admin/audit")
    assert refused.status_code == 403 and "administradores" in refused.text
    assert 'href="/admin/audit"' not in (await panel.get("/admin/")).text  # no link for a reviewer

    await login(panel, "admin@example.com")
    assert 'href="/admin/audit"' in (await panel.get("/admin/")).text  # in the admin's navigation
    page = await panel.get("/admin/audit")
    assert page.status_code == 200 and "<h1>Auditoria</h1>" in page.text
    html = page.text
    labels = ["Entrou no painel", "Aprovou o caso", "Removeu uma imagem de referência", "Editou um sistema do catálogo",
              "Criou ou redefiniu um usuário do painel", "Criou um token da API"]
    places = [html.index(f"<strong>{label}</strong>") for label in labels]
    assert places == sorted(places)  # newest first: the admin's own sign-in on top
    assert "linha de comando (raiox tokens create)" in html and "rev@example.com" in html  # who, as the panel says
    assert f'href="/admin/cases/{case.id}"' in html and "5800000000000000001" in html  # the case, by its protocol
    assert 'href="/admin/catalog/neo-cm"' in html  # the system acted on
    assert "Grand Morse → Grand Morse II" in html and "nome" in html  # a change: before → after
    assert "permissões" in html and "rx_abc1234" in html and "Implante Grand Morse." in html
    assert re.search(r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2}", html)  # when, as pt-BR reads it
    assert "joao-da-silva" not in html and "refs/ab/abab.png" not in html  # file names and storage keys stay out
    assert "token.create" not in html.replace('value="token.create"', "")  # labels, not the action ids
    # an approval: its system before the others, the implants it names counted (their ids mean nothing here)
    approval = html[html.index("<strong>Aprovou o caso</strong>"):]
    approval = approval[:approval.index("</tr>")]
    assert approval.index("<dt>sistema</dt>") < approval.index("<dt>outros sistemas</dt>")
    assert "<dt>implantes com sistema informado</dt><dd>2</dd>" in approval and "0b6c3f8e" not in approval
    # the words the code records (a user's outcome and role) read in Portuguese too
    assert "<dd>criado</dd>" in html and "<dd>administrador</dd>" in html
    assert "<dd>created</dd>" not in html and "<dd>admin</dd>" not in html


async def test_the_filters_narrow_by_action_actor_target_and_the_operators_days(panel):
    case = await _entries(at=datetime(2026, 12, 3, 1, 30, tzinfo=UTC))  # 2 December, evening, in São Paulo
    await login(panel, "admin@example.com")

    async def shown(**params) -> str:
        return (await panel.get("/admin/audit", params=params)).text

    only_tokens = await shown(action="token.create")
    assert "Criou um token da API" in only_tokens and "Aprovou o caso</strong>" not in only_tokens
    assert '<option value="token.create" selected>Criou um token da API</option>' in only_tokens
    by_rev = await shown(actor="REV@")
    assert "Aprovou o caso</strong>" in by_rev and "Criou um token da API</strong>" not in by_rev
    by_protocol = await shown(target="58000000")
    assert f'href="/admin/cases/{case.id}"' in by_protocol
    assert "Editou um sistema do catálogo</strong>" not in by_protocol
    by_system = await shown(target="neo-cm")
    assert "Editou um sistema do catálogo" in by_system and "Criou um token da API</strong>" not in by_system
    assert "Criou ou redefiniu um usuário do painel</strong>" in await shown(target="ops@example.com")
    second = await shown(date_from="2026-12-02", date_to="2026-12-02")
    assert "Criou um token da API</strong>" in second and "Entrou no painel</strong>" not in second  # today's
    assert "Criou um token da API</strong>" not in await shown(date_from="2026-12-03", date_to="2026-12-03")
    reversed_range = await shown(date_from="2026-12-03", date_to="2026-12-01")
    assert "Criou um token da API</strong>" in reversed_range
    assert 'name="date_from" value="01/12/2026"' in reversed_range  # typed the wrong way round: the range meant
    assert "Nenhum registro de auditoria" in await shown(action="token.revoke")
    typed = await shown(date_from="2/12/2026", date_to="02/12/2026")  # typed as the operator reads days: dd/mm/aaaa
    assert "Criou um token da API</strong>" in typed and "Entrou no painel</strong>" not in typed
    assert 'name="date_to" value="02/12/2026"' in typed and 'placeholder="dd/mm/aaaa"' in typed
    assert "De <small class=\"muted\">(dd/mm/aaaa)</small>" in typed  # whatever format the browser would show
    for wrong in ("12/31/2026", "2026/12/03", "3.12.2026"):  # a month 31, another order: refused, never guessed
        bad = await panel.get("/admin/audit", params={"date_from": wrong})
        assert bad.status_code == 400 and "Use dd/mm/aaaa, entre 01/01/1900 e 31/12/9998" in bad.text


async def test_the_log_is_paged_fifty_at_a_time_keeping_the_filters(panel):
    from raiox.review.service import audit

    async with session_scope() as session:
        await add_user(session, "admin@example.com", PASSWORD, "admin")
        for n in range(120):
            await audit(session, "cli:raiox tokens create", "token.create", target=f"bot-{n:03d}", scopes=["all"])
    await login(panel, "admin@example.com")
    first = (await panel.get("/admin/audit", params={"action": "token.create"})).text
    assert first.count("<tr>") == 51 and "bot-119" in first and "bot-070" in first and "bot-069" not in first
    assert "120 registros" in first and "Página 1 de 3" in first
    assert 'href="?action=token.create&page=2"' in first
    last = (await panel.get("/admin/audit", params={"action": "token.create", "page": 3})).text
    assert last.count("<tr>") == 21 and "bot-000" in last and "bot-020" not in last
    assert 'href="?action=token.create&page=2"' in last


def test_details_never_show_what_names_a_file_or_a_secret():
    from types import SimpleNamespace

    from raiox.review.views_audit import detail_items

    entry = SimpleNamespace(details={"origin": "maria.png", "skipped": ["maria.png: duplicate"],
                                     "images": ["joana.png sha256:abc"], "password_hash": "$argon2id$x",
                                     "api_token": "rx_secret", "replaced_key": "refs/x", "added": 2,
                                     "password_reset": True})
    shown = dict(detail_items(entry))
    assert shown == {"ignoradas": "1", "imagens": "1", "adicionadas": "2", "senha redefinida": "sim"}


async def test_real_token_and_password_never_reach_the_audit_log(database_url, panel):
    """What `raiox tokens create` prints once and the password `raiox users add` takes are in no entry, page or
    listing."""
    runner = CliRunner()
    created = await _cli(runner, "tokens", "create", "ci-bot")
    token = created.rstrip("\n").splitlines()[-1]
    added = subprocess.run([sys.executable, "-m", "raiox", "users", "add", "admin@example.com", "--role", "admin",
                            "--password-stdin"], input=PASSWORD + "\n", text=True, capture_output=True,
                           env=os.environ | {"PYTHONPATH": "src"}, timeout=120)
    assert token.startswith("rx_") and added.returncode == 0, added.stderr
    await login(panel, "admin@example.com")
    page = (await panel.get("/admin/audit")).text
    listed = await _cli(runner, "audit", "list", "--json")
    assert "Criou um token da API</strong>" in page and "Criou ou redefiniu um usuário do painel</strong>" in page
    assert '"token.create"' in listed and '"user.add"' in listed
    for secret in (token, token[12:], PASSWORD):
        assert secret not in page and secret not in listed


async def _cli(runner: CliRunner, *args: str) -> str:
    """`raiox ARGS` in this process (its own event loop, in a thread); its output."""
    from raiox.cli import app

    result = await asyncio.to_thread(runner.invoke, app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


async def test_cli_lists_entries_as_tab_separated_rows_or_json_lines(database_url, committed):
    from raiox.cli import app

    case = await _entries(at=datetime(2026, 12, 3, 12, 0, tzinfo=UTC))
    async with session_scope() as session:
        from raiox.review.service import audit

        from sqlalchemy import update

        from raiox.models import AuditEntry

        await audit(session, "cli:raiox tokens create", "token.create", target="x" * 250, scopes=["all"],
                    note="line one\nline\ttwo")
        await session.execute(update(AuditEntry).where(AuditEntry.target == "x" * 250)
                              .values(created_at=datetime(2026, 12, 3, 13, 0, tzinfo=UTC)))
    runner = CliRunner()

    async def run(*args: str) -> str:
        return await _cli(runner, "audit", "list", *args)

    rows = [line.split("\t") for line in (await run()).splitlines()]
    assert len(rows) == 6 and all(len(row) == 6 for row in rows)  # one line each, however long or multi-line
    assert rows[0][2] == "token.create" and rows[0][4] == "x" * 250  # newest first, whole
    approve = next(row for row in rows if row[2] == "case.approve")
    assert approve[1] == "user:rev@example.com" and approve[3] == "5800000000000000001" and approve[4] == "neo-cm"
    assert json.loads(approve[5])["system"] == "Grand Morse (Neodent)"
    assert approve[0].startswith("2026-12-03T12:00:04")
    records = [json.loads(line) for line in (await run("--json", "--action", "case.approve")).splitlines()]
    assert [(r["action"], r["case_id"], r["protocol"]) for r in records] == [
        ("case.approve", str(case.id), "5800000000000000001")]
    assert [json.loads(line)["target"] for line in (await run("--json", "--actor", "users add")).splitlines()] == [
        "ops@example.com"]
    assert len((await run("--target", "5800000000")).splitlines()) == 1
    assert len((await run("--limit", "2")).splitlines()) == 2
    assert len((await run("--since", "2026-12-03")).splitlines()) == 6
    assert len((await run("--since", "2026-12-04")).splitlines()) == 0
    bad = await asyncio.to_thread(runner.invoke, app, ["audit", "list", "--since", "yesterday"])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output


async def test_a_catalog_import_of_thousands_of_images_is_one_small_entry_on_the_page_and_in_the_rows(
        database_url, committed, panel):
    """The demo's import stores ~2,500 images (~150 KB of names): its one entry, written and brought up to date batch
    by batch by the run (`catalog.runner._Audited`), keeps the first 50 names, their count and how many it left out,
    a few KB. The page shows the count; the rows "50 of 2496 items"; `--full` and `--json` what the entry holds."""
    from sqlalchemy import text

    from raiox.catalog.runner import _Audited
    from raiox.catalog.service import ImportReport
    from raiox.kit.audit import LIST_MAX

    stored = [f"demo/{i:04d}.png sha256:{i:012x}" for i in range(2496)]
    report = ImportReport()
    audited = _Audited(report, "cli:raiox catalog demo", "catalog.import", "model-x")
    for first in range(0, len(stored), 1000):  # three batches: the entry written, then brought up to date twice
        report.stored += stored[first:first + 1000]
        report.added = len(report.stored)
        async with session_scope() as session:
            await audited.record(session)
    async with session_scope() as session:
        await add_user(session, "admin@example.com", PASSWORD, role="admin")
    await audited.finish(None)
    async with session_scope() as session:
        size, details = (await session.execute(text(
            "SELECT octet_length(details::text), details FROM audit_log WHERE action = 'catalog.import'"))).one()
    assert size < 6_000, size  # was ~150 KB: every name
    assert details["images"] == stored[:LIST_MAX] and LIST_MAX == 50
    assert (details["images_count"], details["images_left_out"]) == (2496, 2446)
    assert (details["added"], details["batches"], details["complete"]) == (2496, 3, True)
    await login(panel, "admin@example.com")
    page = (await panel.get("/admin/audit", params={"action": "catalog.import"})).text
    assert "2496" in page and stored[5] not in page and "2446" not in page and len(page) < 30_000
    assert page.count("<dt>imagens</dt>") == 1 and "<dt>imagens</dt><dd>2496</dd>" in page  # not the kept 50
    runner = CliRunner()
    row = (await _cli(runner, "audit", "list", "--action", "catalog.import")).rstrip("\n").split("\t")
    shown = json.loads(row[5])
    assert shown["images"] == "50 of 2496 items" and shown["images_left_out"] == 2446
    full = (await _cli(runner, "audit", "list", "--action", "catalog.import", "--full")).rstrip("\n").split("\t")
    assert json.loads(full[5])["images"] == stored[:50] and json.loads(full[5])["images_count"] == 2496
    record = json.loads(await _cli(runner, "audit", "list", "--action", "catalog.import", "--json"))
    assert record["details"] == details


async def test_every_long_list_detail_is_capped_with_its_count_and_what_was_left_out(session):
    from raiox.kit.audit import audit, bring_up_to_date
    from raiox.models import AuditEntry

    entry_id = await audit(session, "cli:test", "catalog.import", ids=list(range(51)), few=[1, 2], n=3)
    entry = await session.get(AuditEntry, entry_id)
    assert entry.details == {"ids": list(range(50)), "ids_count": 51, "ids_left_out": 1, "few": [1, 2], "n": 3}
    await bring_up_to_date(session, entry_id, ids=list(range(50)), skipped=["a"] * 120)
    await session.refresh(entry)
    assert entry.details == {"ids": list(range(50)), "skipped": ["a"] * 50, "skipped_count": 120,
                             "skipped_left_out": 70}


async def test_every_long_text_detail_is_capped_with_its_length_inside_mappings_and_lists_too(session):
    """One very long text (an error message, a pasted note of 1 MB) was stored whole: the cap was on list lengths
    only. A text detail keeps its first STRING_MAX characters and its length as `<key>_chars`; one inside a mapping the
    same way, one in a list ends with "…"; the panel names the length. A note (only in its `case.note` entry) or a
    message the panel and the API accept is never cut."""
    from sqlalchemy import text

    from raiox.kit.audit import CUT, STRING_MAX, audit, bring_up_to_date
    from raiox.models import AuditEntry
    from raiox.review.schemas import MESSAGE_MAX
    from raiox.review.views_audit import detail_items

    assert STRING_MAX >= MESSAGE_MAX

    pasted, short = "é" * 1_000_000, "x" * STRING_MAX
    entry_id = await audit(session, "cli:test", "case.approve", message=pasted, note=short, n=3,
                           changed={"notes": ["before", "a" * 2 * STRING_MAX]},
                           meta={"error": "e" * (STRING_MAX + 1000), "ok": "fine"},
                           skipped=[{"origin": "o.png", "reason": "r" * (STRING_MAX + 500)}, "s" * (STRING_MAX + 1)])
    entry = await session.get(AuditEntry, entry_id)
    assert entry.details == {
        "message": "é" * STRING_MAX, "message_chars": 1_000_000, "note": short, "n": 3,  # at the limit: kept whole
        "changed": {"notes": ["before", "a" * STRING_MAX + CUT]},
        "meta": {"error": "e" * STRING_MAX, "error_chars": STRING_MAX + 1000, "ok": "fine"},
        "skipped": [{"origin": "o.png", "reason": "r" * STRING_MAX, "reason_chars": STRING_MAX + 500},
                    "s" * STRING_MAX + CUT]}
    size = (await session.execute(text("SELECT octet_length(details::text) FROM audit_log WHERE id = :id"),
                                  {"id": entry_id})).scalar_one()
    assert size < 12 * STRING_MAX, size  # seven texts of STRING_MAX characters at most (é two bytes); was ~2 MB
    assert ("mensagem (caracteres no total)", "1000000") in detail_items(entry)
    await bring_up_to_date(session, entry_id, message="m" * (STRING_MAX + 1), message_chars=7)
    await session.refresh(entry)
    assert entry.details == {"message": "m" * STRING_MAX, "message_chars": 7}  # the caller's length is kept
