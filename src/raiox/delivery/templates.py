"""Jinja2 templates of the delivery (e-mail, report); pt-BR."""

from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

FOLDER = Path(__file__).parent / "templates"


@lru_cache
def environment() -> Environment:
    return Environment(loader=FileSystemLoader(FOLDER), autoescape=select_autoescape(["html"]), trim_blocks=True)


def render(name: str, **context) -> str:
    return environment().get_template(name).render(**context)
