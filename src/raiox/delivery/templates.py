"""Jinja2 templates of the delivery (e-mail, report); pt-BR."""

from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from raiox.kit.settings import get_settings
from raiox.review.i18n import term as _term

FOLDER = Path(__file__).parent / "templates"
# what an approved result is, said wherever the dentist reads one (the e-mail's parts, the Jotform submission's
# `disclaimer` field): pt-BR, one sentence, kept here only
DISCLAIMER = ("Este resultado é um apoio à decisão clínica: a identificação foi feita por computador e confirmada por "
              "um revisor da equipe Raiox AI, e não substitui a avaliação do(a) profissional nem a documentação "
              "clínica do paciente.")


def _local(value: datetime, zone: str | None) -> datetime:
    """VALUE in ZONE (default RAIOX_ADMIN_TIMEZONE): every zone setting is checked at start-up (kit.settings)."""
    return value.astimezone(ZoneInfo(zone or get_settings().admin_timezone))


def when(value, seconds: bool = False, time: bool = True, zone: str | None = None) -> str:
    """A timestamp in ZONE (default RAIOX_ADMIN_TIMEZONE, the panel's; Brazil by default), dd/mm/aaaa hh:mm."""
    if value is None:
        return "—"
    value = _local(value, zone)
    return value.strftime("%d/%m/%Y" + (" %H:%M" if time else "") + (":%S" if seconds and time else ""))


def client_when(value, seconds: bool = False, time: bool = True) -> str:
    """`when` for what the dentist reads (e-mail, report): in RAIOX_CLIENT_TIMEZONE, not the operator's zone."""
    return when(value, seconds, time, zone=get_settings().client_timezone)


def last_full_day(value: datetime) -> str:
    """dd/mm/aaaa: the last day (RAIOX_CLIENT_TIMEZONE) that a link dying at VALUE works from morning to night. A
    link sent at 14:30 dies at 14:30 on its last date, so that date is not named ("válido até 11/05, inclusive" for
    one that stops on the 12th at 14:30): the dentist who relies on the date finds it working all that day."""
    return (_local(value, get_settings().client_timezone).date() - timedelta(days=1)).strftime("%d/%m/%Y")


def paragraphs(value: str | None) -> Markup:
    """Text the reviewer typed, escaped, its line breaks kept (`<br>`): HTML folds them into spaces otherwise."""
    return Markup("<br>\n").join(escape(line) for line in (value or "").splitlines())


def _number(value) -> str:
    """A catalog measure in pt-BR: 4 -> "4,0", 3.75 -> "3,75"; text as typed, its decimal point a comma; "" for what
    is no measure (a flag, an object)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return ""
    if not isinstance(value, str):
        value = f"{value:.1f}" if float(value).is_integer() else f"{value:g}"
    return _term(value.strip(), "pt_BR")


def _measures(value) -> str:
    shown = [n for n in map(_number, value if isinstance(value, list) else [value]) if n]
    return " / ".join(shown) + " mm" if shown else ""  # " / ": a comma is the decimal separator


def facts(system, diameters: bool = True) -> list[str]:
    """What the dentist needs to order parts, from the catalog: connection, platform and (DIAMETERS) the line's
    diameters, pt-BR: ["conexão cone Morse", "plataforma 4,1 mm", "diâmetros disponíveis 3,5 / 4,0 mm"]. The one-page
    report leaves the diameters out (the line's options, not this implant's: nine systems' lists would take a second
    sheet); the e-mail has room for them."""
    attributes = getattr(system, "attributes", None)
    attributes = attributes if isinstance(attributes, dict) else {}
    connection = getattr(system, "connection", None)
    shown = [("conexão", _term(connection, "pt_BR") if connection else ""),
             ("plataforma", _measures(attributes.get("platform_mm"))),
             ("diâmetros disponíveis", _measures(attributes.get("diameters")) if diameters else "")]
    return [f"{label} {value}" for label, value in shown if value]


@lru_cache
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(FOLDER), autoescape=select_autoescape(["html"]), trim_blocks=True)
    env.filters["when"] = client_when  # the dentist's dates: RAIOX_CLIENT_TIMEZONE
    env.filters["last_full_day"] = last_full_day
    env.filters["term"] = lambda value: _term(value, "pt_BR")  # the dentist reads pt-BR
    env.filters["paragraphs"] = paragraphs
    env.filters["facts"] = facts
    env.globals["disclaimer"] = DISCLAIMER
    return env


def render(name: str, **context) -> str:
    return environment().get_template(name).render(**context)
