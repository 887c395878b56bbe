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
    encontrados"), and is written with the reader's thousands separator (1.234)."""
    lang = lang or get_settings().admin_locale
    text = _find(message_id, lang) or message_id
    count = values.get("n")
    if type(count) is int and (one := _find(f"{message_id}.one", lang)):
        text = one if count == 1 else text
        values["n"] = f"{count:,}".replace(",", _find("number.thousands_separator", lang) or ",")
    return text.format(**values) if values else text


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
