"""The panel's message catalogs: every id used in templates and code exists; English has the same ids."""

import json
import re
from pathlib import Path

from raiox.review import i18n

REVIEW = Path(i18n.__file__).parent
# dynamic prefixes ("status.") excluded
LITERAL = re.compile(r"""\b(?:t|gettext)\(\s*["']([a-z_]+(?:\.[a-z_]*[a-z])+)["']""")


def _used_ids() -> set[str]:
    files = list((REVIEW / "templates").glob("*.html")) + list(REVIEW.glob("*.py"))
    return {m for f in files for m in LITERAL.findall(f.read_text(encoding="utf-8"))}


def test_every_message_id_is_in_the_pt_br_catalog():
    catalog = json.loads((REVIEW / "locale" / "pt_BR.json").read_text(encoding="utf-8"))
    used = _used_ids()
    assert len(used) > 100
    assert sorted(used - set(catalog)) == []


def test_english_catalog_has_the_same_ids_and_placeholders():
    pt = json.loads((REVIEW / "locale" / "pt_BR.json").read_text(encoding="utf-8"))
    en = json.loads((REVIEW / "locale" / "en.json").read_text(encoding="utf-8"))
    assert set(pt) == set(en)
    for key in pt:
        assert set(re.findall(r"{(\w+)}", pt[key])) == set(re.findall(r"{(\w+)}", en[key])), key


def test_gettext_language_and_fallbacks():
    assert i18n.gettext("nav.queue", "pt_BR") == "Fila"
    assert i18n.gettext("nav.queue", "en") == "Queue"
    assert i18n.gettext("queue.total", "en", n=3) == "3 cases found, oldest first"
    assert i18n.gettext("nav.queue", "xx") == "Fila"  # unknown language: pt_BR
    assert i18n.gettext("no.such.id", "en") == "no.such.id"


def test_counts_read_singular_or_plural_with_the_readers_thousands_separator():
    """ "1 caso encontrado", "2 casos encontrados", "1.234 registros": never "caso(s) encontrado(s)"."""
    assert i18n.gettext("queue.total", "pt_BR", n=1) == "1 caso encontrado"
    assert i18n.gettext("queue.total", "pt_BR", n=0) == "0 casos encontrados, mais antigos primeiro"
    assert i18n.gettext("queue.total", "pt_BR", n=2) == "2 casos encontrados, mais antigos primeiro"
    assert i18n.gettext("auditlog.total", "pt_BR", n=1234) == "1.234 registros"
    assert i18n.gettext("auditlog.total", "en", n=1234) == "1,234 entries"
    assert i18n.gettext("case.fixtures_found", "pt_BR", n=1) == "1 implante encontrado"
    catalog = json.loads((REVIEW / "locale" / "pt_BR.json").read_text(encoding="utf-8"))
    assert [key for key, text in catalog.items() if re.search(r"\w\((s|ns|es)\)", text.replace("http(s)", ""))
            and "{" in text] == []  # counted messages say their count in words, several counts each its own
    assert i18n.gettext("catalog.upload_report", "pt_BR", added=1, already=0, skipped=2) == \
        "1 imagem adicionada, 0 já existentes, 2 ignoradas."
    assert i18n.gettext("catalog.upload_report", "pt_BR", added=2, already=1, skipped=1) == \
        "2 imagens adicionadas, 1 já existente, 1 ignorada."


def test_limits_are_written_with_the_readers_thousands_separator():
    assert i18n.gettext("case.report_message_hint", "pt_BR", max=1500) == \
        "Impressa no relatório de uma página: até 1.500 caracteres."
    assert i18n.gettext("case.note_too_long", "pt_BR", n=5001, max=5000) == \
        "A nota tem 5.001 caracteres; o máximo é 5.000."
    assert i18n.gettext("case.report_message_hint", "en", max=1500).endswith("at most 1,500 characters.")


def test_times_are_shown_in_brazil_time():
    from datetime import UTC, datetime

    from raiox.delivery.templates import when

    moment = datetime(2026, 3, 10, 12, 0, 5, tzinfo=UTC)
    assert when(moment) == "10/03/2026 09:00"  # America/Sao_Paulo, UTC-3
    assert when(moment, seconds=True) == "10/03/2026 09:00:05"
    assert when(None) == "—"


def test_catalog_terms_read_in_the_readers_language_numbers_included():
    assert i18n.term("external hex", "pt_BR") == "hexágono externo"
    assert i18n.term("CM 11.5°", "pt_BR") == "CM 11,5°"  # typed as-is, with the reader's decimal comma
    assert i18n.term("CM 11.5°", "en") == "CM 11.5°"
    assert i18n.term("HE 4.1 v2.0", "pt_BR") == "HE 4,1 v2,0" and i18n.term("", "pt_BR") == ""
