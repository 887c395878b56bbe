"""Every write is audited, provably: each state-changing route of the API and the admin panel (FastAPI's route table:
POST/PUT/PATCH/DELETE) and each `raiox` command that changes data is either listed here with the audit action it
writes and the test that makes a real request (or runs the command) and asserts that audit row, or listed as exempt
with the reason. A route or command added without either fails `test_the_tables_name_every_write`.

The tests named are read, not run, here (they run in their own files): a named test must send the route's method to
its path (or run the command's words) and name the audit action (quoted, or its pt-BR label as the panel's audit list
shows it), in its own body or in a helper of its module it calls. The refusals (anonymous, under-privileged) are
real requests below."""

import ast
import json
import uuid
from functools import cache
from pathlib import Path

import httpx
import pytest
from review_helpers import add_user

TESTS = Path(__file__).resolve().parents[1]
PT_BR = json.loads((TESTS.parent / "src/raiox/review/locale/pt_BR.json").read_text(encoding="utf-8"))
EN = json.loads((TESTS.parent / "src/raiox/review/locale/en.json").read_text(encoding="utf-8"))

# (method, path) -> (audit action, the test that asserts it after a real request)
AUDITED_ROUTES = {
    # review API (bearer token with the `review` scope, or a panel session with the X-CSRF-Token header)
    ("POST", "/cases/{case_id}/approve"): ("case.approve", "review/test_approve_api.py::"
                                           "test_approve_enqueues_delivery_in_same_transaction"),
    ("POST", "/cases/{case_id}/reject"): ("case.reject", "review/test_approve_api.py::"
                                          "test_reject_needs_message_and_enqueues"),
    ("POST", "/cases/{case_id}/mark-delivered"): ("delivery.mark_delivered", "review/test_approve_api.py::"
                                                  "test_a_failed_delivery_can_be_marked_delivered_another_way"),
    ("POST", "/cases/{case_id}/images/{image_id}/fixtures"): (
        "case.fixture_add", "review/test_mark_implant.py::test_a_marked_implant_is_searched_stored_and_ranks_the_case"),
    ("DELETE", "/cases/{case_id}/fixtures/{fixture_id}"): (
        "case.fixture_remove",
        "review/test_mark_implant.py::test_a_marked_implant_is_searched_stored_and_ranks_the_case"),
    ("POST", "/cases/{case_id}/reread"): (
        "case.reread",
        "review/test_reread.py::test_reread_embeds_every_implant_again_and_keeps_boxes_marks_and_removals"),
    ("POST", "/cases/{case_id}/revoke-report"): ("report.revoke", "review/test_approve_api.py::"
                                                 "test_report_links_are_revoked_and_results_sent_again_through_the_api"),
    ("POST", "/cases/{case_id}/redeliver"): ("delivery.redeliver", "review/test_approve_api.py::"
                                             "test_a_delivered_result_is_sent_again_through_the_api_and_audited"),
    ("POST", "/cases/{case_id}/contact"): ("case.contact", "review/test_approve_api.py::"
                                           "test_the_dentists_email_is_corrected_and_audited"),
    # cases API (bearer token with the `cases` scope)
    ("POST", "/cases/{case_id}/retry"): ("case.retry",
                                         "cases/test_cases_api.py::test_retry_requeues_failed_cases_only"),
    # admin panel: case actions (any signed-in user, CSRF token)
    ("POST", "/admin/cases/{case_id}/approve"): ("case.approve", "review/test_panel.py::test_csrf_required_on_actions"),
    ("POST", "/admin/cases/{case_id}/reject"): ("case.reject", "review/test_panel.py::"
                                                "test_a_rejection_from_the_case_page_is_in_its_audit_list"),
    ("POST", "/admin/cases/{case_id}/note"): ("case.note", "review/test_panel.py::"
                                              "test_note_via_htmx_and_api_with_panel_session"),
    ("POST", "/admin/cases/{case_id}/resend"): ("delivery.resend", "review/test_panel.py::"
                                                "test_retry_failed_case_and_resend_failed_delivery"),
    ("POST", "/admin/cases/{case_id}/retry"): ("case.retry", "review/test_panel.py::"
                                               "test_retry_failed_case_and_resend_failed_delivery"),
    ("POST", "/admin/cases/{case_id}/contact"): ("case.contact", "review/test_panel.py::"
                                                 "test_the_operator_corrects_a_mistyped_email_in_portuguese"),
    ("POST", "/admin/cases/{case_id}/revoke-report"): (
        "report.revoke", "review/test_panel.py::test_a_delivered_case_offers_a_new_link_and_revoking_the_old_ones"),
    ("POST", "/admin/cases/{case_id}/redeliver"): (
        "delivery.redeliver",
        "review/test_panel.py::test_a_delivered_case_offers_a_new_link_and_revoking_the_old_ones"),
    ("POST", "/admin/cases/{case_id}/mark-delivered"): (
        "delivery.mark_delivered", "review/test_panel.py::test_a_failed_delivery_marked_delivered_from_the_case_page"),
    ("POST", "/admin/cases/{case_id}/images/{image_id}/fixtures"): (
        "case.fixture_add", "review/test_panel.py::test_the_case_page_draws_the_implants_and_marks_or_removes_one"),
    ("POST", "/admin/cases/{case_id}/fixtures/{fixture_id}/delete"): (
        "case.fixture_remove", "review/test_panel.py::test_the_case_page_draws_the_implants_and_marks_or_removes_one"),
    ("POST", "/admin/cases/{case_id}/reread"): (
        "case.reread", "review/test_panel.py::test_a_case_read_by_an_earlier_model_offers_to_read_its_implants_again"),
    # admin panel: catalog (admins only, CSRF token)
    ("POST", "/admin/catalog/new"): ("catalog.create", "review/test_panel.py::"
                                     "test_admin_creates_system_and_uploads_reference"),
    ("POST", "/admin/catalog/{system_id}"): ("catalog.update", "review/test_panel.py::"
                                             "test_admin_creates_system_and_uploads_reference"),
    ("POST", "/admin/catalog/{system_id}/images"): ("catalog.upload", "review/test_panel.py::"
                                                    "test_admin_creates_system_and_uploads_reference"),
    ("POST", "/admin/catalog/{system_id}/references/{reference_id}/delete"): (
        "catalog.reference_remove", "review/test_panel.py::test_admin_creates_system_and_uploads_reference"),
    # admin panel: sessions (a refused sign-in writes auth.login_failed and a lock it sets auth.lockout instead:
    # FAILED_LOGIN_ACTIONS)
    ("POST", "/admin/login"): ("auth.login", "review/test_panel_auth.py::test_logout_ends_the_session_server_side"),
    ("POST", "/admin/logout"): ("auth.logout", "review/test_panel_auth.py::test_logout_ends_the_session_server_side"),
}

# what POST /admin/login writes when it refuses (besides auth.login above), and the test that asserts those rows
FAILED_LOGIN_ACTIONS = {
    "auth.login_failed": "review/test_panel_auth.py::"
                         "test_failed_logins_and_lock_outs_are_audited_and_read_in_portuguese_on_the_audit_page",
    "auth.lockout": "review/test_panel_auth.py::"
                    "test_the_address_throttle_answers_429_and_is_audited_once_when_it_engages",
}

EXEMPT_ROUTES = {
    # The intake itself: the case row, its images and its history (case_events, actor "jotform:webhook") are the
    # record of what Jotform sent; nobody of ours acts, and it is authenticated by the webhook secret, not a person.
    ("POST", "/webhooks/jotform"),
    # Stores nothing (the films are analysed in memory and answered); only the token's last use is noted.
    ("POST", "/identify"),
}

# `raiox` command -> (audit action, the test that runs it and asserts the audit row)
AUDITED_COMMANDS = {
    "users add": ("user.add", "review/test_panel.py::test_users_add_cli"),
    "users disable": ("user.disable", "review/test_panel.py::"
                                      "test_users_disable_cli_ends_the_sessions_at_once_and_list_shows_it"),
    "tokens create": ("token.create", "api/test_api_tokens.py::test_token_lifecycle"),
    "tokens revoke": ("token.revoke", "api/test_api_tokens.py::test_token_lifecycle"),
    "catalog import": ("catalog.import", "catalog/test_catalog_import.py::"
                                         "test_folder_import_reports_skips_and_is_idempotent"),
    "catalog demo": ("catalog.import", "catalog/test_catalog_demo.py::"
                                       "test_demo_loads_once_exports_valid_specs_and_identifies_its_references"),
    "catalog reindex": ("catalog.reindex", "catalog/test_catalog_import.py::"
                                           "test_imported_references_are_stored_without_the_files_metadata"),
    "catalog remove-reference": ("catalog.reference_remove", "catalog/test_catalog_import.py::"
                                                             "test_references_are_listed_and_removed_from_the_cli"),
    "catalog scrub-references": ("catalog.reference_scrub", "catalog/test_scrub_references.py::"
                                                            "test_references_with_exif_gps_and_a_dicom_patient_are_scrubbed_once"),
    "cases purge": ("case.purge", "review/test_retention.py::"
                                  "test_the_daily_job_purges_what_expired_and_the_cli_purges_on_request"),
    "audit anonymise-addresses": ("audit.anonymise_addresses", "review/test_address_retention.py::"
                                                               "test_the_cli_anonymises_on_request"),
    "cases reread": ("case.reread", "review/test_reread.py::"
                                    "test_cli_reads_again_the_cases_awaiting_review_that_an_earlier_model_read"),
}

EXEMPT_COMMANDS = {
    # read only: they print what is stored
    "catalog references", "catalog stats", "catalog status", "identify", "tokens list", "users list", "audit list",
    # servers: what they change goes through the routes and jobs above (the routes' audit), not the command
    "serve", "worker", "admin",
    # the schema (Alembic migrations, recorded in alembic_version), no data of anyone
    "db upgrade",
    # model training and evaluation: files on disk (datasets, checkpoints, ONNX exports, reports), never the database
    "vision compare-hits", "vision ensemble-connection", "vision ensemble-embedders", "vision ensemble-member",
    "vision eval", "vision eval-locator", "vision export-onnx", "vision render-data", "vision render-located",
    "vision train", "vision train-connection", "vision train-ends", "vision train-features", "vision train-locator",
}

WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def _routes(routes, prefix: str = ""):
    """(method, path) of every route that changes state, mounted sub-apps and included routers walked."""
    from fastapi.routing import APIRoute
    from starlette.routing import Mount

    for route in routes:
        if isinstance(route, APIRoute):
            yield from ((method, prefix + route.path) for method in route.methods & WRITES)
        elif isinstance(route, Mount):
            yield from _routes(getattr(route.app, "routes", None) or [], prefix + route.path)
        elif hasattr(route, "original_router"):  # FastAPI's included router (not flattened into the table)
            yield from _routes(route.original_router.routes, prefix + route.include_context.prefix)


def write_routes() -> set[tuple[str, str]]:
    from raiox.app import create_app
    from raiox.review.panel import create_admin_app

    return set(_routes(create_app().routes)) | set(_routes(create_admin_app().routes))


def commands() -> set[str]:
    import typer

    from raiox.cli import app

    def walk(command, words=()):
        if hasattr(command, "commands"):  # a group
            for name, sub in command.commands.items():
                yield from walk(sub, (*words, name))
        else:
            yield " ".join(words)

    return set(walk(typer.main.get_command(app)))


def test_the_tables_name_every_write():
    routes = write_routes()
    assert len(routes) > 20  # the walk found the routers and the mounted panel
    unlisted = routes - set(AUDITED_ROUTES) - EXEMPT_ROUTES
    assert not unlisted, f"state-changing routes neither audited (AUDITED_ROUTES) nor exempt: {sorted(unlisted)}"
    assert not (set(AUDITED_ROUTES) | EXEMPT_ROUTES) - routes, "routes listed here that the apps no longer have"
    assert not set(AUDITED_ROUTES) & EXEMPT_ROUTES
    found = commands()
    unlisted = found - set(AUDITED_COMMANDS) - EXEMPT_COMMANDS
    assert not unlisted, f"commands neither audited (AUDITED_COMMANDS) nor exempt: {sorted(unlisted)}"
    assert not (set(AUDITED_COMMANDS) | EXEMPT_COMMANDS) - found, "commands listed here that `raiox` no longer has"


@cache
def _module(path: str) -> tuple[str, dict[str, ast.AST]]:
    """The module's source and its top-level functions and constants by name."""
    source = (TESTS / path).read_text(encoding="utf-8")
    named = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            named[node.name] = node
        elif isinstance(node, ast.Assign):
            named.update((target.id, node) for target in node.targets if isinstance(target, ast.Name))
    return source, named


def _test_source(reference: str) -> str:
    """The named test's source and that of what of its module it names (helpers it calls, constants)."""
    path, _, name = reference.partition("::")
    source, named = _module(path)
    assert name in named, f"{reference}: no such test"
    used = {node.id for node in ast.walk(named[name]) if isinstance(node, ast.Name)} & set(named) - {name}
    return "\n".join(ast.get_source_segment(source, named[n]) for n in [name, *sorted(used)])


def _names_action(source: str, action: str) -> bool:
    label = PT_BR.get(f"audit.{action}")
    return f'"{action}"' in source or f"'{action}'" in source or (label is not None and label in source)


@pytest.mark.parametrize(("method", "path"), sorted(AUDITED_ROUTES))
def test_each_audited_route_has_a_test_that_asserts_its_audit_row(method, path):
    action, reference = AUDITED_ROUTES[(method, path)]
    source = _test_source(reference)
    head, tail = path.split("{", 1)[0], path.rsplit("}", 1)[-1] if "}" in path else ""
    assert f".{method.lower()}(" in source, f"{reference} sends no {method}"
    assert head in source and tail in source, f"{reference} does not call {path}"
    assert _names_action(source, action), f"{reference} does not assert the audit action {action!r}"


@pytest.mark.parametrize("action", sorted(FAILED_LOGIN_ACTIONS))
def test_refused_sign_ins_have_a_test_that_asserts_their_audit_rows(action):
    source = _test_source(FAILED_LOGIN_ACTIONS[action])
    assert ".post(" in source and "/admin/login" in source
    assert _names_action(source, action)


@pytest.mark.parametrize("command", sorted(AUDITED_COMMANDS))
def test_each_audited_command_has_a_test_that_asserts_its_audit_row(command):
    action, reference = AUDITED_COMMANDS[command]
    source = _test_source(reference)
    assert all(f'"{word}"' in source for word in command.split()), f"{reference} does not run `raiox {command}`"
    assert _names_action(source, action), f"{reference} does not assert the audit action {action!r}"


def test_every_audit_action_reads_in_portuguese_in_the_audit_list():
    """The case page's audit list names each action by its `audit.<action>` message (en has the same ids)."""
    actions = {a for a, _ in AUDITED_ROUTES.values()} | {a for a, _ in AUDITED_COMMANDS.values()}
    actions |= {"delivery.enqueue", "case.purge"}  # written by the approval and the retention job
    actions |= {"audit.anonymise_addresses"}  # written by the retention job (and its command, AUDITED_COMMANDS)
    actions |= set(FAILED_LOGIN_ACTIONS)
    missing = sorted(a for a in actions if f"audit.{a}" not in PT_BR or f"audit.{a}" not in EN)
    assert not missing


async def test_the_audit_list_shows_each_case_action_in_portuguese_with_who_did_it():
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from raiox.review.panel import templates

    entries = [SimpleNamespace(action=a, actor=actor, created_at=datetime.now(UTC), details={}) for a, actor in [
        ("case.retry", "token:ops"), ("case.reject", "user:rev@example.com"), ("case.purge", "cli:raiox cases purge"),
        ("case.reread", "cli:raiox cases reread"), ("report.revoke", "system:retention")]]
    html = templates.env.get_template("_audit.html").render(audit=entries, t=_t, actor=_actor)
    for line in ("Reprocessamento solicitado", "API (ops)", "Rejeitou o caso", "rev@example.com",
                 "Dados do caso removidos (retenção)", "linha de comando (raiox cases purge)",
                 "Leu os implantes de novo", "Revogou os links do relatório", "remoção automática (retenção de dados)"):
        assert line in html
    assert "case.retry" not in html and "cli:" not in html


def _t(message_id: str, **values) -> str:
    from raiox.review.i18n import gettext

    return gettext(message_id, "pt_BR", **values)


def _actor(actor: str) -> str:
    from raiox.review.reasons import actor_text

    return actor_text(actor, "pt_BR")


# ---- refusals: nobody, or somebody without the right, is turned away before anything is read or written ----

API_ROUTES = sorted(r for r in AUDITED_ROUTES if not r[1].startswith("/admin/"))
PANEL_ROUTES = sorted(r for r in AUDITED_ROUTES if r[1].startswith("/admin/") and r[1] not in ("/admin/login",
                                                                                                  "/admin/logout"))
SCOPE = {"/cases/{case_id}/retry": "cases"}  # the rest: `review`


def _url(path: str) -> str:
    """PATH with made-up ids: a refusal must come before the case (or system) is looked up."""
    return path.replace("{system_id}", "neo-cm").format_map({k: uuid.uuid4() for k in (
        "case_id", "image_id", "fixture_id", "reference_id")})


async def _audit_count(session) -> int:
    from sqlalchemy import func, select

    from raiox.models import AuditEntry

    return (await session.execute(select(func.count()).select_from(AuditEntry))).scalar_one()


@pytest.mark.parametrize(("method", "path"), API_ROUTES)
async def test_an_api_write_is_refused_without_a_token_or_with_one_of_another_scope(client, session, method, path):
    from raiox.kit.tokens import SCOPES, create_token

    url, needed = _url(path), SCOPE.get(path, "review")
    others = [s for s in SCOPES if s != needed]  # every right but the one needed
    other = {"Authorization": f"Bearer {await create_token(session, 'other', others)}"}
    nobody = await client.request(method, url, json={})
    assert nobody.status_code == 401, nobody.text
    refused = await client.request(method, url, json={}, headers=other)
    assert refused.status_code == 403 and f"needs scope {needed!r}" in refused.json()["detail"]
    assert await _audit_count(session) == 0


@pytest.fixture
async def panel(committed):
    from raiox.app import create_app

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://testserver") as http:
        yield http


async def _signed_in(http, email: str) -> str:
    """Sign EMAIL in; the session's CSRF token."""
    import re

    page = await http.get("/admin/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    done = await http.post("/admin/login", data={"email": email, "password": "correct horse battery",
                                                 "csrf_token": token})
    assert done.status_code == 303
    return re.search(r'name="csrf_token" value="([^"]+)"', (await http.get("/admin/")).text).group(1)


async def test_panel_writes_need_a_session_and_its_csrf_token_and_the_catalog_an_admin(panel):
    from sqlalchemy import func, select

    from raiox.kit.db import session_scope
    from raiox.models import AuditEntry, ImplantSystem

    async with session_scope() as session:
        await add_user(session, "rev@example.com", "correct horse battery", "reviewer")
        session.add(ImplantSystem(id="neo-cm", manufacturer="Neodent", name="Grand Morse", attributes={}))
    for method, path in PANEL_ROUTES:  # nobody signed in: the login page, the body never read
        anonymous = await panel.request(method, _url(path), data={"system_id": "neo-cm"})
        assert anonymous.status_code == 303 and "/admin/login" in anonymous.headers["location"], path
    token = await _signed_in(panel, "rev@example.com")
    for method, path in PANEL_ROUTES:
        forged = await panel.request(method, _url(path), data={"system_id": "neo-cm", "message": "x"})
        assert forged.status_code == 403, path  # no CSRF token: another site's form
        if path.startswith("/admin/catalog/"):  # a reviewer is no admin
            reviewer = await panel.request(method, _url(path), data={
                "csrf_token": token, "manufacturer": "Neodent", "name": "Outro"})
            assert reviewer.status_code == 403 and "administradores" in reviewer.text, path
    audit_page = await panel.get("/admin/audit")  # reading the audit log (admins only) writes nothing either
    assert audit_page.status_code == 403 and "administradores" in audit_page.text
    async with session_scope() as session:
        actions = (await session.execute(select(AuditEntry.action))).scalars().all()
        assert actions == ["auth.login"]  # only the sign-in: nothing else was done
        assert (await session.execute(select(func.count()).select_from(ImplantSystem))).scalar_one() == 1
