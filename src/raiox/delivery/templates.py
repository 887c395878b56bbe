"""Jinja2 templates of the delivery (e-mail, report); pt-BR."""

from functools import lru_cache
from pathlib import Path

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, FileSystemLoader, select_autoescape

from raiox.kit.settings import get_settings
from raiox.review.i18n import term as _term

FOLDER = Path(__file__).parent / "templates"


def when(value, seconds: bool = False, time: bool = True) -> str:
    """A timestamp in RAIOX_ADMIN_TIMEZONE (Brazil by default), dd/mm/aaaa hh:mm."""
    if value is None:
        return "—"
    try:
        value = value.astimezone(ZoneInfo(get_settings().admin_timezone))
    except (ZoneInfoNotFoundError, ValueError):
        pass
    return value.strftime("%d/%m/%Y" + (" %H:%M" if time else "") + (":%S" if seconds and time else ""))


@lru_cache
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(FOLDER), autoescape=select_autoescape(["html"]), trim_blocks=True)
    env.filters["when"] = when
    env.filters["term"] = lambda value: _term(value, "pt_BR")  # the dentist reads pt-BR
    return env


def render(name: str, **context) -> str:
    return environment().get_template(name).render(**context)
