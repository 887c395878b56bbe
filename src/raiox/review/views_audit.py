"""The audit log for administrators (Auditoria): every audited write, newest first, filtered by action, actor, what
was acted on and days, each entry with who, when, what (pt-BR) and the details it carries.

Entries carry no secret (a token's details keep its listed prefix, a user's never the password; checked by the
tests); what the panel keeps to the one page that names it stays out here too: the file names (origins) of
catalog references and storage keys (`HIDDEN`)."""

from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.kit.deps import DbSession
from raiox.kit.settings import get_settings
from raiox.models import AuditEntry, User
from raiox.review import i18n, repository
from raiox.review.deps import admin_user
from raiox.review.panel import MAX_PAGE, render, templates
from raiox.review.views_cases import day_range, shown_day

router = APIRouter()
PAGE = 50
# details never shown on this page: a reference's origin (its file's name, often the patient's: only the upload's own
# page names it) and storage keys; lists of images named by origin (what an import stored or skipped): counted
HIDDEN = frozenset({"origin", "storage_key", "replaced_key"})
COUNTED = frozenset({"skipped", "images", "implants"})  # an approval's implants: fixture id -> system, counted
FIRST = ("system", "others")  # read before the rest (the store keeps a JSON object's keys in its own order)
SECRET_WORDS = ("password", "secret", "token", "api_key")  # a detail so named is never shown, should one appear


def actions(lang: str | None = None) -> list[tuple[str, str]]:
    """Every audit action the panel names (`audit.<domain>.<verb>` in the catalog), with its label, by label."""
    found = {key.removeprefix("audit."): text for key, text in i18n.catalog(i18n.DEFAULT).items()
             if key.startswith("audit.") and "." in key.removeprefix("audit.")}
    return sorted(((a, i18n.gettext(f"audit.{a}", lang)) for a in found), key=lambda pair: pair[1].casefold())


def action_label(action: str) -> str:
    text = i18n.gettext(f"audit.{action}")
    return action if text == f"audit.{action}" else text


def _label(key: str) -> str:
    label = i18n.gettext(f"audit_detail.{key}")
    if label != f"audit_detail.{key}":
        return label
    for suffix, message_id in (("_left_out", "audit_detail.left_out"), ("_count", "audit_detail.list_count"),
                               ("_chars", "audit_detail.chars")):
        if key.endswith(suffix):  # a list or text `kit.audit.capped` cut: its length, how many items it left out
            return i18n.gettext(message_id, what=_label(key.removesuffix(suffix)))
    return key


def _value(value, changes: bool = False, key: str = "") -> str:
    """VALUE as the operator reads it; CHANGES: a mapping of field -> [before, after] (catalog.update's); a word the
    code records under KEY (a role, an outcome, why a sign-in was refused) by its `audit_value.<key>.<word>` label."""
    if isinstance(value, str) and key:
        label = i18n.gettext(f"audit_value.{key}.{value}")
        if label != f"audit_value.{key}.{value}":
            return label
    if isinstance(value, bool):
        return i18n.gettext("audit_detail.yes" if value else "audit_detail.no")
    if value is None or value == "" or value == [] or value == {}:
        return "—"
    if isinstance(value, dict):
        return "; ".join(f"{_label(key)}: {_change(item) if changes else _value(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_value(item) for item in value)
    return str(value)


def _change(value) -> str:
    if isinstance(value, list | tuple) and len(value) == 2:
        return f"{_value(value[0])} → {_value(value[1])}"
    return _value(value)


def detail_items(entry: AuditEntry) -> list[tuple[str, str]]:
    """The details an entry carries, as (pt-BR label, value), secrets and file names left out; the images an import
    stored or skipped and the implants an approval names, as counts; an approval's system first."""
    items = []
    details = sorted((entry.details or {}).items(), key=lambda item: FIRST.index(item[0]) if item[0] in FIRST else 9)
    for key, value in details:
        if any(word in key.lower() for word in SECRET_WORDS) and not isinstance(value, bool):  # "password_reset"
            continue
        if key in COUNTED and isinstance(value, list | dict):
            if f"{key}_count" in (entry.details or {}):  # a list `kit.audit.capped` cut: its recorded length shown
                continue
            key, value = f"{key}_count", len(value)
        elif key in HIDDEN or key.removesuffix("_left_out") in COUNTED:  # a counted list: nothing listed to leave out
            continue
        items.append((_label(key), _value(value, changes=key == "changed", key=key)))
    return items


def link(entry: AuditEntry) -> str | None:
    """The panel page of what the entry acted on: its case, or its catalog system."""
    if entry.case_id:
        return f"/cases/{entry.case_id}"
    if entry.action in repository.SYSTEM_ACTIONS and entry.target:
        return f"/catalog/{entry.target}"
    return None


templates.env.globals["audit_details"] = detail_items
templates.env.globals["audit_link"] = link
templates.env.globals["audit_action"] = action_label


@router.get("/audit")
async def audit_page(request: Request, action: str = "", actor: str = "", target: str = "", date_from: str = "",
                     date_to: str = "", page: int = Query(1, ge=1, le=MAX_PAGE), user: User = Depends(admin_user),
                     session: AsyncSession = DbSession) -> Response:
    first, last = day_range(date_from, date_to)
    date_from, date_to = shown_day(first), shown_day(last)
    rows, total = await repository.audit_log(
        session, action=action.strip() or None, actor=actor.strip() or None, target=target.strip() or None,
        date_from=first, date_to=last, zone=ZoneInfo(get_settings().admin_timezone), limit=PAGE,
        offset=(page - 1) * PAGE)
    f = {"action": action, "actor": actor, "target": target, "date_from": date_from, "date_to": date_to}
    keep = urlencode({name: value for name, value in f.items() if value})
    return render(request, "audit_log.html", {"rows": rows, "total": total, "page": page, "f": f, "keep": keep,
                                              "pages": max(1, -(-total // PAGE)), "actions": actions()})
