"""Message catalogs for the panel: `locale/<lang>.json`, message id -> text (pt_BR today; add en.json
with the same ids to offer English). Unknown ids fall back to pt_BR, then to the id itself."""

import json
import re
from functools import lru_cache
from pathlib import Path

from raiox.kit.settings import get_settings

FOLDER = Path(__file__).parent / "locale"
DEFAULT = "pt_BR"


@lru_cache
def catalog(lang: str) -> dict[str, str]:
    path = FOLDER / f"{lang}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _find(message_id: str, lang: str) -> str | None:
    return catalog(lang).get(message_id) or catalog(DEFAULT).get(message_id)


def gettext(message_id: str, lang: str | None = None, **values) -> str:
    """A count `n` of a message with a singular (`<id>.one`) picks it for 1 ("1 caso encontrado", "3 casos
    encontrados"). A message with several counts says each one in its own words: an int value K with a piece
    `<id>.K` (and its `.one`) is that piece's text for it ("{added}, {skipped}" -> "1 imagem adicionada, 3
    ignoradas"). Every count is written with the reader's thousands separator (1.234)."""
    lang = lang or get_settings().admin_locale
    text = _find(message_id, lang) or message_id
    for key, value in values.items():
        if key != "n" and type(value) is int and _find(f"{message_id}.{key}", lang):
            values[key] = gettext(f"{message_id}.{key}", lang, n=value)
    count = values.get("n")
    if type(count) is int and (one := _find(f"{message_id}.one", lang)):
        text = one if count == 1 else text
    values = {key: number(value, lang) if type(value) is int else value for key, value in values.items()}
    return text.format(**values) if values else text


def number(value: int, lang: str | None = None) -> str:
    """VALUE with the reader's thousands separator (1.500 in pt-BR, 1,500 in English)."""
    return f"{value:,}".replace(",", _find("number.thousands_separator", lang or get_settings().admin_locale) or ",")


def decimal(text: str) -> str:
    """A number written with a decimal point, in the reader's language (11.5 -> 11,5 in pt-BR)."""
    return text.replace(".", gettext("number.decimal_separator"))


def translator(lang: str | None = None):
    return lambda message_id, **values: gettext(message_id, lang, **values)


def term(value: str | None, lang: str | None = None) -> str:
    """A catalog term typed in English (a connection, a body shape: "external hex", "tapered") in the reader's
    language where the catalog knows it (``term.<value>``); anything else as typed ("CM 16°", "HE" stay)."""
    if not value:
        return ""
    lang = lang or get_settings().admin_locale
    key = f"term.{value.strip().lower()}"
    known = catalog(lang).get(key) or catalog(DEFAULT).get(key)
    if known:
        return known
    separator = gettext("number.decimal_separator", lang)  # "CM 11.5°" -> "CM 11,5°" for a pt-BR reader
    return re.sub(r"(?<=\d)\.(?=\d)", separator, value) if separator != "." else value
